// QemuOpts-style option strings, read as QEMU 7.2 reads them (each case below was checked with
// query-name / info qtree on the real binary where it concerns -name or -device).

import t from 'tap';
import { asksForHelp, escapeOptionValue, optionValue, parseOptionString } from '../../launcher/qemu-options.js';
import { optionArity } from '../../launcher/qemu-options-table.js';

t.test('implied first key, escaping, flags, last wins', async (t) => {
  const cases: Array<[string, string | undefined, Array<[string, string]>]> = [
    ['foo', 'guest', [['guest', 'foo']]],
    ['guest=foo,debug-threads=on', 'guest', [['guest', 'foo'], ['debug-threads', 'on']]],
    ['a,,b', 'guest', [['guest', 'a,b']]], // QEMU: query-name → "a,b"
    ['guest=x,,y,debug-threads=on', 'guest', [['guest', 'x,y'], ['debug-threads', 'on']]],
    ['x=y', 'guest', [['x', 'y']]], // an `=` in the first element is never the implied key
    ['foo,debug-threads', 'guest', [['guest', 'foo'], ['debug-threads', 'on']]],
    ['foo,nodebug-threads', 'guest', [['guest', 'foo'], ['debug-threads', 'off']]],
    ['isa-serial,chardev=c,index=2', 'driver', [['driver', 'isa-serial'], ['chardev', 'c'], ['index', '2']]],
    ['path=/a,,b/c,server=on', undefined, [['path', '/a,b/c'], ['server', 'on']]],
    ['k=', undefined, [['k', '']]],
    ['k=a=b', undefined, [['k', 'a=b']]],
    ['', 'guest', []],
  ];
  for (const [text, implied, expected] of cases) {
    t.same(parseOptionString(text, implied).map((p) => [p.key, p.value]), expected, `${text} (${String(implied)})`);
  }
  t.equal(optionValue(parseOptionString('guest=a,guest=b', 'guest'), 'guest'), 'b');
  t.equal(optionValue(parseOptionString('a', 'guest'), 'process'), undefined);
});

t.test('escaping round-trips through the parser', async (t) => {
  for (const value of ['/plain/path', '/with,comma/x', ',,', 'a,b,,c,']) {
    t.equal(optionValue(parseOptionString(`path=${escapeOptionValue(value)},server=on`), 'path'), value, value);
  }
});

t.test('help requests', async (t) => {
  t.ok(asksForHelp('help', 'driver'));
  t.ok(asksForHelp('?', 'driver'));
  t.ok(asksForHelp('virtio-net-pci,help', 'driver'));
  t.ok(asksForHelp('virtio-net-pci,?', 'driver'));
  t.notOk(asksForHelp('isa-serial,chardev=help', 'driver'), 'a chardev named help is not a help request');
  t.notOk(asksForHelp('isa-serial', 'driver'));
});

t.test('arity table', async (t) => {
  for (const name of ['name', 'uuid', 'serial', 'device', 'chardev', 'mon', 'monitor', 'qmp', 'append', 'M', 'machine', 'readconfig', 'global', 'display']) {
    t.equal(optionArity(name), 'value', name);
  }
  for (const name of ['nographic', 'nodefaults', 'daemonize', 'S', 'snapshot', 'version', 'h', 'help', 'enable-kvm', 'no-reboot']) {
    t.equal(optionArity(name), 'flag', name);
  }
  t.equal(optionArity('no-such-option'), 'unknown');
  t.equal(optionArity('name=foo'), 'unknown', 'QEMU 7.2 refuses -name=foo ("invalid option")');
});
