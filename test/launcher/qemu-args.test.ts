// Table-driven tests of the launcher's argument rewriting. The QEMU behaviour each expectation
// encodes was observed on QEMU 7.2 (query-chardev, query-name, info qtree); the comments say what
// was seen. qemu-real.test.ts runs a few of these plans on the real binary.

import t, { type Test } from 'tap';
import { planQemuArgs, vmDirCandidates, type PlanOptions, type QemuPlan, type Transport, type WrapPlan } from '../../launcher/qemu-args.js';

/** The runtime directory's vms/: each VM's directory is made in it. */
const VMS = '/run/hi';
const PID = 4242;
const UUID = '6f1d1c2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f';

function plan(args: readonly string[], extra: Partial<PlanOptions> & { transport?: Transport } = {}): QemuPlan {
  return planQemuArgs(args, { transport: 'isa-serial', vmsDir: VMS, launcherPid: PID, ...extra });
}

function wrap(t: Test, args: readonly string[], extra: Partial<PlanOptions> = {}): WrapPlan {
  const result = plan(args, extra);
  if (result.mode !== 'wrap') throw new Error(`expected wrap for ${JSON.stringify(args)}, got ${JSON.stringify(result)}`);
  t.same(result.args.slice(0, args.length), args, 'user arguments first, unchanged and in order');
  t.same(result.args.slice(args.length), result.added);
  return result;
}

t.test('full shape of an isa-serial plan', async (t) => {
  const p = wrap(t, ['-M', 'pc', '-nographic', '-name', 'web01']);
  t.same(p.added, [
    '-serial', 'mon:stdio',
    '-chardev', 'socket,id=hostinfo0,path=/run/hi/web01/guest.sock,server=on,wait=off',
    '-device', 'isa-serial,id=hostinfo0-port,chardev=hostinfo0,index=1',
    '-chardev', 'socket,id=hostinfo0-qmp,path=/run/hi/web01/qmp.sock,server=on,wait=off',
    '-mon', 'chardev=hostinfo0-qmp,mode=control',
  ]);
  t.match(p, {
    transport: 'isa-serial', vmDirName: 'web01', vmDir: '/run/hi/web01', guestSocket: '/run/hi/web01/guest.sock',
    qmpSocket: '/run/hi/web01/qmp.sock', name: 'web01', serialIndex: 1, daemonize: false,
    ids: { chardev: 'hostinfo0', qmpChardev: 'hostinfo0-qmp', port: 'hostinfo0-port' }, restoredDefaults: ['-serial', 'mon:stdio'],
  });
  t.equal(p.portName, undefined);
  t.equal(p.uuid, undefined);
});

t.test('full shape of a virtio-serial plan', async (t) => {
  const p = wrap(t, ['-nodefaults'], { transport: 'virtio-serial' });
  t.same(p.added, [
    '-chardev', 'socket,id=hostinfo0,path=/run/hi/vm-4242/guest.sock,server=on,wait=off',
    '-device', 'virtio-serial-pci,id=hostinfo0-bus',
    '-device', 'virtserialport,id=hostinfo0-port,bus=hostinfo0-bus.0,chardev=hostinfo0,name=org.hostinfo.0',
    '-chardev', 'socket,id=hostinfo0-qmp,path=/run/hi/vm-4242/qmp.sock,server=on,wait=off',
    '-mon', 'chardev=hostinfo0-qmp,mode=control',
  ]);
  t.equal(p.portName, 'org.hostinfo.0');
  t.equal(p.serialIndex, undefined);
  t.same(p.ids, { chardev: 'hostinfo0', qmpChardev: 'hostinfo0-qmp', port: 'hostinfo0-port', bus: 'hostinfo0-bus' });
});

t.test('serial index and restored defaults (isa-serial)', async (t) => {
  const VC = 'vc:80Cx24C';
  const cases: Array<[string, string[], number, string[]]> = [
    // QEMU alone: serial0=mux(stdio, with the monitor), parallel0=null.
    ['-nographic, defaults relied on', ['-nographic'], 1, ['-serial', 'mon:stdio']],
    // QEMU alone with no display option, and with -display none: serial0, parallel0 and
    // compat_monitor0 all on vc (7.2 makes vc backends even with -display none).
    ['graphical defaults', [], 1, ['-serial', VC, '-monitor', VC]],
    ['-display none', ['-display', 'none'], 1, ['-serial', VC, '-monitor', VC]],
    ['-nodefaults', ['-nodefaults'], 0, []],
    ['-nodefaults -serial stdio', ['-nodefaults', '-serial', 'stdio'], 1, []],
    ['two -serial', ['-display', 'none', '-serial', 'null', '-serial', 'null'], 2, ['-monitor', VC]],
    // QEMU alone: compat_monitor0=stdio, serial0=null.
    ['-nographic -serial null', ['-nographic', '-serial', 'null'], 1, ['-monitor', 'stdio']],
    // QEMU alone: serial0=stdio, no monitor.
    ['-nographic -monitor none', ['-nographic', '-monitor', 'none'], 1, ['-serial', 'stdio']],
    ['-nographic -qmp', ['-nographic', '-qmp', 'unix:/tmp/q.sock,server=on,wait=off'], 1, ['-serial', 'stdio']],
    ['-nographic -mon', ['-nographic', '-chardev', 'null,id=m', '-mon', 'chardev=m'], 1, ['-serial', 'stdio']],
    // `-serial mon:` switches the default monitor off (no compat_monitor0 on plain QEMU).
    ['-serial mon:stdio', ['-serial', 'mon:stdio'], 1, []],
    // So does `-parallel mon:` (the monitor lands on parallel0's mux).
    ['-parallel mon:vc', ['-display', 'none', '-parallel', 'mon:vc'], 1, ['-serial', VC]],
    // `-serial none` consumes its index but creates nothing.
    ['-serial none', ['-serial', 'none'], 0, ['-monitor', VC]],
    ['-serial none -serial null', ['-serial', 'none', '-serial', 'null'], 0, ['-monitor', VC]],
    ['-serial chardev:X', ['-chardev', 'null,id=x', '-serial', 'chardev:x'], 1, ['-monitor', VC]],
    // A device without index takes the isa-serial counter: 2 then 1 here (info qtree).
    ['index=2 then implicit', ['-nodefaults', '-device', 'isa-serial,chardev=a,index=2', '-device', 'isa-serial,chardev=b'], 0, []],
    ['implicit after -serial', ['-nodefaults', '-serial', 'null', '-device', 'isa-serial,chardev=b'], 2, []],
    ['-device driver=isa-serial', ['-nodefaults', '-device', 'driver=isa-serial,chardev=b'], 1, []],
    ['hex index', ['-nodefaults', '-device', 'isa-serial,chardev=b,index=0x0'], 1, []],
    // A user isa-serial switches QEMU's default serial off: nothing to restore for it.
    ['user isa-serial, graphical', ['-device', 'isa-serial,chardev=b'], 1, ['-monitor', VC]],
    // JSON -device is realized after every keyval one; with an implicit index it takes the
    // counter, so ours is written as JSON too and goes last (see the JSON test below).
    ['JSON device', ['-nodefaults', '-serial', 'null', '-device', '{"driver":"isa-serial","chardev":"c"}'], 2, []],
    ['JSON device with index', ['-nodefaults', '-device', '{"driver":"isa-serial","chardev":"c","index":0}'], 1, []],
    // -global isa-serial.* also switches the default serial off (no serial0 on plain QEMU).
    ['-global legacy form', ['-display', 'none', '-global', 'isa-serial.baudbase=115200'], 0, ['-monitor', VC]],
    ['-global driver= form', ['-display', 'none', '-global', 'driver=isa-serial,property=baudbase,value=115200'], 0, ['-monitor', VC]],
    // A value that looks like an option is still a value.
    ['-append -serial', ['-nodefaults', '-append', '-serial', '-serial', 'null'], 1, []],
    ['--serial form', ['-nodefaults', '--serial', 'null'], 1, []],
    // An unknown option is taken as a flag, so the -serial after it is still seen.
    ['unknown option', ['-nodefaults', '-frobnicate', '-serial', 'null'], 1, []],
    ['disk image positional', ['-nodefaults', 'disk.img', '-serial', 'null'], 1, []],
  ];
  for (const [label, args, index, restored] of cases) {
    t.test(label, async (t) => {
      const p = wrap(t, args);
      t.equal(p.serialIndex, index, 'index');
      t.same(p.restoredDefaults, restored, 'restored defaults');
      t.same(p.added.slice(0, restored.length), restored, 'restored first');
    });
  }
  t.same(wrap(t, ['-frobnicate', '-nodefaults']).unknownOptions, ['-frobnicate']);
});

t.test("ours is written as JSON only when a user's JSON isa-serial relies on the counter", async (t) => {
  const json = wrap(t, ['-nodefaults', '-device', '{"driver":"isa-serial","chardev":"c"}']);
  t.same(json.added.slice(2, 4), ['-device', '{"driver":"isa-serial","id":"hostinfo0-port","chardev":"hostinfo0","index":1}']);
  const indexed = wrap(t, ['-nodefaults', '-device', '{"driver":"isa-serial","chardev":"c","index":0}']);
  t.same(indexed.added.slice(2, 4), ['-device', 'isa-serial,id=hostinfo0-port,chardev=hostinfo0,index=1']);
  // Keyval ours would be realized before the user's JSON device and push it from 1 to 2.
  const mixed = wrap(t, ['-nodefaults', '-serial', 'null', '-device', '{"driver":"isa-serial","chardev":"c"}']);
  t.equal(mixed.serialIndex, 2);
  t.match(mixed.added[3], /^\{"driver":"isa-serial"/);
});

t.test('restored defaults with virtio-serial', async (t) => {
  const VC = 'vc:80Cx24C';
  const cases: Array<[string, string[], string[]]> = [
    // The default serial survives virtio-serial, but QEMU would make it plain stdio once our -mon
    // took the monitor away: mon:stdio must be written out for Ctrl-A c.
    ['-nographic', ['-nographic'], ['-serial', 'mon:stdio']],
    ['-nographic -serial null', ['-nographic', '-serial', 'null'], ['-monitor', 'stdio']],
    ['-nographic -monitor none', ['-nographic', '-monitor', 'none'], []],
    ['graphical', [], ['-monitor', VC]],
    ['-nodefaults', ['-nodefaults'], []],
  ];
  for (const [label, args, restored] of cases) {
    t.same(wrap(t, args, { transport: 'virtio-serial' }).restoredDefaults, restored, label);
  }
});

t.test('no free serial port', async (t) => {
  const four = ['-serial', 'null', '-serial', 'null', '-serial', 'null', '-serial', 'null'];
  const cases: Array<[string, string[]]> = [
    ['four -serial', four],
    ['five -serial', [...four, '-serial', 'null']],
    ['three -serial and an implicit device', ['-serial', 'null', '-serial', 'null', '-serial', 'null', '-device', 'isa-serial,chardev=c']],
    ['explicit 0..3', ['-nodefaults', ...[0, 1, 2, 3].flatMap((i) => ['-device', `isa-serial,chardev=c${i},index=${i}`])]],
    ['JSON implicit after three', ['-nodefaults', '-serial', 'null', '-serial', 'null', '-serial', 'null', '-device', '{"driver":"isa-serial","chardev":"c"}']],
    // The restored default serial takes index 0 too.
    ['three implicit devices and the default', ['-device', 'isa-serial,chardev=a', '-device', 'isa-serial,chardev=b', '-device', 'isa-serial,chardev=c', '-device', 'isa-serial,chardev=d']],
  ];
  for (const [label, args] of cases) {
    const result = plan(args);
    t.match(result, { mode: 'error', code: 'NO_FREE_SERIAL', message: /--transport virtio-serial/ }, label);
  }
  t.equal(plan(four, { transport: 'virtio-serial' }).mode, 'wrap', 'virtio-serial needs no ISA slot');
});

t.test('passthrough: probes and arguments QEMU refuses before starting', async (t) => {
  const cases: Array<[string[], string]> = [
    [['-M', 'none'], 'machine-none'],
    [['-machine', 'none'], 'machine-none'],
    [['-machine', 'type=none,accel=tcg'], 'machine-none'],
    [['-M', 'pc', '-M', 'none'], 'machine-none'], // plain QEMU: no serial0, no parallel0
    [['--machine', 'none', '-nodefaults', '-qmp', 'stdio'], 'machine-none'], // libvirt's probe
    [['--help'], 'help'],
    [['-h'], 'help'],
    [['-help'], 'help'],
    [['-version'], 'version'],
    [['--version'], 'version'],
    [['-machine', 'help'], 'option-help'],
    [['-M', '?'], 'option-help'],
    [['-device', 'help'], 'option-help'],
    [['-device', 'e1000,help'], 'option-help'],
    [['-device', 'virtio-net-pci,?'], 'option-help'],
    [['-cpu', 'help'], 'option-help'],
    [['-accel', 'help'], 'option-help'],
    [['-chardev', 'help'], 'option-help'],
    [['-object', 'memory-backend-ram,help'], 'option-help'],
    [['-display', 'help'], 'option-help'],
    [['-nodefaults', '-serial'], 'missing-value'], // QEMU: "requires an argument"; ours must not become its value
  ];
  for (const [args, reason] of cases) {
    t.same(plan(args), { mode: 'passthrough', reason, args }, args.join(' '));
  }
  t.equal(plan(['-M', 'none', '-M', 'pc']).mode, 'wrap', 'last machine type wins');
  t.equal(plan(['-name', 'help']).mode, 'wrap', '-name help is just a name (QEMU 7.2 starts)');
  t.equal(plan(['-append', '-version']).mode, 'wrap', 'a kernel command line that looks like an option');
  t.equal(plan(['-device', 'isa-serial,chardev=help']).mode, 'wrap');
});

t.test('name, uuid and the per-VM directory', async (t) => {
  const cases: Array<[string, string[], string | undefined, string | undefined, string]> = [
    ['-name foo', ['-name', 'foo'], 'foo', undefined, 'foo'],
    ['--name foo', ['--name', 'foo'], 'foo', undefined, 'foo'],
    ['guest= form', ['-name', 'guest=foo,debug-threads=on'], 'foo', undefined, 'foo'],
    ['process= only', ['-name', 'process=p'], undefined, undefined, 'vm-4242'],
    // query-name: "foo" (the options merge), then "bar" (the last guest wins).
    ['merge keeps name', ['-name', 'foo', '-name', 'debug-threads=on'], 'foo', undefined, 'foo'],
    ['last name wins', ['-name', 'foo', '-name', 'bar'], 'bar', undefined, 'bar'],
    // query-name: "a,b"; not a safe file name, so the directory falls back.
    ['escaped comma', ['-name', 'a,,b'], 'a,b', undefined, 'vm-4242'],
    ['unsafe name, uuid', ['-name', '../etc', '-uuid', UUID.toUpperCase()], '../etc', UUID, UUID],
    ['uuid only (query-uuid reports it lower-case)', ['-uuid', UUID.toUpperCase()], undefined, UUID, UUID],
    ['nil uuid', ['-uuid', '00000000-0000-0000-0000-000000000000'], undefined, '00000000-0000-0000-0000-000000000000', 'vm-4242'],
    ['nothing', [], undefined, undefined, 'vm-4242'],
    ['name beats uuid', ['-uuid', UUID, '-name', 'db'], 'db', UUID, 'db'],
  ];
  for (const [label, args, name, uuid, dir] of cases) {
    const p = wrap(t, args);
    t.equal(p.name, name, `${label}: name`);
    t.equal(p.uuid, uuid, `${label}: uuid`);
    t.equal(p.vmDirName, dir, `${label}: dir`);
  }
});

t.test('directory candidates: two live VMs never share one', async (t) => {
  t.same([...vmDirCandidates({ name: 'web' }, 1)].slice(0, 3), ['web', 'web-2', 'web-3']);
  t.same([...vmDirCandidates({}, 77)].slice(0, 2), ['vm-77', 'vm-77-2']);
  t.equal([...vmDirCandidates({ name: 'x' }, 1)].length, 100, 'bounded');
  t.equal((plan(['-name', 'web'], { existingDirs: ['web'] }) as WrapPlan).vmDirName, 'web-2');
  const p = plan(['-name', 'web'], { existingDirs: new Set(['web', 'web-2']) }) as WrapPlan;
  t.equal(p.vmDirName, 'web-3');
  t.equal(p.guestSocket, '/run/hi/web-3/guest.sock', 'the arguments follow the directory');
  t.ok(p.added.includes('socket,id=hostinfo0,path=/run/hi/web-3/guest.sock,server=on,wait=off'));
  const all = [...vmDirCandidates({ name: 'web' }, PID)];
  t.match(plan(['-name', 'web'], { existingDirs: all }), { mode: 'error', code: 'VM_DIR_EXHAUSTED' });
});

t.test('socket path length: 107 bytes at most', async (t) => {
  // `${dir}/vm-4242/guest.sock` = dir + 19 bytes.
  const fits = '/' + 'r'.repeat(107 - 19 - 1);
  const p = plan(['-nodefaults'], { vmsDir: fits });
  t.equal(p.mode, 'wrap');
  t.equal(Buffer.byteLength((p as WrapPlan).guestSocket), 107);
  const over = plan(['-nodefaults'], { vmsDir: fits + 'r' });
  t.match(over, { mode: 'error', code: 'SOCKET_PATH_TOO_LONG', message: /108 bytes.*107/ });
  // Bytes, not characters.
  t.match(plan(['-nodefaults'], { vmsDir: '/' + '\u00e9'.repeat(44) }), { mode: 'error', code: 'SOCKET_PATH_TOO_LONG' });
});

t.test('a comma in the VM directory path is escaped for QEMU', async (t) => {
  const p = wrap(t, ['-nodefaults'], { vmsDir: '/tmp/a,b' });
  t.equal(p.guestSocket, '/tmp/a,b/vm-4242/guest.sock');
  t.ok(p.added.includes('socket,id=hostinfo0,path=/tmp/a,,b/vm-4242/guest.sock,server=on,wait=off'));
});

t.test('ids: detected, never overwritten', async (t) => {
  t.equal(wrap(t, ['-chardev', 'null,id=hostinfo0']).ids.chardev, 'hostinfo1');
  t.equal(wrap(t, ['-device', 'virtio-rng-pci,id=hostinfo0-port']).ids.port, 'hostinfo1-port');
  t.equal(wrap(t, ['-chardev', 'null,id=hostinfo0', '-chardev', 'null,id=hostinfo1']).ids.chardev, 'hostinfo2');
  t.equal(wrap(t, ['-chardev', 'null,id=hostinfo10']).ids.chardev, 'hostinfo0', 'hostinfo10 is not hostinfo1 or hostinfo0');
  const many = Array.from({ length: 100 }, (_, n) => ['-chardev', `null,id=hostinfo${n}`]).flat();
  t.match(plan(many), { mode: 'error', code: 'ID_CLASH' });
  const p = wrap(t, ['-chardev', 'null,id=hostinfo0'], { transport: 'virtio-serial' });
  t.ok(p.added.includes('virtserialport,id=hostinfo1-port,bus=hostinfo1-bus.0,chardev=hostinfo1,name=org.hostinfo.0'));
});

t.test('virtio port name clash', async (t) => {
  const args = ['-device', 'virtio-serial-pci', '-chardev', 'null,id=c', '-device', 'virtserialport,chardev=c,name=org.hostinfo.0'];
  t.match(plan(args, { transport: 'virtio-serial' }), { mode: 'error', code: 'PORT_NAME_CLASH' });
  t.equal(plan(args).mode, 'wrap', 'irrelevant to isa-serial');
});

t.test('-daemonize: allowed; QEMU writes its pid to a pidfile the daemon can follow', async (t) => {
  // No -pidfile of the user's: ours, in the VM's directory, is appended last.
  const own = wrap(t, ['-daemonize', '-display', 'none', '-name', 'd1']);
  t.equal(own.daemonize, true);
  t.equal(own.pidfile, '/run/hi/d1/qemu.pid', 'plan.pidfile is in the VM directory');
  t.same(own.added.slice(-2), ['-pidfile', '/run/hi/d1/qemu.pid'], '-pidfile <vmDir>/qemu.pid appended');
  t.same(wrap(t, ['--daemonize', '-nodefaults']).added.slice(-2), ['-pidfile', '/run/hi/vm-4242/qemu.pid'], '--daemonize is the same option');
  // The user's own -pidfile (relative or not) is QEMU's: nothing is added, the plan names it.
  for (const [args, file] of [
    [['-daemonize', '-display', 'none', '-pidfile', '/var/run/q.pid'], '/var/run/q.pid'],
    [['-pidfile', 'rel/q.pid', '-daemonize', '-nodefaults'], 'rel/q.pid'],
    [['-daemonize', '-nodefaults', '-pidfile', '/a.pid', '-pidfile', '/b.pid'], '/b.pid'],
  ] as const) {
    const user = wrap(t, args);
    t.equal(user.pidfile, file, `${args.join(' ')}: plan.pidfile is the user's (the last one)`);
    t.notOk(user.added.includes('-pidfile'), `${args.join(' ')}: no -pidfile added`);
  }
  // Without -daemonize there is nothing to follow: no pidfile, none added, a user's is just passed on.
  const foreground = wrap(t, ['-nodefaults', '-pidfile', '/x.pid']);
  t.equal(foreground.daemonize, false);
  t.equal(foreground.pidfile, undefined);
  t.notOk(foreground.added.includes('-pidfile'));
  // QEMU 7.2 alone: "-nographic cannot be used with -daemonize".
  t.match(plan(['-daemonize', '-nographic']), { mode: 'error', code: 'NOGRAPHIC_DAEMONIZE', message: /-nographic cannot be used with -daemonize/ });
  t.equal(plan(['-daemonize', '-nographic', '-nodefaults']).mode, 'wrap', 'with -nodefaults there is no stdio default for QEMU to refuse');
});

t.test('-readconfig and -S pass through, flagged', async (t) => {
  const p = wrap(t, ['-S', '-readconfig', '/etc/vm.cfg', '-nodefaults']);
  t.equal(p.readconfig, true);
  t.equal(p.serialIndex, 0);
  t.equal(wrap(t, ['-nodefaults']).readconfig, false);
});
