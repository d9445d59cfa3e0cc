// The launcher's vhostmd port ([vhostmd] enabled = true): its chardev and virtserialport beside the
// hostinfo port on either transport, on the hostinfo bus or (isa-serial) a bus of its own, the
// socket path checks, the name clash, and nothing at all without the setting.
// qemu-real-vhostmd.test.ts runs these plans on the real binary.

import t from 'tap';
import { planQemuArgs, type PlanOptions, type QemuPlan, type WrapPlan } from '../../launcher/qemu-args.js';
import { VHOSTMD_PORT_NAME } from '../../launcher/qemu-args-vhostmd.js';

const VMS = '/run/hi';

function plan(args: readonly string[], extra: Partial<PlanOptions> = {}): QemuPlan {
  return planQemuArgs(args, { transport: 'isa-serial', vmsDir: VMS, launcherPid: 4242, vhostmd: true, ...extra });
}

function wrap(args: readonly string[], extra: Partial<PlanOptions> = {}): WrapPlan {
  const result = plan(args, extra);
  if (result.mode !== 'wrap') throw new Error(`expected wrap, got ${JSON.stringify(result)}`);
  return result;
}

t.test('isa-serial: the vhostmd port gets a virtio-serial bus of its own', async (t) => {
  const p = wrap(['-M', 'pc', '-nographic', '-name', 'web01']);
  t.same(p.added, [
    '-serial', 'mon:stdio',
    '-chardev', 'socket,id=hostinfo0,path=/run/hi/web01/guest.sock,server=on,wait=off',
    '-device', 'isa-serial,id=hostinfo0-port,chardev=hostinfo0,index=1',
    '-chardev', 'socket,id=hostinfo0-vhostmd,path=/run/hi/web01/vhostmd.sock,server=on,wait=off',
    '-device', 'virtio-serial-pci,id=hostinfo0-vhostmd-bus',
    '-device', 'virtserialport,id=hostinfo0-vhostmd-port,bus=hostinfo0-vhostmd-bus.0,chardev=hostinfo0-vhostmd,name=org.github.vhostmd.1',
    '-chardev', 'socket,id=hostinfo0-qmp,path=/run/hi/web01/qmp.sock,server=on,wait=off',
    '-mon', 'chardev=hostinfo0-qmp,mode=control',
  ]);
  t.equal(p.vhostmdSocket, '/run/hi/web01/vhostmd.sock');
  t.same(p.ids.vhostmd, { chardev: 'hostinfo0-vhostmd', port: 'hostinfo0-vhostmd-port', bus: 'hostinfo0-vhostmd-bus' });
  t.same(p.restoredDefaults, ['-serial', 'mon:stdio'], 'the virtio-serial bus changes nothing of the defaults');
  t.equal(p.serialIndex, 1, 'the hostinfo port is where it would be without vhostmd');
});

t.test('virtio-serial: the vhostmd port shares the hostinfo port\'s bus', async (t) => {
  const p = wrap(['-nodefaults'], { transport: 'virtio-serial' });
  t.same(p.added, [
    '-chardev', 'socket,id=hostinfo0,path=/run/hi/vm-4242/guest.sock,server=on,wait=off',
    '-device', 'virtio-serial-pci,id=hostinfo0-bus',
    '-device', 'virtserialport,id=hostinfo0-port,bus=hostinfo0-bus.0,chardev=hostinfo0,name=org.hostinfo.0',
    '-chardev', 'socket,id=hostinfo0-vhostmd,path=/run/hi/vm-4242/vhostmd.sock,server=on,wait=off',
    '-device', `virtserialport,id=hostinfo0-vhostmd-port,bus=hostinfo0-bus.0,chardev=hostinfo0-vhostmd,name=${VHOSTMD_PORT_NAME}`,
    '-chardev', 'socket,id=hostinfo0-qmp,path=/run/hi/vm-4242/qmp.sock,server=on,wait=off',
    '-mon', 'chardev=hostinfo0-qmp,mode=control',
  ]);
  t.same(p.ids.vhostmd, { chardev: 'hostinfo0-vhostmd', port: 'hostinfo0-vhostmd-port' });
});

t.test('off (the default): not a trace of it', async (t) => {
  for (const vhostmd of [false, undefined]) {
    const p = planQemuArgs(['-nodefaults'], { transport: 'isa-serial', vmsDir: VMS, launcherPid: 1, ...(vhostmd === undefined ? {} : { vhostmd }) });
    if (p.mode !== 'wrap') throw new Error('expected wrap');
    t.notMatch(p.added.join(' '), /vhostmd/, `vhostmd ${String(vhostmd)}`);
    t.equal(p.vhostmdSocket, undefined);
    t.equal(p.ids.vhostmd, undefined);
  }
});

t.test('ids follow the free stem; the user\'s own vhostmd port is a clash', async (t) => {
  const p = wrap(['-chardev', 'null,id=hostinfo0', '-device', 'isa-serial,chardev=hostinfo0']);
  t.equal(p.ids.vhostmd?.chardev, 'hostinfo1-vhostmd', 'hostinfo0 is the user\'s: hostinfo1 throughout');
  const clash = plan(['-device', 'virtio-serial-pci', '-chardev', 'null,id=v', '-device', `virtserialport,chardev=v,name=${VHOSTMD_PORT_NAME}`]);
  t.match(clash, { mode: 'error', code: 'PORT_NAME_CLASH', message: /org\.github\.vhostmd\.1.*\[vhostmd\] enabled/ });
  const fine = plan(['-device', 'virtio-serial-pci', '-chardev', 'null,id=v', '-device', `virtserialport,chardev=v,name=${VHOSTMD_PORT_NAME}`], { vhostmd: false });
  t.equal(fine.mode, 'wrap', 'without [vhostmd] the user\'s port is none of the launcher\'s business');
});

t.test('the vhostmd socket path is checked like the others', async (t) => {
  // vhostmd.sock is the longest of the three names: a directory that fits guest.sock and qmp.sock
  // but not vhostmd.sock is refused only with vhostmd on.
  const vmsDir = `/${'d'.repeat(92)}`;
  const args = ['-name', 'x'];
  t.equal(Buffer.byteLength(`${vmsDir}/x/guest.sock`), 106);
  t.match(plan(args, { vmsDir }), { mode: 'error', code: 'SOCKET_PATH_TOO_LONG', message: /vhostmd\.sock is 108 bytes/ });
  t.equal(plan(args, { vmsDir, vhostmd: false }).mode, 'wrap');
});
