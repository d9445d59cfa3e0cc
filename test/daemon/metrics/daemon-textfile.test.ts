// HostDaemon in this process with `[metrics] textfile` set: the file follows every sample, a
// directory it must refuse costs one warning however many intervals pass (and sampling goes on),
// and a reload that moves the file is followed from the next sample on.

import { mkdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { HOSTINFO_VERSION } from '../../../common/version.js';
import { HostDaemon } from '../../../daemon/daemon.js';
import type { HostConfig } from '../../../policies/host-config.js';
import { tempDir, withTimeout } from '../helpers.js';
import { RecordingLog } from './fixtures.js';

type Teardown = Parameters<typeof tempDir>[0];

const INTERVAL_MS = 20;
const INVENTORY = { cpu: async () => ({ manufacturer: 'AMD', brand: 'EPYC', speed: 2.45, physicalCores: 8, processors: 1 }), hostname: () => 'host01', release: () => '6.1.0-test' };

function hostConfig(dir: string, textfile: string | undefined): HostConfig {
  return {
    file: join(dir, 'hostinfo.toml'), enabled: true, policyDir: join(dir, 'policies'), runtimeDir: join(dir, 'run'), group: undefined,
    cache: { intervalSeconds: INTERVAL_MS / 1000, maxAgeSeconds: 2 }, sidecarUser: 'hostinfo', guest: { linesPerSecond: 100, bytesPerSecond: 16384 },
    metrics: { textfile },
  };
}

async function start(t: Teardown, config: HostConfig, loadConfig = async (): Promise<HostConfig> => config): Promise<{ daemon: HostDaemon; log: RecordingLog }> {
  const log = new RecordingLog();
  const daemon = await HostDaemon.start({ config, loadConfig, gid: undefined, intervalMs: INTERVAL_MS, inventory: INVENTORY, log });
  t.teardown(() => daemon.stop());
  return { daemon, log };
}

/** Polls `check` every few ms until it returns something, or fails after `ms`. */
async function until<T>(what: string, check: () => T | undefined, ms = 10_000): Promise<T> {
  return withTimeout((async () => {
    for (;;) {
      const found = check();
      if (found !== undefined) return found;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })(), what, ms);
}

const inode = (path: string): number | undefined => {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
};

t.test('the textfile is written from the first sample on and replaced at every interval', async (t) => {
  const dir = tempDir(t);
  const textfile = join(dir, 'hostinfo.prom');
  const { daemon } = await start(t, hostConfig(dir, textfile));
  const first = await until('the first textfile', () => inode(textfile));
  const text = readFileSync(textfile, 'utf8');
  t.match(text, new RegExp(`^hostinfo_build_info\\{version="${HOSTINFO_VERSION.replace(/\./g, '\\.')}"\\} 1$`, 'm'));
  t.match(text, /^hostinfo_vms 0$/m);
  t.match(text, /^hostinfo_sample_duration_seconds \d/m);
  const status = daemon.status();
  t.equal(status.version, HOSTINFO_VERSION, 'status says the version');
  t.ok(status.sampleDurationMs !== null && status.sampleDurationMs >= 0 && status.sampleDurationMs < 1000, `and how long the last sample took (${status.sampleDurationMs} ms)`);
  await until('a rewrite', () => (inode(textfile) !== first ? true : undefined));
  t.pass('rewritten (a new inode) at a later interval');
});

t.test('a refused directory: one warning over many intervals, sampling goes on; fixed, the file follows', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'real'));
  symlinkSync(join(dir, 'real'), join(dir, 'textfile'));
  const textfile = join(dir, 'textfile', 'hostinfo.prom');
  const { daemon, log } = await start(t, hostConfig(dir, textfile));
  const from = daemon.server.lastSeq;
  await until('10 more samples', () => (daemon.server.lastSeq >= from + 10 ? true : undefined));
  t.match(log.of('metrics-textfile-failed'), [{ file: textfile, code: 'TEXTFILE_DIR_UNSAFE', err: /is a symbolic link/ }], 'one warning, not one per interval');
  t.same(log.of('sample-failed'), [], 'sampling is not disturbed');
  rmSync(join(dir, 'textfile'));
  mkdirSync(join(dir, 'textfile'));
  await until('the file, once the directory is fine', () => inode(textfile));
  await until('the recovery line', () => (log.of('metrics-textfile-ok').length > 0 ? true : undefined));
  t.match(log.of('metrics-textfile-ok'), [{ file: textfile }]);
  t.equal(log.of('metrics-textfile-failed').length, 1);
});

t.test('a reload that moves the textfile: the new path from the next sample on', async (t) => {
  const dir = tempDir(t);
  const before = join(dir, 'before.prom');
  const after = join(dir, 'after.prom');
  let config = hostConfig(dir, before);
  const { daemon } = await start(t, config, async () => config);
  await until('the first path', () => inode(before));
  config = hostConfig(dir, after);
  await daemon.reload();
  await until('the reloaded path', () => inode(after));
  const left = statSync(before).mtimeMs;
  await until('a rewrite of the new path', () => (statSync(after).mtimeMs > left + INTERVAL_MS ? true : undefined));
  t.equal(statSync(before).mtimeMs, left, 'the old path is no longer written');
});
