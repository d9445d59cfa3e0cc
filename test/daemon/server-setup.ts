// An in-process CacheServer on a real unix socket in a temp dir, with an injected clock, for tests
// that drive publishing themselves instead of waiting for a sampling timer.

import { join } from 'node:path';
import { CacheServer, type CacheServerOptions } from '../../daemon/server.js';
import { listenExclusive } from '../../daemon/single-instance.js';
import type { HostSnapshot } from '../../daemon/sample.js';
import { tempDir } from './helpers.js';

export interface ServerUnderTest {
  readonly server: CacheServer;
  readonly socketPath: string;
  /** The injected wall clock, epoch ms; tests move it forward. */
  clock: number;
}

export async function startServer(
  t: { teardown(fn: () => void | Promise<void>): void },
  options: Partial<CacheServerOptions> = {},
): Promise<ServerUnderTest> {
  const socketPath = join(tempDir(t), 'cache.sock');
  const under: { server?: CacheServer; socketPath: string; clock: number } = { socketPath, clock: 1_795_600_000_000 };
  const server = new CacheServer({ intervalMs: 1000, now: () => under.clock, ...options });
  under.server = server;
  await listenExclusive(server.http, socketPath, { mode: 0o600, gid: undefined });
  t.teardown(() => server.close());
  return under as ServerUnderTest;
}

/** Every host item, with cpumodel at full length so frames are as big as they get. */
export function fullSnapshot(takenAt: number): HostSnapshot {
  return {
    takenAt,
    values: {
      physcpus: 16, physcores: 8, sockets: 1, cpumodel: 'M'.repeat(256), cpumhz: 2450,
      loadavg: [0.5, 0.4, 0.3], cpuusage: { user: 12.5, system: 3.1, iowait: 0.2, steal: 0, idle: 84.2 },
      pressure: { cpu: 1.2, memory: 0, io: 0.35 }, physmem: { total: 16303932, free: 123456, available: 9876543 },
      swap: { total: 0, free: 0 }, uptime: 123456.78, hostname: 'host01', kernel: '6.1.0-56-cloud-amd64', vmcount: 2,
    },
  };
}
