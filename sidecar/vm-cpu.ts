// This VM's CPU as the host sees it, read once per sample interval: QEMU's own CPU time
// (/proc/<pid>/stat utime + stime: vmcputime) and, per vCPU thread, /proc/<pid>/task/<tid>/schedstat
// ("<run ns> <run delay ns> <slices>"): run time for vmcpuusage, run delay for vcpudelay. Both
// files are world-readable, so a sidecar running as another user than QEMU (root's VMs are
// served by `sidecar_user`) reads them too.

import { USER_HZ } from '../common/proc.js';
import { readSmallFile } from '../common/small-file.js';
import { delayPercent, type DelayReading } from './vcpu-delay.js';

/** The unit of utime and stime (common/proc.ts says why it is 100). */
export { USER_HZ };
/** /proc/<pid>/stat is a few hundred bytes; schedstat three numbers. */
const MAX_STAT_BYTES = 4096;

/** utime + stime (fields 14 and 15) in clock ticks, or undefined when the text is not a stat line. */
export function parseCpuTicks(stat: string): number | undefined {
  // comm (field 2) may hold spaces and parentheses: the fields after it start past the last ')'.
  const close = stat.lastIndexOf(')');
  if (close === -1) return undefined;
  const fields = stat.slice(close + 2).split(' ');
  const [utime, stime] = [fields[11], fields[12]].map(Number);
  return Number.isSafeInteger(utime) && Number.isSafeInteger(stime) && (utime as number) >= 0 && (stime as number) >= 0
    ? (utime as number) + (stime as number)
    : undefined;
}

/** Run time and run delay in ns from schedstat text, or undefined. */
export function parseSchedstat(text: string): { readonly runNs: number; readonly delayNs: number } | undefined {
  const [run, delay] = text.trim().split(/\s+/).map(Number);
  return Number.isSafeInteger(run) && Number.isSafeInteger(delay) && (run as number) >= 0 && (delay as number) >= 0
    ? { runNs: run as number, delayNs: delay as number }
    : undefined;
}

export interface VmCpuReading {
  /** Monotonic time of the reading, ns. */
  readonly atNs: bigint;
  /** QEMU's utime + stime in ticks; undefined when its stat could not be read. */
  readonly cpuTicks: number | undefined;
  /** Per vCPU thread id. A thread whose schedstat could not be read (it ended) is absent. */
  readonly run: ReadonlyMap<number, number>;
  readonly delay: ReadonlyMap<number, number>;
}

const text = (path: string): string | undefined => {
  try {
    const read = readSmallFile(path, MAX_STAT_BYTES);
    return typeof read === 'string' ? read : undefined;
  } catch {
    return undefined; // the process or thread ended between open and read
  }
};

/** Synchronous on purpose: a /proc read takes microseconds and never waits for a disk. */
export function readVmCpu(procRoot: string, pid: number, threadIds: readonly number[], now: () => bigint = process.hrtime.bigint): VmCpuReading {
  const stat = text(`${procRoot}/${pid}/stat`);
  const run = new Map<number, number>();
  const delay = new Map<number, number>();
  for (const tid of threadIds) {
    const times = parseSchedstat(text(`${procRoot}/${pid}/task/${tid}/schedstat`) ?? '');
    if (times === undefined) continue;
    run.set(tid, times.runNs);
    delay.set(tid, times.delayNs);
  }
  return { atNs: now(), cpuTicks: stat === undefined ? undefined : parseCpuTicks(stat), run, delay };
}

export interface VmCpuFigures {
  /** vmcputime; undefined when QEMU's stat was unreadable. */
  readonly cpuSeconds: number | undefined;
  /** vmcpuusage and vcpudelay, %; undefined on the first reading or with no vCPU thread in both. */
  readonly vcpuUsage: number | undefined;
  readonly vcpuDelay: number | undefined;
}

/**
 * Figures from a reading and the one before it. Usage and delay are both "share of (threads ×
 * elapsed)" over the threads present in both readings, which is delayPercent's arithmetic.
 */
export function vmCpuFigures(previous: VmCpuReading | undefined, current: VmCpuReading): VmCpuFigures {
  const share = (pick: (reading: VmCpuReading) => ReadonlyMap<number, number>): number | undefined => {
    if (previous === undefined) return undefined;
    const as = (reading: VmCpuReading): DelayReading => ({ atNs: reading.atNs, delays: pick(reading) });
    return delayPercent(as(previous), as(current));
  };
  return {
    cpuSeconds: current.cpuTicks === undefined ? undefined : current.cpuTicks / USER_HZ,
    vcpuUsage: share((reading) => reading.run),
    vcpuDelay: share((reading) => reading.delay),
  };
}

/** A meter: each call reads and returns the figures over the time since the previous call. */
export function vmCpuMeter(procRoot: string, threadIds: readonly number[]): (pid: number) => VmCpuFigures {
  let previous: VmCpuReading | undefined;
  return (pid) => {
    const reading = readVmCpu(procRoot, pid, threadIds);
    const figures = vmCpuFigures(previous, reading);
    previous = reading;
    return figures;
  };
}
