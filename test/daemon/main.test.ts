// The real hostinfod binary, spawned: flags, start-up, modes, single instance, stale sockets,
// signals and its log file.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { HOSTINFO_VERSION } from '../../common/version.js';
import { fetchStatus } from '../../daemon/control-client.js';
import { readLogFile } from '../helpers/log-file.js';
import { type DaemonProcess, TestClient, spawnDaemon, tempDir, withTimeout } from './helpers.js';

type T = Pick<typeof t, 'equal' | 'match' | 'ok' | 'teardown'>;

function setupConfig(t: T, extra = ''): { dir: string; config: string; runtimeDir: string; socket: string } {
  const dir = tempDir(t);
  const runtimeDir = join(dir, 'run');
  const config = join(dir, 'hostinfo.toml');
  writeFileSync(config, `policy_dir = ${JSON.stringify(join(dir, 'policies'))}\nruntime_dir = ${JSON.stringify(runtimeDir)}\n${extra}`);
  return { dir, config, runtimeDir, socket: join(runtimeDir, 'hostinfod.sock') };
}

/** A socket file whose owner died without removing it, exactly as a crashed daemon leaves it. */
async function makeStaleSocket(t: T, path: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  await once(child, 'exit');
  t.ok(statSync(path).isSocket(), 'stale socket left behind');
  const refused = await new Promise<string | undefined>((resolve) => {
    connect(path).on('connect', () => resolve(undefined)).on('error', (e: NodeJS.ErrnoException) => resolve(e.code));
  });
  t.equal(refused, 'ECONNREFUSED');
}

const failure = (daemon: DaemonProcess): Record<string, unknown> | undefined => daemon.lines.find((line) => line['event'] === 'start-failed');

t.test('--help and --version exit 0; bad flags exit 2', async (t) => {
  const help = spawnDaemon(t, ['--help']);
  t.equal((await help.exited).code, 0);
  t.match(help.stdout, /--foreground\s+accepted for clarity and has no effect: hostinfod never daemonizes itself/);
  t.match(help.stdout, /--runtime-dir DIR/);
  const version = spawnDaemon(t, ['--version']);
  t.equal((await version.exited).code, 0);
  t.equal(version.stdout, `hostinfod ${HOSTINFO_VERSION}\n`);
  for (const [args, message] of [[['--interval', 'soon'], /--interval needs seconds/], [['--socket', '/x'], /Unknown option '--socket'/], [['stray'], /Unexpected argument/]] as const) {
    const bad = spawnDaemon(t, args);
    t.equal((await bad.exited).code, 2, args.join(' '));
    t.match(bad.stderr, message);
    t.match(bad.stderr, /Try hostinfod --help/);
    t.equal(bad.stdout, '');
  }
});

t.test('serves status on <runtime_dir>/hostinfod.sock, owner-only, sampling at --interval', async (t) => {
  const { config, runtimeDir, socket } = setupConfig(t);
  const daemon = spawnDaemon(t, ['--config', config, '--interval', '0.05', '--foreground']);
  t.equal(await daemon.started(), 'listening');
  t.equal((await daemon.waitFor('listening'))['socket'], socket);
  t.same(['', 'vms', 'logs'].map((part) => statSync(join(runtimeDir, part)).mode & 0o7777), [0o700, 0o700, 0o700]);
  t.equal(statSync(socket).mode & 0o777, 0o600);
  const first = await fetchStatus(socket);
  t.match(first, { v: 2, type: 'status', pid: daemon.child.pid, intervalMs: 50, vmcount: 0, vms: [] });
  const later = await withTimeout((async () => {
    for (;;) {
      const reply = await fetchStatus(socket);
      if ((reply.seq ?? 0) > (first.seq ?? 0)) return reply;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })(), 'a newer sample');
  t.ok((later.takenAt ?? 0) >= (first.takenAt ?? 0));
});

t.test('--runtime-dir wins over the config\'s runtime_dir', async (t) => {
  const { dir, config, runtimeDir } = setupConfig(t);
  const other = join(dir, 'other');
  const daemon = spawnDaemon(t, ['--config', config, '--runtime-dir', other]);
  t.equal(await daemon.started(), 'listening');
  t.equal((await fetchStatus(join(other, 'hostinfod.sock'))).pid, daemon.child.pid);
  t.notOk(existsSync(runtimeDir));
});

t.test('with a group: 0750 and a sticky 1770 vms/ of that group; the socket stays 0600', { skip: process.geteuid?.() !== 0 && 'needs root to chown' }, async (t) => {
  const { config, runtimeDir, socket } = setupConfig(t, 'group = "65534"\n');
  const daemon = spawnDaemon(t, ['--config', config]);
  t.equal(await daemon.started(), 'listening');
  t.same([statSync(runtimeDir).mode & 0o7777, statSync(runtimeDir).gid], [0o750, 65534]);
  t.same([statSync(join(runtimeDir, 'vms')).mode & 0o7777, statSync(join(runtimeDir, 'vms')).gid], [0o1770, 65534]);
  t.equal(statSync(socket).mode & 0o777, 0o600);
});

t.test('--log-file: JSON lines in <runtime_dir>/logs/hostinfod.log, nothing on stderr', async (t) => {
  const { config, runtimeDir, socket } = setupConfig(t);
  const daemon = spawnDaemon(t, ['--config', config, '--log-file']);
  const log = join(runtimeDir, 'logs', 'hostinfod.log');
  await withTimeout((async () => {
    while (!existsSync(socket) || !(await readLogFile(log)).some((line) => line['event'] === 'listening')) await new Promise((resolve) => setTimeout(resolve, 20));
  })(), 'the daemon to log that it listens');
  t.equal(statSync(log).mode & 0o777, 0o600);
  t.equal((await fetchStatus(socket)).pid, daemon.child.pid);
  t.equal(daemon.stderr, '');
});

t.test('SIGTERM: control connections closed, socket removed, exit 0', async (t) => {
  const { config, socket } = setupConfig(t);
  const daemon = spawnDaemon(t, ['--config', config]);
  t.equal(await daemon.started(), 'listening');
  const idle = await TestClient.open(socket);
  daemon.child.kill('SIGTERM');
  t.equal((await withTimeout(idle.closed, 'client close')).code, 1001, 'a going-away close, not a dropped connection');
  t.same(await daemon.exited, { code: 0, signal: null });
  t.notOk(existsSync(socket), 'socket removed');
  t.notOk(existsSync(`${socket}.lock`), 'no lock left behind');
  t.ok(daemon.lines.some((line) => line['event'] === 'stopped'));
});

t.test('a stale socket from a crashed daemon is replaced', async (t) => {
  const { config, runtimeDir, socket } = setupConfig(t);
  mkdirSync(runtimeDir, { mode: 0o700 });
  await makeStaleSocket(t, socket);
  const daemon = spawnDaemon(t, ['--config', config]);
  t.equal(await daemon.started(), 'listening');
  t.ok(daemon.lines.some((line) => line['event'] === 'stale-socket'));
  t.equal((await fetchStatus(socket)).pid, daemon.child.pid);
});

t.test('a daemon killed with SIGKILL is replaced by the next one', async (t) => {
  const { config, socket } = setupConfig(t);
  const first = spawnDaemon(t, ['--config', config]);
  t.equal(await first.started(), 'listening');
  first.child.kill('SIGKILL');
  await first.exited;
  t.ok(existsSync(socket), 'the killed daemon left its socket');
  const second = spawnDaemon(t, ['--config', config]);
  t.equal(await second.started(), 'listening');
  t.equal((await fetchStatus(socket)).pid, second.child.pid);
});

async function race(t: T, starters: number, stale: boolean): Promise<void> {
  const { config, runtimeDir, socket } = setupConfig(t);
  if (stale) {
    mkdirSync(runtimeDir, { mode: 0o700 });
    await makeStaleSocket(t, socket);
  }
  const daemons: DaemonProcess[] = [];
  for (let i = 0; i < starters; i++) daemons.push(spawnDaemon(t, ['--config', config]));
  const outcomes = await Promise.all(daemons.map((d) => d.started()));
  const winners = daemons.filter((_, i) => outcomes[i] === 'listening');
  t.equal(winners.length, 1, `exactly one of ${starters} serves (stale socket: ${stale})`);
  for (const loser of daemons.filter((_, i) => outcomes[i] === 'exit')) {
    t.equal((await loser.exited).code, 3, 'the others exit 3: already running');
    t.match(failure(loser), { code: 'ALREADY_RUNNING' });
  }
  // The one that says it serves is the one reachable at the path: nobody unlinked its socket.
  t.equal((await fetchStatus(socket)).pid, winners[0]?.child.pid);
}

t.test('daemons started at once: exactly one serves', async (t) => {
  for (let round = 0; round < 3; round++) await race(t, 2, false);
});

t.test('daemons started at once on a stale socket: exactly one replaces it', async (t) => {
  for (let round = 0; round < 3; round++) await race(t, 3, true);
});

t.test('a path that is not a socket is never replaced', async (t) => {
  const { config, runtimeDir, socket } = setupConfig(t);
  mkdirSync(runtimeDir, { mode: 0o700 });
  writeFileSync(socket, 'precious');
  const daemon = spawnDaemon(t, ['--config', config]);
  t.equal(await daemon.started(), 'exit');
  t.equal((await daemon.exited).code, 1);
  t.match(failure(daemon), { code: 'SOCKET_PATH_NOT_SOCKET' });
  t.equal(readFileSync(socket, 'utf8'), 'precious');
});

t.test('a runtime directory others can write to is refused and left alone', async (t) => {
  const { config, runtimeDir } = setupConfig(t);
  mkdirSync(runtimeDir);
  chmodSync(runtimeDir, 0o777);
  const daemon = spawnDaemon(t, ['--config', config]);
  t.equal(await daemon.started(), 'exit');
  t.equal((await daemon.exited).code, 1);
  t.match(failure(daemon), { code: 'RUNTIME_DIR_UNSAFE' });
  t.equal(statSync(runtimeDir).mode & 0o777, 0o777);
  t.notOk(existsSync(join(runtimeDir, 'hostinfod.sock')));
});

t.test('a broken config: exit 1, saying why', async (t) => {
  const { config } = setupConfig(t, 'interval = "often"\nbogus = 1\n');
  const daemon = spawnDaemon(t, ['--config', config]);
  t.equal(await daemon.started(), 'exit');
  t.equal((await daemon.exited).code, 1);
  t.match(failure(daemon), { err: /hostinfo\.toml/ });
});

t.test('SIGHUP re-reads config and static inventory and keeps serving', async (t) => {
  const { config, socket } = setupConfig(t);
  const daemon = spawnDaemon(t, ['--config', config]);
  t.equal(await daemon.started(), 'listening');
  daemon.child.kill('SIGHUP');
  const reloaded = await daemon.waitFor('reloaded');
  t.equal(reloaded['kernel'], (await import('node:os')).release());
  t.equal((await fetchStatus(socket)).pid, daemon.child.pid);
});
