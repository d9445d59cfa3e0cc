// HostDaemon in this process: the runtime tree and control socket it sets up, its samples as a
// sidecar receives them, status, reload and stop. The binary around it: main.test.ts.

import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { LOGS_DIR, VMS_DIR } from '../../common/runtime-tree.js';
import { fetchStatus } from '../../daemon/control-client.js';
import { HostDaemon, type DaemonOptions } from '../../daemon/daemon.js';
import type { Log } from '../../daemon/log.js';
import type { HostConfig } from '../../policies/host-config.js';
import { HOST_ITEM_NAMES, ITEM_NAMES } from '../../policies/items.js';
import { DaemonChannel } from '../../sidecar/daemon-channel.js';
import { PROC_FIXTURES, tempDir, withTimeout } from './helpers.js';
import { TestLink, accessMessage, socketPair } from './server-setup.js';

type Teardown = Parameters<typeof tempDir>[0];

const INVENTORY = { cpu: async () => ({ manufacturer: 'AMD', brand: 'EPYC', speed: 2.45, physicalCores: 8, processors: 1 }), hostname: () => 'host01', release: () => '6.1.0-test' };

function hostConfig(dir: string, patch: Partial<HostConfig> = {}): HostConfig {
  return {
    file: join(dir, 'hostinfo.toml'), enabled: true, policyDir: join(dir, 'policies'), runtimeDir: join(dir, 'run'), group: undefined,
    cache: { intervalSeconds: 0.05, maxAgeSeconds: 2 }, sidecarUser: 'hostinfo', guest: { linesPerSecond: 100, bytesPerSecond: 16384 }, metrics: { textfile: undefined }, ...patch,
  };
}

class RecordingLog implements Log {
  readonly lines: Record<string, unknown>[] = [];
  info(fields: object): void { this.lines.push({ level: 'info', ...fields }); }
  warn(fields: object): void { this.lines.push({ level: 'warn', ...fields }); }
  error(fields: object): void { this.lines.push({ level: 'error', ...fields }); }
  debug(fields: object): void { this.lines.push({ level: 'debug', ...fields }); }
  events(): unknown[] { return this.lines.map((line) => line['event']); }
}

async function start(t: Teardown, options: Partial<DaemonOptions> = {}): Promise<{ daemon: HostDaemon; config: HostConfig; log: RecordingLog }> {
  const config = options.config ?? hostConfig(tempDir(t));
  const log = new RecordingLog();
  const daemon = await HostDaemon.start({ config, loadConfig: async () => config, gid: undefined, intervalMs: 50, inventory: INVENTORY, log, ...options });
  t.teardown(() => daemon.stop());
  return { daemon, config, log };
}

t.test('start: the runtime tree, the owner-only control socket, a first sample', async (t) => {
  const { daemon, config, log } = await start(t, { procRoot: join(PROC_FIXTURES, 'linux-6.18-psi') });
  const run = config.runtimeDir;
  t.equal(daemon.socketPath, join(run, 'hostinfod.sock'));
  t.same([run, join(run, VMS_DIR), join(run, LOGS_DIR)].map((path) => statSync(path).mode & 0o7777), [0o700, 0o700, 0o700]);
  t.equal(statSync(daemon.socketPath).mode & 0o777, 0o600);
  t.equal(daemon.server.lastSeq >= 1, true, 'a sample is out before start() resolves');
  t.match(daemon.server.latest?.snapshot.values, { physcpus: 2, physcores: 8, cpumodel: 'AMD EPYC', hostname: 'host01', kernel: '6.1.0-test', vmcount: 0 });
  t.same(log.events().slice(0, 1), ['listening']);
  t.same(daemon.config, config);
});

t.test('status: over the control socket, the same as in process', async (t) => {
  const { daemon } = await start(t);
  const reply = await fetchStatus(daemon.socketPath);
  t.match(reply, { v: 2, type: 'status', pid: process.pid, intervalMs: 50, vmcount: 0, vms: [] });
  t.type(reply.seq, 'number');
  t.ok(reply.startedAt <= Date.now());
  // The daemon samples every 50 ms: poll (bounded) until a reply shows a newer one.
  const later = await withTimeout((async () => {
    for (;;) {
      const next = await fetchStatus(daemon.socketPath);
      if ((next.seq ?? 0) > (reply.seq ?? 0)) return next;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })(), 'a later sample');
  t.ok((later.takenAt ?? 0) >= (reply.takenAt ?? 0), 'sample times never go back');
  t.same(Object.keys(daemon.status()), Object.keys(reply));
});

t.test('every host item the daemon samples passes the sidecar\'s validator', async (t) => {
  const { daemon } = await start(t);
  const [daemonEnd, sidecarEnd] = await socketPair(t);
  daemon.server.attachSidecar(daemonEnd, new TestLink('all', accessMessage(ITEM_NAMES)));
  const channel = new DaemonChannel(sidecarEnd);
  t.teardown(() => channel.close());
  const invalid: string[] = [];
  channel.on('invalid', (reason) => invalid.push(reason));
  // Three samples: from the second on there is cpuusage (it needs an interval).
  for (let i = 0; i < 3; i++) await withTimeout(once(channel, 'sample'), 'a sample');
  t.same(invalid, []);
  const values = channel.latest?.snapshot.values ?? {};
  for (const key of ['physcpus', 'loadavg', 'cpuusage', 'physmem', 'swap', 'uptime', 'hostname', 'kernel', 'vmcount']) t.ok(key in values, key);
  t.equal('pressure' in values, existsSync('/proc/pressure/cpu'));
  t.ok(Object.keys(values).every((key) => (HOST_ITEM_NAMES as readonly string[]).includes(key)));
});

t.test('a second daemon on the same runtime directory is refused', async (t) => {
  const { config } = await start(t);
  await t.rejects(HostDaemon.start({ config, loadConfig: async () => config, gid: undefined, intervalMs: 50, inventory: INVENTORY }), { code: 'ALREADY_RUNNING' });
});

t.test('an unsafe runtime directory is refused before anything listens', async (t) => {
  const dir = tempDir(t);
  const config = hostConfig(dir, { runtimeDir: join(dir, 'run') });
  mkdirSync(config.runtimeDir);
  chmodSync(config.runtimeDir, 0o777);
  await t.rejects(HostDaemon.start({ config, loadConfig: async () => config, gid: undefined, intervalMs: 50, inventory: INVENTORY }), { code: 'RUNTIME_DIR_UNSAFE' });
  t.notOk(existsSync(join(config.runtimeDir, 'hostinfod.sock')));
});

t.test('reload: a new config is taken, a broken one keeps the previous', async (t) => {
  const dir = tempDir(t);
  let current = hostConfig(dir);
  const { daemon, log } = await start(t, { config: current, loadConfig: async () => current });
  current = hostConfig(dir, { enabled: false });
  await daemon.reload();
  t.equal(daemon.config.enabled, false);
  t.match(log.lines.find((line) => line['event'] === 'reloaded'), { kernel: '6.1.0-test', hostname: 'host01' });
  const broken = await start(t, { loadConfig: () => Promise.reject(new Error('hostinfo.toml: boom')) });
  const before = broken.daemon.config;
  await t.rejects(broken.daemon.reload(), /boom/);
  t.equal(broken.daemon.config, before);
  t.match(broken.log.lines.find((line) => line['event'] === 'config-invalid'), { level: 'error', err: 'hostinfo.toml: boom' });
});

t.test('stop: once, closing the control socket; the tree stays', async (t) => {
  const { daemon, config, log } = await start(t);
  const first = daemon.stop();
  t.equal(daemon.stop(), first, 'a second stop is the same stop');
  await first;
  await t.rejects(fetchStatus(daemon.socketPath, 1000));
  t.ok(existsSync(join(config.runtimeDir, VMS_DIR)), 'vms/ is kept for the next daemon');
  t.equal(log.events().filter((event) => event === 'stopped').length, 1);
});
