// libvirt's QEMU hook decided from its arguments, the domain XML and libvirtd's pidfile (a temp
// run directory standing in for /run/libvirt/qemu): attach on started and reconnect, detach on
// stopped, nothing otherwise, and the domain XML read only when it is needed.

import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { libvirtHookAction } from '../../../ctl/hooks/libvirt.js';
import { libvirtFixture } from './libvirt-fixtures.js';

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

function runDir(tap: Tap, pids: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'hostinfo-libvirt-run-'));
  tap.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(pids)) writeFileSync(join(dir, `${name}.pid`), text);
  return dir;
}

const xmlOf = (name: string) => (): string => libvirtFixture(name);
const unread = (): string => {
  throw new Error('the domain XML was read');
};

t.test('started and reconnect attach the domain\'s hostinfo port', async (t) => {
  const dir = runDir(t, { web1: '4242\n', db1: '5151' });
  for (const operation of ['started', 'reconnect']) {
    t.same(libvirtHookAction(['web1', operation, 'begin', '-'], xmlOf('web1-live.xml'), dir), {
      kind: 'attach',
      specs: [{
        pid: 4242, name: 'web1', uuid: '0b7e6f52-1c1e-4b8e-9f0e-5a3c1d2e4f60', transport: 'virtio-serial',
        guestSocket: '/var/lib/libvirt/qemu/channel/target/domain-3-web1/org.hostinfo.0', qmpSocket: undefined, guestDevice: 'org.hostinfo.0',
      }],
      notes: [],
    }, operation);
  }
  t.same(libvirtHookAction(['db1', 'started', 'begin', '-'], xmlOf('db1-serial-live.xml'), dir), {
    kind: 'attach',
    specs: [{ pid: 5151, name: 'db1', uuid: '5d2c9a1e-33b4-4f0c-8e6a-1b2c3d4e5f60', transport: 'isa-serial', guestSocket: '/var/lib/libvirt/qemu/hostinfo-db1.sock', qmpSocket: undefined, guestDevice: '/dev/ttyS1' }],
    notes: [],
  }, 'a pidfile without a newline');
});

t.test('one port per VM: the first is attached, the others named', async (t) => {
  const dir = runDir(t, { twoports: '777\n' });
  const action = libvirtHookAction(['twoports', 'started', 'begin', '-'], xmlOf('both-ports.xml'), dir);
  t.match(action, { kind: 'attach', specs: [{ pid: 777, transport: 'isa-serial', guestDevice: '/dev/ttyS2' }] });
  t.same(action.kind === 'attach' ? action.notes : undefined, ['org.hostinfo.0 (/var/lib/libvirt/qemu/channel/target/domain-12-twoports/org.hostinfo.0) not attached: one hostinfo port per VM']);
});

t.test('stopped detaches the pidfile\'s QEMU: not the same-named destination of a migration', async (t) => {
  const dir = runDir(t, { web1: '4242\n' });
  t.same(libvirtHookAction(['web1', 'stopped', 'end', '-'], xmlOf('web1-live.xml'), dir), { kind: 'detach', vm: '4242' }, 'by the pid libvirt still has in its pidfile');
});

t.test('stopped detaches a domain with a hostinfo port by name; other operations do nothing', async (t) => {
  const dir = runDir(t);
  t.same(libvirtHookAction(['web1', 'stopped', 'end', '-'], xmlOf('web1-live.xml'), dir), { kind: 'detach', vm: 'web1' }, 'without a pidfile: by name (which the daemon refuses when two VMs have it)');
  t.same(libvirtHookAction(['proxied', 'stopped', 'end', '-'], xmlOf('unaliased-unix-serial.xml'), dir), { kind: 'none', note: undefined }, 'a domain without one is not hostinfod\'s business');
  for (const operation of ['prepare', 'start', 'release', 'migrate', 'restore', 'attach', 'STARTED', '']) {
    t.same(libvirtHookAction(['web1', operation, 'begin', '-'], unread, dir), { kind: 'none', note: undefined }, `operation ${JSON.stringify(operation)}`);
  }
});

t.test('nothing to attach', async (t) => {
  const dir = runDir(t, { proxied: '4242\n', outbound: '4242\n' });
  t.same(libvirtHookAction(['proxied', 'started', 'begin', '-'], xmlOf('unaliased-unix-serial.xml'), dir), { kind: 'none', note: undefined }, 'a domain without hostinfo ports is left alone, silently');
  t.match(libvirtHookAction(['outbound', 'started', 'begin', '-'], xmlOf('connect-mode.xml'), dir), { kind: 'none', note: /^channel org\.hostinfo\.0: <source mode='connect'\/>/ }, 'a skipped port is the note');
  t.same(libvirtHookAction(['wrongkind', 'started', 'begin', '-'], xmlOf('not-unix.xml'), runDir(t)), {
    kind: 'none',
    note: "serial ua-hostinfo: type='pty', not a unix socket; channel org.hostinfo.0: type='spicevmc', not a unix socket; channel org.hostinfo.1: no <source path='...'/>",
  }, 'every skipped port, with no pidfile needed to say so');
});

t.test('the pidfile: missing, not a pid, a symlink', async (t) => {
  const dir = runDir(t, { junk: 'hello\n', one: '1\n', empty: '', big: `${'9'.repeat(40)}\n`, hex: '0x1f\n', exp: '1e3\n' });
  const attach = (name: string): ReturnType<typeof libvirtHookAction> => libvirtHookAction([name, 'started', 'begin', '-'], xmlOf('web1-live.xml'), dir);
  t.same(attach('web1'), { kind: 'none', note: `cannot attach web1: ${join(dir, 'web1.pid')} does not exist` });
  t.same(attach('junk'), { kind: 'none', note: `cannot attach junk: ${join(dir, 'junk.pid')} holds no pid` });
  t.same(attach('one'), { kind: 'none', note: `cannot attach one: ${join(dir, 'one.pid')} holds no pid` }, 'pid 1 is never QEMU');
  t.same(attach('empty'), { kind: 'none', note: `cannot attach empty: ${join(dir, 'empty.pid')} holds no pid` });
  t.same(attach('hex'), { kind: 'none', note: `cannot attach hex: ${join(dir, 'hex.pid')} holds no pid` }, 'decimal only: not 0x1f = 31');
  t.same(attach('exp'), { kind: 'none', note: `cannot attach exp: ${join(dir, 'exp.pid')} holds no pid` }, 'nor 1e3 = 1000');
  t.same(attach('big'), { kind: 'none', note: `cannot attach big: ${join(dir, 'big.pid')} is larger than 32 bytes` });

  const elsewhere = join(dir, 'elsewhere');
  writeFileSync(elsewhere, '4242\n');
  symlinkSync(elsewhere, join(dir, 'linked.pid'));
  t.same(attach('linked'), { kind: 'none', note: `cannot attach linked: ${join(dir, 'linked.pid')} is a symbolic link` }, 'never through a symlink (O_NOFOLLOW)');
});

t.test('arguments that are not a domain\'s', async (t) => {
  const dir = runDir(t);
  t.same(libvirtHookAction([], unread, dir), { kind: 'none', note: 'libvirt passes NAME OPERATION SUB-OPERATION EXTRA; got fewer' });
  t.same(libvirtHookAction(['web1'], unread, dir), { kind: 'none', note: 'libvirt passes NAME OPERATION SUB-OPERATION EXTRA; got fewer' });
  for (const name of ['../../etc/passwd', 'a/b', '.', '..']) {
    t.same(libvirtHookAction([name, 'started', 'begin', '-'], unread, dir), { kind: 'none', note: `not a domain name: ${JSON.stringify(name)}` }, `name ${name}`);
    t.same(libvirtHookAction([name, 'stopped', 'end', '-'], unread, dir), { kind: 'none', note: `not a domain name: ${JSON.stringify(name)}` }, `stopped ${name}`);
  }
});

t.test('the domain XML names the VM; the hook argument stands in when it has no name', async (t) => {
  const dir = runDir(t, { argname: '4242\n' });
  const xml = (): string => "<domain type='kvm'><devices><channel type='unix'><source mode='bind' path='/run/x.sock'/><target type='virtio' name='org.hostinfo.0'/></channel></devices></domain>";
  t.match(libvirtHookAction(['argname', 'started', 'begin', '-'], xml, dir), { kind: 'attach', specs: [{ name: 'argname', uuid: undefined }] });
  t.throws(() => libvirtHookAction(['argname', 'started', 'begin', '-'], () => '<domain>', dir), { name: 'XmlError' }, 'a broken XML is an error for ctl/main.ts to report');
});

t.test('a vhostmd channel is attached with the hostinfo port, and only with one', async (t) => {
  const dir = runDir(t, { web1: '4242\n' });
  const vhostmd = '/var/lib/libvirt/qemu/channel/target/domain-3-web1/org.github.vhostmd.1';
  const channel = `<channel type='unix'><source mode='bind' path='${vhostmd}'/><target type='virtio' name='org.github.vhostmd.1'/></channel>`;
  const withVhostmd = (): string => libvirtFixture('web1-live.xml').replace('</devices>', `${channel}</devices>`);
  t.match(libvirtHookAction(['web1', 'started', 'begin', '-'], withVhostmd, dir), { kind: 'attach', specs: [{ pid: 4242, guestDevice: 'org.hostinfo.0', vhostmdSocket: vhostmd }], notes: [] });
  const alone = (): string => `<domain type='kvm'><name>web1</name><devices>${channel}</devices></domain>`;
  t.match(libvirtHookAction(['web1', 'started', 'begin', '-'], alone, dir), { kind: 'none', note: /^channel org\.github\.vhostmd\.1 not attached: the domain has no hostinfo port/ });
  const twice = (): string => withVhostmd().replace('</devices>', `${channel.replace(vhostmd, `${vhostmd}-2`)}</devices>`);
  t.match(libvirtHookAction(['web1', 'started', 'begin', '-'], twice, dir), { kind: 'attach', specs: [{ vhostmdSocket: vhostmd }], notes: [/one vhostmd port per VM/] });
});
