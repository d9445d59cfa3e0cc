// The real hostinfo-cache binary, spawned: start-up, permissions, single instance, stale sockets,
// signals and flags.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { fetchStatus } from '../../daemon/client.js';
import { HOST_ITEM_NAMES } from '../../policies/items.js';
import { type DaemonProcess, TestClient, hello, spawnDaemon, tempDir, withTimeout } from './helpers.js';

type T = Pick<typeof t, 'equal' | 'match' | 'ok' | 'teardown'>;

function setupConfig(t: T, extra = ''): { dir: string; config: string; runtimeDir: string; socket: string } {
  const dir = tempDir(t);
  const runtimeDir = join(dir, 'run');
  const config = join(dir, 'hostinfo.toml');
  writeFileSync(config, `runtime_dir = ${JSON.stringify(runtimeDir)}\n${extra}`);
  return { dir, config, runtimeDir, socket: join(runtimeDir, 'cache.sock') };
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

t.test('--help tells the truth and exits 0; bad flags exit 2', async (t) => {
  const help = spawnDaemon(t, ['--help']);
  t.equal((await help.exited).code, 0);
  t.match(help.stdout, /--foreground/);
  t.match(help.stdout, /always runs in the\s+foreground and never daemonizes itself/);
  const bad = spawnDaemon(t, ['--interval', 'soon']);
  t.equal((await bad.exited).code, 2);
  t.match(bad.stderr, /--interval needs seconds/);
  t.equal(bad.stdout, '');
});

t.test('serves filtered samples on <runtime_dir>/cache.sock, owner-only by default', async (t) => {
  const { config, runtimeDir, socket } = setupConfig(t);
  const daemon = spawnDaemon(t, ['--config', config, '--interval', '0.05', '--foreground']);
  t.equal(await daemon.started(), 'listening');
  t.equal((await daemon.waitFor('listening'))['socket'], socket);
  t.equal(statSync(runtimeDir).mode & 0o7777, 0o700);
  t.equal(statSync(socket).mode & 0o777, 0o600);

  const client = await TestClient.open(socket);
  t.teardown(() => client.close());
  client.send(hello(['physcpus', 'vmcount', 'uptime', 'vcpudelay']));
  t.same((await client.nextOf('subscribed'))['items'], ['physcpus', 'uptime', 'vmcount']);
  let lastSeq = 0;
  let lastTime = 0;
  for (let i = 0; i < 5; i++) {
    const sample = await client.nextOf('sample');
    const values = sample['values'] as Record<string, unknown>;
    t.same(Object.keys(values).filter((key) => key !== 'uptime'), ['physcpus', 'vmcount']);
    t.ok((sample['seq'] as number) > lastSeq && (sample['takenAt'] as number) >= lastTime);
    lastSeq = sample['seq'] as number;
    lastTime = sample['takenAt'] as number;
    if (i === 4) t.equal(values['vmcount'], 1, 'this subscriber is counted once its hello was sampled');
  }
});

t.test('with a group: directory 0750 and socket 0660, both of that group', { skip: process.geteuid?.() !== 0 && 'needs root to chown' }, async (t) => {
  const ownGid = process.getgid?.() ?? 0;
  const entry = readFileSync('/etc/group', 'utf8').split('\n').map((line) => line.split(':')).find((f) => f.length >= 3 && f[2] !== String(ownGid) && /^\d+$/.test(f[2] ?? ''));
  if (entry === undefined) {
    t.comment('no second group in /etc/group: nothing to test');
    return;
  }
  const [name, , gidText] = entry;
  const { config, runtimeDir, socket } = setupConfig(t, `group = ${JSON.stringify(name)}\n`);
  const daemon = spawnDaemon(t, ['--config', config]);
  t.equal(await daemon.started(), 'listening');
  t.same([statSync(runtimeDir).mode & 0o7777, statSync(runtimeDir).gid], [0o750, Number(gidText)]);
  t.same([statSync(socket).mode & 0o777, statSync(socket).gid], [0o660, Number(gidText)]);
});

t.test('SIGTERM: clients closed, socket removed, exit 0', async (t) => {
  const { config, socket } = setupConfig(t);
  const daemon = spawnDaemon(t, ['--config', config]);
  t.equal(await daemon.started(), 'listening');
  const client = await TestClient.open(socket);
  client.send(hello(['uptime']));
  await client.nextOf('subscribed');
  daemon.child.kill('SIGTERM');
  const closed = await withTimeout(client.closed, 'client close');
  t.equal(closed.code, 1001, 'a going-away close, not a dropped connection');
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
    t.match(loser.lines.find((line) => line['event'] === 'start-failed'), { code: 'ALREADY_RUNNING' });
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
  t.match(daemon.lines.find((line) => line['event'] === 'start-failed'), { code: 'SOCKET_PATH_NOT_SOCKET' });
  t.equal(readFileSync(socket, 'utf8'), 'precious');
});

t.test('--socket in a directory others can enter is refused, and the directory left alone', async (t) => {
  const { config, dir } = setupConfig(t);
  const open = join(dir, 'open');
  mkdirSync(open);
  chmodSync(open, 0o777);
  const daemon = spawnDaemon(t, ['--config', config, '--socket', join(open, 'c.sock')]);
  t.equal(await daemon.started(), 'exit');
  t.equal((await daemon.exited).code, 1);
  t.match(daemon.lines.find((line) => line['event'] === 'start-failed'), { code: 'SOCKET_DIR_UNSAFE' });
  t.equal(statSync(open).mode & 0o777, 0o777);
});

t.test('all host items a daemon samples pass the receive-side validator', async (t) => {
  const { config, socket } = setupConfig(t);
  const daemon = spawnDaemon(t, ['--config', config, '--interval', '0.05']);
  t.equal(await daemon.started(), 'listening');
  const { CacheClient } = await import('../../daemon/client.js');
  const client = new CacheClient({ socketPath: socket, vm: { name: 'v', uuid: 'u', pid: 1 }, items: [...HOST_ITEM_NAMES], reconnect: false });
  t.teardown(() => client.close());
  const invalid: string[] = [];
  client.on('invalid', (reason) => invalid.push(reason));
  client.connect();
  // Two samples: the second has cpuusage (it needs an interval).
  for (let i = 0; i < 3; i++) await withTimeout(once(client, 'sample'), 'sample');
  t.same(invalid, []);
  const values = client.latest?.snapshot.values ?? {};
  for (const key of ['physcpus', 'loadavg', 'cpuusage', 'physmem', 'swap', 'uptime', 'hostname', 'kernel', 'vmcount']) t.ok(key in values, key);
  t.equal('pressure' in values, existsSync('/proc/pressure/cpu'));
});

t.test('SIGHUP re-reads the static inventory and keeps serving', async (t) => {
  const { config, socket } = setupConfig(t);
  const daemon = spawnDaemon(t, ['--config', config]);
  t.equal(await daemon.started(), 'listening');
  daemon.child.kill('SIGHUP');
  const reloaded = await daemon.waitFor('inventory');
  t.equal(reloaded['kernel'], (await import('node:os')).release());
  t.equal((await fetchStatus(socket)).pid, daemon.child.pid);
});
