// `-set`, `-global isa-serial.*` and explicit `iobase` in the launcher's choice of a serial port.
// Each expectation is what QEMU 7.2 does (checked with `info qtree`; qemu-real.test.ts runs the
// interesting ones on the real binary):
//   - `-set group.id.arg=value` is applied while the command line is read, to the options of the
//     `-device` (or `-global`) with that id defined BEFORE it ("there is no device "s1" defined"
//     otherwise); the last one wins; the value is taken whole (no comma splitting);
//   - it can change any property, `driver` included, of a key=value `-device`; a JSON `-device`
//     has no options to change ("there is no device" again);
//   - `-global isa-serial.index=N` gives N to every isa-serial without an index of its own (not the
//     counter); `-global isa-serial.iobase=X` puts every isa-serial without an iobase of its own,
//     `-serial` ones included, at X;
//   - uint32 properties are read by strtoull with base 0: ` 2`, `+1`, `01`, `0X1` are fine, `08`,
//     `1 `, `0x`, `-1`, `foo` are refused.

import t, { type Test } from 'tap';
import { planQemuArgs, type PlanOptions, type QemuPlan, type WrapPlan } from '../../launcher/qemu-args.js';
import { parseQemuUint32 } from '../../launcher/qemu-device-props.js';

function plan(args: readonly string[], extra: Partial<PlanOptions> = {}): QemuPlan {
  return planQemuArgs(args, { transport: 'isa-serial', vmsDir: '/run/hi', launcherPid: 4242, ...extra });
}

function wrap(t: Test, args: readonly string[], extra: Partial<PlanOptions> = {}): WrapPlan {
  const result = plan(args, extra);
  if (result.mode !== 'wrap') throw new Error(`expected wrap for ${JSON.stringify(args)}, got ${JSON.stringify(result)}`);
  t.same(result.args.slice(0, args.length), args, 'user arguments first, unchanged and in order');
  return result;
}

/** Our device's option string (keyval form). */
const ourDevice = (p: WrapPlan): string | undefined => p.added.find((word) => word.startsWith('isa-serial,id=hostinfo'));

const USER = ['-nodefaults', '-chardev', 'null,id=c1'];
const S1 = [...USER, '-device', 'isa-serial,id=s1,chardev=c1'];

t.test('-set device.ID.index=N on a user isa-serial is followed', async (t) => {
  const cases: Array<[string, string[], number]> = [
    // The report: s1 moves to 1, so 1 is not free (before: ours on 1 too, both UARTs at 0x2f8).
    ['moved to 1', [...S1, '-set', 'device.s1.index=1'], 0],
    ['moved to 2 past a -serial', ['-nodefaults', '-serial', 'null', '-chardev', 'null,id=c1', '-device', 'isa-serial,id=s1,chardev=c1', '-set', 'device.s1.index=2'], 1],
    ['the last -set wins', [...S1, '-set', 'device.s1.index=0', '-set', 'device.s1.index=2'], 0],
    ['over an explicit index', [...USER, '-device', 'isa-serial,id=s1,chardev=c1,index=0', '-set', 'device.s1.index=1'], 0],
    ['hex', [...S1, '-set', 'device.s1.index=0x1'], 0],
    ['leading zero (octal 1)', [...S1, '-set', 'device.s1.index=01'], 0],
    ['leading blank and sign (strtoull)', [...S1, '-set', 'device.s1.index= +1'], 0],
    ['driver= form', [...USER, '-device', 'driver=isa-serial,id=s1,chardev=c1', '-set', 'device.s1.index=1'], 0],
    // The first id= is the device's (QemuOpts opts_parse_id); -set device.s2 finds nothing.
    ['the first id= names it', [...USER, '-device', 'isa-serial,id=s1,id=s2,chardev=c1', '-set', 'device.s1.index=1'], 0],
    // -set device.s1.id=z renames the device, later -set still find it as s1.
    ['after -set ...id=', [...S1, '-set', 'device.s1.id=z', '-set', 'device.s1.index=1'], 0],
    // Moved away from the counter, it no longer takes it: the next implicit one gets 1 (info qtree).
    ['an implicit one after it', [...S1, '-chardev', 'null,id=c2', '-device', 'isa-serial,chardev=c2', '-set', 'device.s1.index=3'], 0],
  ];
  for (const [label, args, index] of cases) {
    const p = wrap(t, args);
    t.equal(p.serialIndex, index, `${label}: ours on ${index}`);
  }
  // Without -set these would be on the counter: the same planner, for contrast.
  t.equal(wrap(t, S1).serialIndex, 1);
});

t.test('-set that does not reach a key=value isa-serial changes nothing', async (t) => {
  const base = wrap(t, S1).serialIndex;
  const cases: Array<[string, string[]]> = [
    // QEMU refuses these itself ("there is no device "s1" defined"): nothing to follow.
    ['-set before the device', ['-nodefaults', '-chardev', 'null,id=c1', '-set', 'device.s1.index=1', '-device', 'isa-serial,id=s1,chardev=c1']],
    ['an id nobody has', [...S1, '-set', 'device.nope.index=1']],
    ['a JSON device has no options to set', [...USER, '-device', '{"driver":"isa-serial","id":"s1","chardev":"c1"}', '-set', 'device.s1.index=1']],
    // Not an isa-serial: irrelevant, whatever the value.
    ['another device', [...S1, '-device', 'virtio-rng-pci,id=r', '-set', 'device.r.index=1']],
    ['another device, unreadable value', [...S1, '-device', 'virtio-rng-pci,id=r', '-set', 'device.r.index=foo']],
    ['another property', [...S1, '-set', 'device.s1.baudbase=9600']],
    // Other groups cannot move a serial port; `serial` is no group at all, `machine` is refused.
    ['chardev group', [...S1, '-set', 'chardev.c1.path=/x']],
    ['serial group', [...S1, '-set', 'serial.0.index=1']],
    ['machine group', [...S1, '-set', 'machine.x.y=1']],
    // QEMU: can't parse.
    ['no argument', [...S1, '-set', 'device.s1']],
    ['empty argument', [...S1, '-set', 'device.s1.=1']],
    ['id over 63 bytes', [...USER, '-device', `isa-serial,id=${'s'.repeat(64)},chardev=c1`, '-set', `device.${'s'.repeat(64)}.index=1`]],
  ];
  for (const [label, args] of cases) t.equal(wrap(t, args).serialIndex, base, label);
});

t.test('-set device.ID.driver= is followed too', async (t) => {
  // QEMU builds the device from its final options: a virtio-rng-pci turned into an isa-serial is one.
  t.equal(wrap(t, [...USER, '-device', 'virtio-rng-pci,id=x', '-set', 'device.x.driver=isa-serial', '-set', 'device.x.chardev=c1']).serialIndex, 1);
  t.equal(wrap(t, ['-nodefaults', '-device', 'isa-serial,id=x', '-set', 'device.x.driver=virtio-rng-pci']).serialIndex, 0);
  // ... and switches QEMU's default serial off, or back on (info qtree: no serial0 / serial0 on 0).
  const VC = 'vc:80Cx24C';
  t.same(wrap(t, ['-display', 'none', '-device', 'virtio-rng-pci,id=x', '-set', 'device.x.driver=isa-serial']).restoredDefaults, ['-monitor', VC]);
  const back = wrap(t, ['-display', 'none', '-device', 'isa-serial,id=x', '-set', 'device.x.driver=virtio-rng-pci']);
  t.same(back.restoredDefaults, ['-serial', VC, '-monitor', VC]);
  t.equal(back.serialIndex, 1);
  // A virtserialport renamed to ours is a clash like any other.
  const port = ['-device', 'virtio-serial-pci', '-chardev', 'null,id=c', '-device', 'virtserialport,id=p,chardev=c,name=x'];
  t.match(plan([...port, '-set', 'device.p.name=org.hostinfo.0'], { transport: 'virtio-serial' }), { mode: 'error', code: 'PORT_NAME_CLASH' });
  t.equal(plan(port, { transport: 'virtio-serial' }).mode, 'wrap');
});

t.test('-set asking a device for help is a question to QEMU: passed through', async (t) => {
  for (const set of ['device.x.driver=help', 'device.x.driver=?', 'device.x.help=on']) {
    const args = ['-nodefaults', '-device', 'isa-serial,id=x', '-set', set];
    t.same(plan(args), { mode: 'passthrough', reason: 'option-help', args }, set);
  }
  t.equal(plan(['-nodefaults', '-set', 'device.x.driver=help']).mode, 'wrap', 'no such device: QEMU refuses, no help');
});

t.test('-set values QEMU cannot read on a serial index: refused, SET_UNSUPPORTED', async (t) => {
  for (const value of ['foo', '08', '1 ', '0x', '-1', '', '4294967296', '1,iobase=0x3f8']) {
    const set = `device.s1.index=${value}`;
    t.match(plan([...S1, '-set', set]), { mode: 'error', code: 'SET_UNSUPPORTED', message: new RegExp(`-set ${set.replace(/[+?.()]/g, '\\$&')}`) }, JSON.stringify(value));
  }
  t.match(plan([...S1, '-set', 'device.s1.iobase=0x2f8x']), { mode: 'error', code: 'SET_UNSUPPORTED' }, 'iobase too');
  t.match(plan([...USER, '-device', 'virtio-rng-pci,id=x', '-set', 'device.x.index=foo', '-set', 'device.x.driver=isa-serial', '-set', 'device.x.chardev=c1']), { mode: 'error', code: 'SET_UNSUPPORTED' }, 'once the device is an isa-serial');
  t.equal(plan([...S1, '-set', 'device.s1.index=foo', '-set', 'device.s1.index=1']).mode, 'wrap', 'a later readable -set wins');
  t.match(plan(['-nodefaults', '-global', 'driver=isa-serial,property=baudbase,value=1,id=g', '-set', 'global.g.property=index', '-set', 'global.g.value=x']), { mode: 'error', code: 'SET_UNSUPPORTED' }, 'a -global changed by -set');
  t.equal(plan([...S1, '-set', 'device.s1.index=foo'], { transport: 'virtio-serial' }).mode, 'wrap', 'virtio-serial picks no serial index: QEMU says what it thinks');
  t.match(plan([...S1, '-set', 'device.s1.index=foo']), { message: /virtio-serial/ });
});

t.test('index values are read as QEMU reads them', async (t) => {
  // Before: ` 2` was taken for "no index", the device for the counter (1), ours put on 2 with it.
  t.equal(wrap(t, ['-nodefaults', '-serial', 'null', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1,index= 2']).serialIndex, 1);
  t.equal(wrap(t, ['-nodefaults', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1,index=0X1']).serialIndex, 0);
  // strtoull negates a "negative" number modulo 2^64: this one is 1 (info qtree).
  t.equal(wrap(t, ['-nodefaults', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1,index=-18446744073709551615']).serialIndex, 0);
});

t.test('-global isa-serial.index is followed', async (t) => {
  const cases: Array<[string, string[], number]> = [
    // The device without an index takes the global's 1, not the counter's 0.
    ['legacy form', ['-nodefaults', '-global', 'isa-serial.index=1', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1'], 0],
    ['driver= form', ['-nodefaults', '-global', 'driver=isa-serial,property=index,value=1', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1'], 0],
    ['the last one wins', ['-nodefaults', '-global', 'isa-serial.index=0', '-global', 'driver=isa-serial,property=index,value=2', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1'], 0],
    // -serial ports and explicit indices keep theirs.
    ['-serial keeps its index', ['-nodefaults', '-global', 'isa-serial.index=2', '-serial', 'null'], 1],
    ['an explicit index keeps it', ['-nodefaults', '-global', 'isa-serial.index=2', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1,index=0'], 1],
    ['another driver', ['-nodefaults', '-global', 'isa-parallel.index=1', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1'], 1],
    // -global takes ids; -set on them is followed.
    ['-set global.ID', ['-nodefaults', '-global', 'driver=isa-serial,property=baudbase,value=9600,id=g', '-set', 'global.g.property=index', '-set', 'global.g.value=1', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1'], 0],
  ];
  for (const [label, args, index] of cases) t.equal(wrap(t, args).serialIndex, index, label);
  // The legacy form takes the value whole: `isa-serial.x=1,driver=foo` is a global of isa-serial
  // (QEMU switches the default serial off), not of foo.
  t.same(wrap(t, ['-display', 'none', '-global', 'isa-serial.baudbase=9600,driver=foo']).restoredDefaults, ['-monitor', 'vc:80Cx24C']);
  // A -set turning a global into one of isa-serial switches the default serial off, as QEMU does.
  t.same(wrap(t, ['-display', 'none', '-global', 'driver=isa-parallel,property=index,value=0,id=g', '-set', 'global.g.driver=isa-serial']).restoredDefaults, ['-monitor', 'vc:80Cx24C']);
});

t.test('I/O ports: no two UARTs on one iobase', async (t) => {
  const cases: Array<[string, string[], number, string]> = [
    // The user's port 0 sits at 0x2f8, port 1's address: ours skips 1.
    ['-device iobase', ['-nodefaults', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1,iobase=0x2f8'], 2, 'isa-serial,id=hostinfo0-port,chardev=hostinfo0,index=2'],
    ['-set iobase', [...S1, '-set', 'device.s1.iobase=760'], 2, 'isa-serial,id=hostinfo0-port,chardev=hostinfo0,index=2'],
    ['an address no index uses', [...S1, '-set', 'device.s1.iobase=0x100'], 1, 'isa-serial,id=hostinfo0-port,chardev=hostinfo0,index=1'],
    // -global isa-serial.iobase moves every port without an iobase of its own, ours included: ours
    // gets its index's address explicitly, and avoids the global's.
    ['-global iobase', ['-nodefaults', '-global', 'isa-serial.iobase=0x2f8', '-serial', 'null'], 2, 'isa-serial,id=hostinfo0-port,chardev=hostinfo0,index=2,iobase=0x3e8'],
    ['-global iobase, driver= form', ['-nodefaults', '-global', 'driver=isa-serial,property=iobase,value=0x3f8', '-serial', 'null'], 1, 'isa-serial,id=hostinfo0-port,chardev=hostinfo0,index=1,iobase=0x2f8'],
  ];
  for (const [label, args, index, device] of cases) {
    const p = wrap(t, args);
    t.equal(p.serialIndex, index, `${label}: index`);
    t.equal(ourDevice(p), device, `${label}: device`);
  }
  const json = wrap(t, ['-nodefaults', '-global', 'isa-serial.iobase=0x2f8', '-chardev', 'null,id=c1', '-device', '{"driver":"isa-serial","chardev":"c1"}']);
  // The user's JSON port takes the counter (0) and sits at 0x2f8: ours skips 0 and 1, on 2 at 0x3e8.
  t.equal(json.serialIndex, 2);
  t.same(json.added.slice(2, 4), ['-device', '{"driver":"isa-serial","id":"hostinfo0-port","chardev":"hostinfo0","index":2,"iobase":1000}']);
  const full = ['-nodefaults', ...[0, 1, 2].flatMap((i) => ['-chardev', `null,id=c${i}`, '-device', `isa-serial,chardev=c${i},index=${i}`]), '-global', 'isa-serial.iobase=0x2e8'];
  t.match(plan(full), { mode: 'error', code: 'NO_FREE_SERIAL' }, 'index 3 is free but its address is taken');
});

t.test('parseQemuUint32: strtoull with base 0, then the uint32 range', async (t) => {
  const cases: Array<[string, number | undefined]> = [
    ['0', 0], ['3', 3], ['0x2f8', 0x2f8], ['0X2F8', 0x2f8], ['01', 1], ['010', 8], ['00', 0], [' \t2', 2], ['+1', 1], ['-0', 0],
    ['4294967295', 0xffffffff], ['-18446744073709551615', 1],
    ['08', undefined], ['0x', undefined], ['1 ', undefined], ['', undefined], ['foo', undefined], ['-1', undefined],
    ['4294967296', undefined], ['18446744073709551616', undefined], ['-18446744073709551616', undefined], ['1,2', undefined], ['1.0', undefined],
  ];
  for (const [text, value] of cases) t.equal(parseQemuUint32(text), value, JSON.stringify(text));
});
