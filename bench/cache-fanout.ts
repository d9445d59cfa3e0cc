// Delay from a sample being taken to its arrival at each of 100 subscribers. The subscribers run
// in a child process (as sidecars would), so the daemon's event loop is not also theirs. Both
// sides stamp with process.hrtime (CLOCK_MONOTONIC, one clock for all processes on the host).

import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HotCounters } from '../daemon/collectors/hot-counters.js';
import { ProcFiles } from '../daemon/collectors/proc-reader.js';
import { HostSampler } from '../daemon/sampler.js';
import { CacheServer } from '../daemon/server.js';
import { listenExclusive } from '../daemon/single-instance.js';
import { type Benchmark, type BenchRow, percentile } from './table.js';
import type { FromSubscribers, ToSubscribers } from './subscribers.js';

const SUBSCRIBERS = 100;
const SAMPLES = 200;
const INTERVAL_MS = 20;
const GOAL_P99_MS = 10;

export const fanoutBenchmark: Benchmark = {
  name: 'cache fan-out',
  async run(): Promise<BenchRow[]> {
    const dir = mkdtempSync(join(tmpdir(), 'hostinfo-bench-'));
    const socketPath = join(dir, 'cache.sock');
    const server = new CacheServer({ intervalMs: INTERVAL_MS });
    const sampler = new HostSampler({ hot: new HotCounters(new ProcFiles()), vmCount: () => server.registry.vmCount() });
    const child = fork(fileURLToPath(new URL('./subscribers.js', import.meta.url)), [socketPath, String(SUBSCRIBERS)]);
    try {
      await listenExclusive(server.http, socketPath, { mode: 0o600, gid: undefined });
      const ready = (await once(child, 'message')) as [FromSubscribers];
      if (ready[0].type !== 'ready') throw new Error('subscribers did not start');
      const publishedAt = new Map<number, bigint>();
      for (let i = 0; i < SAMPLES; i++) {
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
        missing += SUBSCRIBERS - arrivals.length;
        for (const at of arrivals) delays.push(Number(BigInt(at) - taken) / 1e6);
      }
      delays.sort((a, b) => a - b);
      const p50 = percentile(delays, 50);
      const p99 = percentile(delays, 99);
      return [
        { benchmark: this.name, measure: `sample → arrival p50, ${SUBSCRIBERS} subscribers, ${SAMPLES} samples`, value: `${p50.toFixed(2)} ms`, goal: '', met: undefined },
        { benchmark: this.name, measure: `sample → arrival p99, ${SUBSCRIBERS} subscribers`, value: `${p99.toFixed(2)} ms`, goal: `< ${GOAL_P99_MS} ms`, met: p99 < GOAL_P99_MS },
        { benchmark: this.name, measure: 'sample → arrival max', value: `${(delays[delays.length - 1] ?? NaN).toFixed(2)} ms`, goal: '', met: undefined },
        { benchmark: this.name, measure: 'samples not received', value: String(missing), goal: '0', met: missing === 0 },
      ];
    } finally {
      child.kill();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
