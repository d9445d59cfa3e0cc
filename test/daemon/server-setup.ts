// An in-process DaemonServer with an injected clock, for tests that drive publishing themselves
// instead of waiting for a sampling timer. Its control socket listens on a real unix socket in a
// temp dir; sidecars reach it, as in production, only over a connected socket pair whose daemon
// end is handed to attachSidecar with the link that decides what the sidecar gets.

import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { AccessMessage, CountersMessage, HelloMessage, StatusReply } from '../../daemon/messages.js';
import type { HostSnapshot } from '../../daemon/sample.js';
import { DaemonServer, type DaemonServerOptions } from '../../daemon/server.js';
import { listenExclusive } from '../../daemon/single-instance.js';
import type { SidecarLink } from '../../daemon/subscriber.js';
import type { ItemName } from '../../policies/items.js';
import { TestClient, tempDir, withTimeout } from './helpers.js';

type Teardown = { teardown(fn: () => void | Promise<void>): void };

export interface ServerUnderTest {
  readonly server: DaemonServer;
  readonly controlPath: string;
  /** The injected monotonic clock, ms; tests move it forward. */
  clock: number;
}

export const EMPTY_STATUS: StatusReply = { v: 2, type: 'status', version: '0.0.0-test', pid: process.pid, startedAt: 1, intervalMs: 1000, seq: null, takenAt: null, sampleDurationMs: null, vmcount: 0, vms: [] };

export async function startServer(t: Teardown, options: Partial<DaemonServerOptions> = {}): Promise<ServerUnderTest> {
  const controlPath = join(tempDir(t), 'hostinfod.sock');
  const under: { server?: DaemonServer; controlPath: string; clock: number } = { controlPath, clock: 1_795_600_000_000 };
  const server = new DaemonServer({ intervalMs: 1000, control: async () => EMPTY_STATUS, now: () => under.clock, ...options });
  under.server = server;
  await listenExclusive(server.control, controlPath, { mode: 0o600, gid: undefined });
  t.teardown(() => server.close());
  return under as ServerUnderTest;
}

/** Two connected ends of a unix socket: [the daemon's, the sidecar's]. */
export async function socketPair(t: Teardown): Promise<[Socket, Socket]> {
  const path = join(tempDir(t), 'pair.sock');
  const listener = createServer();
  listener.listen(path);
  await once(listener, 'listening');
  const accepted = once(listener, 'connection') as Promise<[Socket]>;
  const dialed = connect(path);
  await withTimeout(once(dialed, 'connect'), 'socket pair connect');
  const [daemonEnd] = await withTimeout(accepted, 'socket pair accept');
  listener.close();
  t.teardown(() => {
    daemonEnd.destroy();
    dialed.destroy();
  });
  return [daemonEnd, dialed];
}

export function accessMessage(items: readonly ItemName[], options: { served?: boolean; name?: string } = {}): AccessMessage {
  const served = options.served ?? true;
  return {
    v: 2, type: 'access', vm: { name: options.name ?? 'vm-one', uuid: '11111111-2222-3333-4444-555555555555', pid: 4242 },
    served, items: served ? items : [], limit: { intervalMs: 1000, burst: 5 }, file: served ? '/p/vm-one.toml' : null,
    reason: served ? null : 'no policy for this VM', maxAgeMs: 5000, sampleIntervalMs: 1000, guest: { linesPerSecond: 100, bytesPerSecond: 16384 },
  };
}

/** The daemon's side of one VM, as a test controls it: its decision, and what the sidecar said. */
export class TestLink implements SidecarLink {
  readonly id: string;
  current: AccessMessage;
  readonly hellos: HelloMessage[] = [];
  readonly reports: CountersMessage[] = [];
  closes = 0;

  constructor(id: string, current: AccessMessage) {
    this.id = id;
    this.current = current;
  }

  access(): AccessMessage {
    return this.current;
  }

  hello(message: HelloMessage): void {
    this.hellos.push(message);
  }

  counters(message: CountersMessage): void {
    this.reports.push(message);
  }

  closed(): void {
    this.closes += 1;
  }
}

/** A raw WebSocket sidecar over a fresh socket pair attached for `link`. */
export async function attachTestSidecar(t: Teardown, s: ServerUnderTest, link: SidecarLink): Promise<TestClient> {
  const [daemonEnd, sidecarEnd] = await socketPair(t);
  s.server.attachSidecar(daemonEnd, link);
  const client = await TestClient.open(sidecarEnd);
  t.teardown(() => client.close());
  return client;
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
      pagedin: 48213376, pagedout: 91822040, hostcputime: 1234567.89,
    },
  };
}
