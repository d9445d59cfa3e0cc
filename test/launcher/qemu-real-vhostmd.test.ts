// The vhostmd port as planned, on the real QEMU (TCG, paused): QEMU accepts the devices on both
// transports and on pc and q35, the port carries vhostmd's name on its own listening chardev, the
// hostinfo port is still where it was planned, and the sidecar's lookup of the port's device id
// (for VSERPORT_CHANGE) finds exactly it.

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { VHOSTMD_PORT_NAME } from '../../common/vm-record.js';
import { planQemuArgs, type Transport } from '../../launcher/qemu-args.js';
import { QmpClient } from '../../sidecar/qmp/client.js';
import { vhostmdPortIds } from '../../sidecar/vhostmd/port-ids.js';
import { connectWithRetry, startQemu } from '../fixtures/qmp/qemu.js';

/** What startQemu itself passes before the extra arguments: the plan is made from the same. */
const STARTED_WITH = ['-accel', 'tcg', '-S', '-nodefaults', '-display', 'none'];

const CASES: Array<[Transport, string]> = [['isa-serial', 'pc'], ['virtio-serial', 'pc'], ['isa-serial', 'q35'], ['virtio-serial', 'q35']];

for (const [transport, machine] of CASES) {
  t.test(`${transport} on ${machine}: QEMU takes the vhostmd port beside the hostinfo port`, async (t) => {
    const vmsDir = await mkdtemp(join(tmpdir(), 'hi-vh-'));
    t.teardown(() => rm(vmsDir, { recursive: true, force: true }));
    const plan = planQemuArgs(['-M', machine, ...STARTED_WITH, '-name', 'vm'], { transport, vmsDir, launcherPid: process.pid, vhostmd: true });
    if (plan.mode !== 'wrap' || plan.ids.vhostmd === undefined || plan.vhostmdSocket === undefined) throw new Error(`expected a wrap plan with vhostmd: ${JSON.stringify(plan)}`);
    await mkdir(plan.vmDir, { mode: 0o700 });
    // startQemu puts -M pc first; a later -M wins.
    const qemu = await startQemu(t, ['-M', machine, '-name', 'vm', ...plan.added]);
    const qmp = new QmpClient();
    t.teardown(() => qmp.close());
    await connectWithRetry(qmp, qemu);

    const port = `/machine/peripheral/${plan.ids.vhostmd.port}`;
    t.equal(await qmp.execute('qom-get', { path: port, property: 'name' }), VHOSTMD_PORT_NAME, 'the port vm-dump-metrics opens');
    t.equal(await qmp.execute('qom-get', { path: port, property: 'chardev' }), plan.ids.vhostmd.chardev);
    const chardevs = new Map(((await qmp.execute('query-chardev')) as Array<{ label: string; filename: string }>).map((c) => [c.label, c.filename]));
    t.equal(chardevs.get(plan.ids.vhostmd.chardev), `disconnected:unix:${plan.vhostmdSocket},server=on`, 'its chardev listens on vhostmd.sock');
    t.equal(chardevs.get(plan.ids.chardev), `disconnected:unix:${plan.guestSocket},server=on`, 'the hostinfo chardev as ever');
    const hostinfoPort = `/machine/peripheral/${plan.ids.port}`;
    if (transport === 'isa-serial') t.equal(await qmp.execute('qom-get', { path: hostinfoPort, property: 'index' }), plan.serialIndex, 'the hostinfo isa-serial on its planned index');
    else t.equal(await qmp.execute('qom-get', { path: hostinfoPort, property: 'name' }), 'org.hostinfo.0');
    t.same(await vhostmdPortIds(qmp), [plan.ids.vhostmd.port], 'the sidecar finds the port\'s device id by its name, and only it');
  });
}

t.test('a port of another name is not taken for vhostmd\'s', async (t) => {
  const qemu = await startQemu(t, ['-device', 'virtio-serial-pci,id=b', '-chardev', 'null,id=c1', '-device', 'virtserialport,id=other,bus=b.0,chardev=c1,name=org.example.0',
    '-chardev', 'null,id=c2', '-device', `virtserialport,id=channel1,bus=b.0,chardev=c2,name=${VHOSTMD_PORT_NAME}`]);
  const qmp = new QmpClient();
  t.teardown(() => qmp.close());
  await connectWithRetry(qmp, qemu);
  t.same(await vhostmdPortIds(qmp), ['channel1'], 'a libvirt-style <channel> id is found by the name too');
});
