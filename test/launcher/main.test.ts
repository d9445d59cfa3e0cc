// hostinfo-qemu as a real process around a real (paused, device-less) QEMU: runtime directory
// lifetime, cache autostart, sidecar supervision, exit statuses, refusals. Guest-side behaviour is
// in test/e2e.

import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { fetchStatus } from '../../daemon/client.js';
import { socketAnswers } from '../../launcher/cache-starter.js';
import { QmpClient } from '../../sidecar/qmp/index.js';
import { readLogFile, waitForLogLine } from '../helpers/log-file.js';
import { binPath, withTimeout, type Teardown } from '../helpers/logged-process.js';

const LAUNCHER = binPath('launcher/main.js');
const PAUSED_VM = ['-accel', 'tcg', '-M', 'pc', '-S', '-nodefaults', '-display', 'none'];

interface Setup {
  readonly dir: string;
  readonly runtime: string;
  readonly config: string;
}

async function setup(t: Teardown): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-launcher-'));
  const runtime = join(dir, 'run');
  await mkdir(join(dir, 'policies'));
  await writeFile(join(dir, 'policies', 'default.toml'), 'enabled = true\n');
  const config = join(dir, 'hostinfo.toml');
  await writeFile(config, 'enabled = true\npolicy_dir = "policies"\n[cache]\ninterval = 0.2\nmax_age = 2\n');
  // The launcher leaves the cache running on purpose (it serves the next VMs); not after a test.
  t.teardown(() => spawnSync('pkill', ['-KILL', '-f', '--', `--socket ${runtime}/cache.sock`]));
  return { dir, runtime, config };
}

interface Launched {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly pid: number;
  stderr(): string;
  stdout(): string;
}

function launch(t: Teardown, args: readonly string[], env: NodeJS.ProcessEnv = {}): Launched {
  const child = spawn(process.execPath, [LAUNCHER, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  return { exited: withTimeout(exited, 'the launcher to exit', 60_000), pid: child.pid ?? 0, stderr: () => stderr, stdout: () => stdout };
}

/** QEMU's pid, from the per-VM sidecar's identity line. */
const sidecarLog = (s: Setup, vm: string): string => join(s.runtime, 'logs', `${vm}.sidecar.log`);

t.test('--help, --version and refused command lines', async (t) => {
  const help = launch(t, ['--help']);
  t.same(await help.exited, { code: 0, signal: null });
  t.match(help.stdout(), /^Usage: hostinfo-qemu [^]* -- <qemu args>/);
  const version = launch(t, ['--version']);
  t.same(await version.exited, { code: 0, signal: null });
  t.equal(version.stdout(), 'hostinfo-qemu 0.1.0\n');
  const unknown = launch(t, ['-nographic']);
  t.same(await unknown.exited, { code: 2, signal: null });
  t.match(unknown.stderr(), 'unknown option "-nographic"; QEMU\'s arguments go after --, as in: hostinfo-qemu -- -nographic');
  const missing = launch(t, ['--qemu', '/nonexistent/qemu', '--', '-version']);
  t.same(await missing.exited, { code: 127, signal: null });
  t.match(missing.stderr(), 'no QEMU binary found (tried /nonexistent/qemu)');
  const fromEnv = launch(t, ['--', '-version'], { HOSTINFO_QEMU: 'no-such-qemu-binary' });
  t.same(await fromEnv.exited, { code: 127, signal: null });
});

t.test('questions to QEMU pass through untouched and need no config', async (t) => {
  const s = await setup(t);
  const version = launch(t, ['--config', '/nonexistent.toml', '--runtime-dir', s.runtime, '--', '-version']);
  t.same(await version.exited, { code: 0, signal: null });
  t.match(version.stdout(), /^QEMU emulator version \d+\.\d+/);
  await t.rejects(stat(s.runtime), { code: 'ENOENT' }, 'no runtime directory was made');
  const probe = launch(t, ['--runtime-dir', s.runtime, '--', '-machine', 'none', '-display', 'none', '-S', '-version']);
  t.same(await probe.exited, { code: 0, signal: null });
});

t.test('-daemonize is refused before anything starts', async (t) => {
  const s = await setup(t);
  const run = launch(t, ['--config', s.config, '--runtime-dir', s.runtime, '--', ...PAUSED_VM, '-daemonize']);
  t.same(await run.exited, { code: 2, signal: null });
  t.match(run.stderr(), 'does not support -daemonize');
});

t.test('a VM run: directory, cache, sidecar restart after kill -9, clean end', async (t) => {
  const s = await setup(t);
  const run = launch(t, ['--config', s.config, '--runtime-dir', s.runtime, '--', ...PAUSED_VM, '-name', 'vm-a']);
  const identity = await waitForLogLine(sidecarLog(s, 'vm-a'), (line) => line['event'] === 'identity');
  const vmDir = join(s.runtime, 'vm-a');
  t.equal((await stat(vmDir)).mode & 0o777, 0o700, 'per-VM directory is owner-only');
  t.same((await readdir(vmDir)).sort(), ['guest.sock', 'launcher.pid', 'qmp.sock']);
  t.ok(await socketAnswers(join(s.runtime, 'cache.sock')), 'the cache was started');
  await waitForLogLine(sidecarLog(s, 'vm-a'), (line) => line['event'] === 'guest-connected');

  const firstSidecar = identity['pid'] as number;
  process.kill(firstSidecar, 'SIGKILL');
  const again = await waitForLogLine(sidecarLog(s, 'vm-a'), (line) => line['event'] === 'guest-connected' && line['pid'] !== firstSidecar);
  t.not(again['pid'], firstSidecar, 'a new sidecar serves the VM');
  t.match(run.stderr(), /sidecar ended \(signal SIGKILL\); restarting in \d+ ms/);

  process.kill(run.pid, 'SIGTERM');
  t.same(await run.exited, { code: 0, signal: null }, 'QEMU ends on the forwarded SIGTERM, and its status is ours');
  await t.rejects(stat(vmDir), { code: 'ENOENT' }, 'the VM directory is removed');
  t.ok(await socketAnswers(join(s.runtime, 'cache.sock')), 'the cache outlives the VM');
  const stops = (await readLogFile(sidecarLog(s, 'vm-a'))).filter((line) => line['event'] === 'stopped');
  t.equal(stops.length, 1, 'the sidecar stopped cleanly once');
});

t.test('QEMU killed by a signal: the launcher reports 128+n', async (t) => {
  const s = await setup(t);
  const run = launch(t, ['--config', s.config, '--runtime-dir', s.runtime, '--', ...PAUSED_VM, '-name', 'vm-k']);
  const identity = await waitForLogLine(sidecarLog(s, 'vm-k'), (line) => line['event'] === 'identity');
  const qemuPid = (identity['vm'] as { pid: number }).pid;
  process.kill(qemuPid, 'SIGKILL');
  t.same(await run.exited, { code: 137, signal: null });
  await t.rejects(stat(join(s.runtime, 'vm-k')), { code: 'ENOENT' });
});

t.test('two VMs of one name at once: two directories, one cache', async (t) => {
  const s = await setup(t);
  const first = launch(t, ['--config', s.config, '--runtime-dir', s.runtime, '--', ...PAUSED_VM, '-name', 'twin']);
  const second = launch(t, ['--config', s.config, '--runtime-dir', s.runtime, '--', ...PAUSED_VM, '-name', 'twin']);
  await waitForLogLine(sidecarLog(s, 'twin'), (line) => line['event'] === 'guest-connected');
  await waitForLogLine(sidecarLog(s, 'twin-2'), (line) => line['event'] === 'guest-connected');
  const caches = spawnSync('pgrep', ['-f', '--', `--socket ${s.runtime}/cache.sock`], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
  t.equal(caches.length, 1, 'exactly one cache serves both');
  await waitForLogLine(sidecarLog(s, 'twin-2'), (line) => line['event'] === 'cache-subscribed');
  await waitForLogLine(sidecarLog(s, 'twin'), (line) => line['event'] === 'cache-subscribed');
  t.equal((await fetchStatus(join(s.runtime, 'cache.sock'))).vmcount, 2, 'two VMs without -uuid count as two');
  process.kill(first.pid, 'SIGTERM');
  process.kill(second.pid, 'SIGTERM');
  t.same(await first.exited, { code: 0, signal: null });
  t.same(await second.exited, { code: 0, signal: null });
});

t.test('a directory left by a killed launcher is reused', async (t) => {
  const s = await setup(t);
  await mkdir(join(s.runtime, 'stale'), { recursive: true });
  await writeFile(join(s.runtime, 'stale', 'launcher.pid'), '999999999\n');
  const run = launch(t, ['--config', s.config, '--runtime-dir', s.runtime, '--', ...PAUSED_VM, '-name', 'stale']);
  await waitForLogLine(sidecarLog(s, 'stale'), (line) => line['event'] === 'guest-connected');
  t.equal((await readdir(s.runtime)).filter((name) => name.startsWith('stale')).length, 1, 'no stale-2');
  process.kill(run.pid, 'SIGTERM');
  await run.exited;
});

t.test('a broken host config does not keep the VM from starting', async (t) => {
  const s = await setup(t);
  await writeFile(s.config, 'enabled = maybe\n');
  const userQmp = join(s.dir, 'user-qmp.sock');
  const run = launch(t, ['--config', s.config, '--runtime-dir', s.runtime, '--', ...PAUSED_VM, '-name', 'vm-b', '-qmp', `unix:${userQmp},server=on,wait=off`]);
  // A QMP greeting on the user's own monitor means QEMU's main loop runs; a SIGTERM that came
  // earlier, before QEMU installs its handlers, would kill it (and the launcher would say 143).
  await withTimeout((async () => {
    while (!(await socketAnswers(userQmp))) await new Promise((resolve) => setTimeout(resolve, 50));
  })(), 'QEMU to listen on the user\'s QMP socket');
  const qmp = new QmpClient();
  await qmp.connect(userQmp);
  await qmp.close();
  t.match(run.stderr(), `${s.config}:1: invalid TOML`);
  t.match(run.stderr(), 'starting QEMU without hostinfo');
  process.kill(run.pid, 'SIGTERM');
  t.same(await run.exited, { code: 0, signal: null });
  await t.rejects(stat(join(s.runtime, 'vm-b')), { code: 'ENOENT' }, 'nothing was wired');
});
