// What hostinfo-qemu tells the user on stderr before it becomes QEMU, through the real front:
// where the guest finds its hostinfo port, and which QEMU options it did not know (and so read
// as flags); --quiet leaves both out. In a terminal that is already raw (a VM manager's, or one
// left so by an earlier -nographic) each line ends in CR LF.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pty from 'node-pty';
import t, { type Test } from 'tap';
import { withTimeout } from '../helpers/logged-process.js';
import { FRONT, launchVm, makeSite, PAUSED_VM, type Launched, type Site } from '../helpers/served-vm.js';
import { alive, servedVm, until, userEnv } from './front.js';

const GUEST_PORT = 'hostinfo: guest port ';
const NOTE = 'hostinfo: note: ';
/** -nographic without -nodefaults: QEMU's own serial0 (mon:stdio) keeps index 0. */
const NOGRAPHIC_VM = ['-accel', 'tcg', '-M', 'pc', '-S', '-nographic'];

const count = (text: string, what: string): number => text.split(what).length - 1;

/** Launches a VM that gets served and returns its stderr once the sidecar has said hello. */
async function servedStderr(t: Test, site: Site, id: string, args: readonly string[]): Promise<{ run: Launched; stderr: string }> {
  const run = launchVm(t, site, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  await servedVm(site, id);
  return { run, stderr: run.stderr() };
}

t.test('the guest port line: once, naming the device the guest opens', async (t) => {
  const site = await makeSite(t);
  const cases: Array<[string, string[], string, string]> = [
    ['isa-serial, -nodefaults', ['--', ...PAUSED_VM, '-name', 'gp-plain'], 'gp-plain', '/dev/ttyS0 (COM1)'],
    ['isa-serial, -nographic (QEMU keeps COM1)', ['--', ...NOGRAPHIC_VM, '-name', 'gp-nographic'], 'gp-nographic', '/dev/ttyS1 (COM2)'],
    // The user's port moved off the counter's 0 to 1 by -set: ours is on 0.
    ['isa-serial, -set device.ID.index', ['--', ...PAUSED_VM, '-name', 'gp-set', '-chardev', 'null,id=c1', '-device', 'isa-serial,id=s1,chardev=c1', '-set', 'device.s1.index=1'], 'gp-set', '/dev/ttyS0 (COM1)'],
    ['virtio-serial', ['--transport', 'virtio-serial', '--', ...PAUSED_VM, '-name', 'gp-virtio'], 'gp-virtio', 'virtio-serial org.hostinfo.0'],
  ];
  for (const [label, args, id, device] of cases) {
    const { stderr } = await servedStderr(t, site, id, args);
    t.equal(count(stderr, GUEST_PORT), 1, `${label}: said once`);
    t.match(stderr, `${GUEST_PORT}${device}\n`, `${label}: ${device}`);
    t.equal(count(stderr, NOTE), 0, `${label}: no note`);
    const record = JSON.parse(readFileSync(join(site.vms, id, 'vm.json'), 'utf8')) as { guestDevice: string };
    t.equal(device.includes(record.guestDevice), true, `${label}: the device the daemon is told (${record.guestDevice})`);
  }
});

t.test('options hostinfo-qemu does not know: one note naming each once', async (t) => {
  const site = await makeSite(t);
  // QEMU 7.2 knows neither: it refuses them itself, after the launcher planned around them.
  const run = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'gp-unknown', '-frobnicate', '--xyzzy', '-frobnicate']);
  t.same(await withTimeout(run.exited, 'QEMU to refuse'), { code: 1, signal: null });
  const stderr = run.stderr();
  t.equal(count(stderr, NOTE), 1, 'one note');
  t.match(stderr, `${NOTE}options not known to hostinfo-qemu, treated as flags: -frobnicate, --xyzzy\n`);
  t.match(stderr, `${GUEST_PORT}/dev/ttyS0 (COM1)\n`, 'and the guest port line');
  t.match(stderr, /qemu-system-x86_64: -frobnicate: invalid option/, "then QEMU's own word");
});

t.test('--quiet: neither line; errors and QEMU itself still speak', async (t) => {
  const site = await makeSite(t);
  for (const [id, transport] of [['gq-isa', 'isa-serial'], ['gq-virtio', 'virtio-serial']] as const) {
    const { stderr } = await servedStderr(t, site, id, ['--quiet', '--transport', transport, '--', ...PAUSED_VM, '-name', id]);
    t.equal(count(stderr, GUEST_PORT), 0, `${transport}: no guest port line`);
    t.equal(stderr, '', `${transport}: nothing from hostinfo-qemu`);
  }
  const unknown = launchVm(t, site, ['--quiet', '--', ...PAUSED_VM, '-name', 'gq-unknown', '-frobnicate']);
  t.same(await withTimeout(unknown.exited, 'QEMU to refuse'), { code: 1, signal: null });
  t.equal(count(unknown.stderr(), 'hostinfo:'), 0, 'no note, no guest port line');
  t.match(unknown.stderr(), /-frobnicate: invalid option/);
  const refused = launchVm(t, site, ['--quiet', '--', ...PAUSED_VM, '-chardev', 'null,id=c1', '-device', 'isa-serial,id=s1,chardev=c1', '-set', 'device.s1.index=foo']);
  t.same(await withTimeout(refused.exited, 'the launcher to refuse'), { code: 2, signal: null });
  t.match(refused.stderr(), /^hostinfo-qemu: .*-set device\.s1\.index=foo/, 'a refusal is not silenced');
});

t.test('in a raw terminal the line ends in CR LF', async (t) => {
  const site = await makeSite(t);
  // `stty raw`: no output processing, so what the launcher writes is what the screen gets.
  const term = pty.spawn('sh', ['-c', 'stty raw -echo && exec "$@"', 'sh', FRONT, '--config', site.config, '--', ...NOGRAPHIC_VM, '-name', 'gp-raw'], { name: 'xterm', cols: 200, rows: 30, env: userEnv() as Record<string, string> });
  let screen = '';
  term.onData((data) => { screen += data; });
  const exited = new Promise<unknown>((resolve) => term.onExit(resolve));
  t.teardown(async () => {
    if (alive(term.pid)) {
      process.kill(term.pid, 'SIGKILL');
      await exited;
    }
  });
  await servedVm(site, 'gp-raw');
  await until(() => screen.includes(GUEST_PORT), 'the line on the terminal');
  t.match(screen, `${GUEST_PORT}/dev/ttyS1 (COM2)\r\n`);
  t.equal(count(screen, GUEST_PORT), 1);
});
