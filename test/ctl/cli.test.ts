// hostinfo-ctl's command line on its own (parseCtlArgs): every verb, what each refuses, and that
// a flag one verb takes is a usage error on another rather than ignored.

import t from 'tap';
import { parseCtlArgs, USAGE, type Command } from '../../ctl/cli.js';

const command = (argv: readonly string[]): Command => {
  const parsed = parseCtlArgs(argv);
  if (!parsed.ok) throw new Error(`usage error for ${argv.join(' ')}: ${parsed.message}`);
  return parsed.command;
};
const refusal = (argv: readonly string[]): string => {
  const parsed = parseCtlArgs(argv);
  return parsed.ok ? `accepted as ${JSON.stringify(parsed.command)}` : parsed.message;
};

t.test('help, version and the location flags', async (t) => {
  t.same(command(['--help']), { verb: 'help' });
  t.same(command(['-h', 'status']), { verb: 'help' }, '--help wins over a verb');
  t.same(command(['--version']), { verb: 'version' });
  const parsed = parseCtlArgs(['--config', '/etc/x.toml', '--runtime-dir', '/run/x', 'status']);
  t.match(parsed, { ok: true, location: { configPath: '/etc/x.toml', runtimeDir: '/run/x' } });
  t.match(parseCtlArgs(['status']), { ok: true, location: { configPath: undefined, runtimeDir: undefined } });
  t.equal(refusal(['--config', '', 'status']), '--config needs a path');
  t.equal(refusal(['--runtime-dir=', 'status']), '--runtime-dir needs a path');
  t.match(refusal(['--config']), /--config/, 'a flag without its value');
  t.match(refusal(['--bogus', 'status']), /Unknown option '--bogus'/);
});

t.test('a verb is required and must be known', async (t) => {
  t.equal(refusal([]), 'a verb is needed: status, check, explain, metrics, query, reload, attach, detach or hook');
  t.match(refusal(['stats']), /^unknown verb "stats": status, check, explain/);
  for (const inherited of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
    t.match(refusal([inherited]), /^unknown verb/, `${inherited} is no verb (not an Object.prototype key)`);
  }
  for (const verb of ['status', 'check', 'explain', 'metrics', 'query', 'reload', 'attach', 'detach', 'hook']) {
    t.match(USAGE, new RegExp(`^  ${verb}\\b`, 'm'), `USAGE lists ${verb}`);
  }
});

t.test('status, reload, detach', async (t) => {
  t.same(command(['status']), { verb: 'status', vm: undefined, json: false });
  t.same(command(['status', 'web1', '--json']), { verb: 'status', vm: 'web1', json: true });
  t.same(command(['--json', 'status']), { verb: 'status', vm: undefined, json: true }, 'flags anywhere');
  t.equal(refusal(['status', 'a', 'b']), 'status takes at most one VM');
  t.same(command(['reload', '--json']), { verb: 'reload', json: true });
  t.equal(refusal(['reload', 'web1']), 'reload takes no operand');
  t.same(command(['detach', '1234']), { verb: 'detach', vm: '1234', json: false });
  t.equal(refusal(['detach']), 'detach takes one VM: its id, name, uuid or QEMU pid');
  t.equal(refusal(['detach', 'a', 'b']), 'detach takes one VM: its id, name, uuid or QEMU pid');
  t.same(command(['query', 'web1', 'PING', '"a b"']), { verb: 'query', vm: 'web1', line: 'PING "a b"', json: false });
  t.equal(refusal(['query', 'web1']), 'query takes a VM and the request its guest would send (e.g. physcpus)');
  t.equal(refusal(['query', 'web1', 'x'.repeat(256)]), 'query: the request must be printable ASCII of at most 255 characters');
});

t.test('check: files optional, --json only', async (t) => {
  t.same(command(['check']), { verb: 'check', files: [], json: false });
  t.same(command(['check', 'a.toml', '/etc/hostinfo/policies/b.toml', '--json']), { verb: 'check', files: ['a.toml', '/etc/hostinfo/policies/b.toml'], json: true });
  t.same(command(['check', '--', '--odd-name.toml']), { verb: 'check', files: ['--odd-name.toml'], json: false }, 'after --, a file that looks like a flag');
  t.equal(refusal(['check', '']), 'check takes file paths, not an empty one');
  t.equal(refusal(['check', '--pid', '1']), 'check does not take --pid');
  t.equal(refusal(['check', '--root', '/']), 'check does not take --root');
});

t.test('explain: exactly one VM', async (t) => {
  t.same(command(['explain', 'web1']), { verb: 'explain', vm: 'web1', json: false });
  t.same(command(['explain', '--json', '0b7e6f52-1c1e-4b8e-9f0e-5a3c1d2e4f60']), { verb: 'explain', vm: '0b7e6f52-1c1e-4b8e-9f0e-5a3c1d2e4f60', json: true });
  t.equal(refusal(['explain']), 'explain takes one VM: its id, name, uuid or QEMU pid');
  t.equal(refusal(['explain', 'a', 'b']), 'explain takes one VM: its id, name, uuid or QEMU pid');
  t.equal(refusal(['explain', 'web1', '--serial', '1']), 'explain does not take --serial');
});

t.test('metrics: nothing else', async (t) => {
  t.same(command(['metrics']), { verb: 'metrics' });
  t.equal(refusal(['metrics', '--json']), 'metrics does not take --json', 'the text format is the only one');
  t.equal(refusal(['metrics', 'web1']), 'metrics takes no operand');
});

t.test('attach: flags validated before anything is sent', async (t) => {
  const socket = '/var/lib/libvirt/qemu/web1.hostinfo.sock';
  t.same(command(['attach', '--pid', '4242', '--guest-socket', socket]), {
    verb: 'attach',
    spec: { pid: 4242, name: undefined, uuid: undefined, transport: 'isa-serial', guestSocket: socket, qmpSocket: undefined, guestDevice: undefined },
    json: false,
  }, 'defaults: isa-serial, the device left for the daemon to default');
  t.match(command(['attach', '--pid', '4242', '--guest-socket', socket, '--transport', 'virtio-serial', '--name', 'web1', '--uuid', 'u-1', '--qmp-socket', '/run/q.sock', '--guest-device', 'org.x.1', '--json']), {
    verb: 'attach', spec: { pid: 4242, name: 'web1', uuid: 'u-1', transport: 'virtio-serial', qmpSocket: '/run/q.sock', guestDevice: 'org.x.1' }, json: true,
  });
  t.equal(refusal(['attach', '--guest-socket', socket]), '--pid needs QEMU\'s pid, got ""');
  t.equal(refusal(['attach', '--pid', '12a', '--guest-socket', socket]), '--pid needs QEMU\'s pid, got "12a"');
  t.equal(refusal(['attach', '--pid', '1', '--guest-socket', socket]), '--pid must be an integer above 1', 'pid 1 is init, never QEMU');
  t.match(refusal(['attach', '--pid', '4242']), /^--guest-socket is required/);
  t.equal(refusal(['attach', '--pid', '4242', '--guest-socket', 'relative.sock']), '--guest-socket must be an absolute path');
  t.match(refusal(['attach', '--pid', '4242', '--guest-socket', `/${'x'.repeat(200)}`]), /^--guest-socket is longer than \d+ bytes/);
  t.equal(refusal(['attach', '--pid', '4242', '--guest-socket', socket, '--transport', 'usb']), '--transport must be isa-serial or virtio-serial');
  t.equal(refusal(['attach', '--pid', '4242', '--guest-socket', socket, '--qmp-socket', 'q.sock']), '--qmp-socket must be an absolute path');
  t.match(refusal(['attach', '--pid', '4242', '--guest-socket', socket, '--name', '']), /^--name must be a string of 1 to \d+ characters/);
  t.match(refusal(['attach', 'web1', '--pid', '4242', '--guest-socket', socket]), /^attach takes flags only, not "web1"/);
  t.equal(refusal(['attach', '--pid', '4242', '--guest-socket', socket, '--serial', '1']), 'attach does not take --serial');
  t.match(command(['attach', '--pid', '4242', '--guest-socket', socket, '--vhostmd-socket', '/run/l/org.github.vhostmd.1']), { spec: { vhostmdSocket: '/run/l/org.github.vhostmd.1' } }, 'the vhostmd port\'s socket');
  t.equal(refusal(['attach', '--pid', '4242', '--guest-socket', socket, '--vhostmd-socket', 'v.sock']), '--vhostmd-socket must be an absolute path');
  t.equal(refusal(['status', '--vhostmd-socket', '/v']), 'status does not take --vhostmd-socket');
});

t.test('hook: manager, operands after --, --serial for proxmox only, --root absolute', async (t) => {
  t.same(command(['hook', 'libvirt', '--', 'web1', 'started', 'begin', '-']), { verb: 'hook', manager: 'libvirt', args: ['web1', 'started', 'begin', '-'], serial: 1, root: '/' });
  t.same(command(['hook', 'proxmox', '--serial', '2', '--root', '/tmp/pve', '--', '101', 'post-start']), { verb: 'hook', manager: 'proxmox', args: ['101', 'post-start'], serial: 2, root: '/tmp/pve' });
  t.same(command(['hook', 'libvirt', '--', '--looks-like-a-flag', 'stopped']), { verb: 'hook', manager: 'libvirt', args: ['--looks-like-a-flag', 'stopped'], serial: 1, root: '/' }, 'after -- an operand is never a flag');
  t.equal(refusal(['hook']), 'hook needs a manager: libvirt or proxmox');
  t.equal(refusal(['hook', 'xen', '--', 'a']), 'hook needs a manager: libvirt or proxmox');
  t.equal(refusal(['hook', 'libvirt', '--serial', '1', '--', 'web1', 'started']), '--serial is for hook proxmox; libvirt\'s domain XML names the port');
  t.equal(refusal(['hook', 'proxmox', '--serial', 'one', '--', '101', 'post-start']), '--serial needs a serial port number (serial1: socket is 1), got "one"');
  t.equal(refusal(['hook', 'proxmox', '--root', 'pve', '--', '101', 'post-start']), '--root needs an absolute directory, got "pve"');
  t.equal(refusal(['hook', 'libvirt', '--json', '--', 'web1', 'started']), 'hook does not take --json', 'a hook prints no JSON');
});
