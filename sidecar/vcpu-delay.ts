// vcpudelay: how much of the last interval this VM's vCPU threads spent runnable but waiting for
// a host CPU — steal time as the host sees it. Source: the second field of
// /proc/<pid>/task/<tid>/schedstat, cumulative run-queue delay in nanoseconds, read with the VM's
// other CPU figures by vm-cpu.ts.

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
