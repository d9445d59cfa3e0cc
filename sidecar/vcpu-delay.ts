// vcpudelay: how much of the last interval this VM's vCPU threads spent runnable but waiting for
// a host CPU — steal time as the host sees it. Source: the second field of
// /proc/<pid>/task/<tid>/schedstat, cumulative run-queue delay in nanoseconds.

import { readFile } from 'node:fs/promises';

/** Cumulative run delay in ns from schedstat text ("<run ns> <delay ns> <slices>"), or undefined. */
export function parseRunDelayNs(text: string): number | undefined {
  const fields = text.trim().split(/\s+/);
  if (fields.length < 2) return undefined;
  const delay = Number(fields[1]);
  return Number.isSafeInteger(delay) && delay >= 0 ? delay : undefined;
}

export interface DelayReading {
  /** Monotonic time of the reading, ns. */
  readonly atNs: bigint;
  /** Run delay per vCPU thread id. */
  readonly delays: ReadonlyMap<number, number>;
}

/**
 * Percent of (vCPU count × elapsed time) spent waiting between two readings. Threads missing from
 * either reading (hot-unplugged, or not yet seen) are left out of both sums and the count.
 */
export function delayPercent(previous: DelayReading, current: DelayReading): number | undefined {
  const elapsedNs = Number(current.atNs - previous.atNs);
  if (elapsedNs <= 0) return undefined;
  let waited = 0;
  let threads = 0;
  for (const [tid, delay] of current.delays) {
    const before = previous.delays.get(tid);
    if (before === undefined || delay < before) continue;
    waited += delay - before;
    threads += 1;
  }
  if (threads === 0) return undefined;
  return Math.min(100, (100 * waited) / (threads * elapsedNs));
}

/** Reads the current run delay of each vCPU thread of QEMU process `pid`. */
export async function readRunDelays(pid: number, threadIds: readonly number[], now: () => bigint = process.hrtime.bigint): Promise<DelayReading> {
  const delays = new Map<number, number>();
  await Promise.all(threadIds.map(async (tid) => {
    try {
      const delay = parseRunDelayNs(await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'latin1'));
      if (delay !== undefined) delays.set(tid, delay);
    } catch {
      // The thread ended between query-cpus-fast and now: it simply has no reading.
    }
  }));
  return { atNs: now(), delays };
}

/**
 * One measurement step of a meter: each call reads the threads' run delays and, from the second
 * call on, reports the percentage over the time since the previous call. `pid` is asked each time
 * (the daemon may learn QEMU's daemonized pid later).
 */
export function runDelayMeter(pid: () => number, threadIds: readonly number[], report: (percent: number) => void): () => Promise<void> {
  let previous: DelayReading | undefined;
  return async () => {
    const reading = await readRunDelays(pid(), threadIds);
    const percent = previous === undefined ? undefined : delayPercent(previous, reading);
    previous = reading;
    if (percent !== undefined) report(percent);
  };
}
