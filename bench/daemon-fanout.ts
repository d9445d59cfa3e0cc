// Delay from a sample being taken to its arrival at each of 100 subscribers, through hostinfod's
// own DaemonServer: each subscriber is attached as the daemon attaches a sidecar (attachSidecar
// with the parent end of a connected unix socket pair and a SidecarLink granting the default
// items), and is a DaemonChannel on the other end, as in a sidecar. The subscribers run in a child
// process (as sidecars would), so the daemon's event loop is not also theirs. Both sides stamp
// with process.hrtime (CLOCK_MONOTONIC, one clock for all processes on the host).

import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HOSTINFO_VERSION } from '../common/version.js';
import { HotCounters } from '../daemon/collectors/hot-counters.js';
import { ProcFiles } from '../daemon/collectors/proc-reader.js';
import type { AccessMessage, StatusReply } from '../daemon/messages.js';
import { HostSampler } from '../daemon/sampler.js';
import { DaemonServer } from '../daemon/server.js';
import type { SidecarLink } from '../daemon/subscriber.js';
import { DEFAULT_ALLOWED_ITEMS } from '../policies/items.js';
import { spawnNoted, stopChild } from './reaper.js';
import { type Benchmark, type BenchRow, percentile } from './table.js';
import type { FromSubscribers, ToSubscribers } from './subscribers.js';

const SUBSCRIBERS = 100;
const SAMPLES = 200;
const INTERVAL_MS = 20;
const GOAL_P99_MS = 10;

/** What the daemon would tell a served VM under the default policy. */
function benchAccess(index: number): AccessMessage {
  return {
    v: 2, type: 'access',
    vm: { name: `bench-${index}`, uuid: `bench-uuid-${index}`, pid: process.pid },
    served: true,
    items: DEFAULT_ALLOWED_ITEMS,
    limit: { intervalMs: 1000, burst: 100 },
    file: null, reason: null,
    maxAgeMs: 5_000, sampleIntervalMs: INTERVAL_MS,
    guest: { linesPerSecond: 100, bytesPerSecond: 16_384 },
  };
}

function benchLink(index: number): SidecarLink {
  const access = benchAccess(index);
  return { id: `bench-${index}`, access: () => access, hello: () => {}, counters: () => {}, closed: () => {} };
}

export interface FanoutFigures {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** Arrivals that never came, over all samples and subscribers. */
  readonly missing: number;
}

/** Publishes `samples` samples every INTERVAL_MS to `subscribers` DaemonChannels in a child process; delays in ms. */
export async function measureFanout(subscribers: number, samples = SAMPLES): Promise<FanoutFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'hostinfo-bench-'));
  const pairPath = join(dir, 'pairs.sock');
  const status = (): StatusReply => ({ v: 2, type: 'status', version: HOSTINFO_VERSION, pid: process.pid, startedAt: Date.now(), intervalMs: INTERVAL_MS, seq: null, takenAt: null, sampleDurationMs: null, vmcount: subscribers, vms: [] });
  const server = new DaemonServer({ intervalMs: INTERVAL_MS, control: async () => status() });
  const sampler = new HostSampler({ hot: new HotCounters(new ProcFiles()), vmCount: () => subscribers });
  // Only to make socket pairs: each accepted connection is one pair's parent end.
  const pairs = createServer();
  const accepted: Socket[] = [];
  pairs.on('connection', (socket: Socket) => {
    const index = accepted.length;
    accepted.push(socket);
    server.attachSidecar(socket, benchLink(index));
  });
  pairs.listen(pairPath);
  await once(pairs, 'listening');
  const child = spawnNoted(process.execPath, [fileURLToPath(new URL('./subscribers.js', import.meta.url)), pairPath, String(subscribers)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const ready = (await once(child, 'message')) as [FromSubscribers];
    if (ready[0].type !== 'ready') throw new Error('subscribers did not start');
    pairs.close();
    const publishedAt = new Map<number, bigint>();
    for (let i = 0; i < samples; i++) {
      const snapshot = sampler.sample();
      const taken = process.hrtime.bigint();
      publishedAt.set(server.publish(snapshot), taken);
      await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS));
    }
    child.send({ type: 'report' } satisfies ToSubscribers);
    const [report] = (await once(child, 'message')) as [FromSubscribers];
    if (report.type !== 'arrivals') throw new Error('no report from subscribers');
    const delays: number[] = [];
    let missing = 0;
    for (const [seq, taken] of publishedAt) {
      const arrivals = report.arrivals[seq] ?? [];
      missing += subscribers - arrivals.length;
      for (const at of arrivals) delays.push(Number(BigInt(at) - taken) / 1e6);
    }
    delays.sort((a, b) => a - b);
    return { p50: percentile(delays, 50), p99: percentile(delays, 99), max: delays[delays.length - 1] ?? NaN, missing };
  } finally {
    await stopChild(child);
    pairs.close();
    await server.close();
    for (const socket of accepted) socket.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const fanoutBenchmark: Benchmark = {
  name: 'daemon fan-out',
  async run(): Promise<BenchRow[]> {
    const { p50, p99, max, missing } = await measureFanout(SUBSCRIBERS);
    return [
      { benchmark: this.name, measure: `sample → arrival p50, ${SUBSCRIBERS} subscribers, ${SAMPLES} samples`, value: `${p50.toFixed(2)} ms`, goal: '', met: undefined },
      { benchmark: this.name, measure: `sample → arrival p99, ${SUBSCRIBERS} subscribers`, value: `${p99.toFixed(2)} ms`, goal: `< ${GOAL_P99_MS} ms`, met: p99 < GOAL_P99_MS },
      { benchmark: this.name, measure: 'sample → arrival max', value: `${max.toFixed(2)} ms`, goal: '', met: undefined },
      { benchmark: this.name, measure: 'samples not received', value: String(missing), goal: '0', met: missing === 0 },
    ];
  },
};
