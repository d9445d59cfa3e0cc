// The per-VM meter the sidecar runs once per sample interval (not per request, so a guest asking
// fast costs no extra reads): CPU time and vCPU figures from /proc, limits from cgroup files,
// RAM and balloon from QMP, and the session id once per QEMU pid. Each tick returns fresh facts stamped on the monotonic clock; a
// reading that fails replaces the last one with why, so a guest never gets an old value as new.

import { queryBalloon, queryMemorySizeSummary, type QmpExecutor } from './qmp/index.js';
import { readCgroupLimits, SYSTEM_CGROUP_ROOTS, type CgroupRoots, type LimitReading } from './cgroup-limits.js';
import type { Measurement, VmFacts } from './items/vm-values.js';
import { vmCpuMeter } from './vm-cpu.js';
import { sessionMeter } from './vm-session.js';

/** Bounds each QMP query of a tick; QEMU answers these at once unless it is stuck. */
export const MEMORY_QUERY_TIMEOUT_MS = 2_000;

/** What a tick measured; a fact left out keeps its last reading (which then ages). */
export type VmMeterFacts = Partial<Pick<VmFacts, 'cpuTime' | 'vcpuUsage' | 'vcpuDelay' | 'memory' | 'cpuLimit' | 'memLimit' | 'session'>>;

export interface VmMeterOptions {
  /** Asked at every tick: the daemon may learn QEMU's daemonized pid later. */
  readonly pid: () => number | undefined;
  readonly vcpuThreads: readonly number[];
  /** Undefined for a VM without a QMP socket: vmmem is then unavailable. */
  readonly qmp: QmpExecutor | undefined;
  /** Monotonic ms, the clock of every age (SidecarClock.monotonic). */
  readonly monotonic: () => number;
  readonly roots?: CgroupRoots;
}

const limitOf = (reading: LimitReading, measuredAt: number): Measurement<number | null> =>
  'why' in reading ? reading : { value: reading.limit, measuredAt };

/**
 * One tick per call; undefined while the previous tick still runs (QMP may be slow), so ticks
 * never pile up.
 */
export function vmMeters(options: VmMeterOptions): () => Promise<VmMeterFacts | undefined> {
  const roots = options.roots ?? SYSTEM_CGROUP_ROOTS;
  const cpu = vmCpuMeter(roots.proc, options.vcpuThreads);
  const session = sessionMeter(roots.proc);
  let running = false;
  return async () => {
    if (running) return undefined;
    running = true;
    try {
      const facts: { -readonly [K in keyof VmMeterFacts]: VmMeterFacts[K] } = {};
      const pid = options.pid();
      if (pid === undefined) {
        const why = { why: 'QEMU pid not known' };
        Object.assign(facts, { cpuTime: why, cpuLimit: why, memLimit: why, session: why });
      } else {
        facts.session = session(pid);
        const figures = cpu(pid);
        const at = options.monotonic();
        facts.cpuTime = figures.cpuSeconds === undefined ? { why: `cannot read ${roots.proc}/${pid}/stat` } : { value: figures.cpuSeconds, measuredAt: at };
        // Usage and delay need two readings: until then (or with no thread in both) the last one ages.
        if (options.vcpuThreads.length === 0) facts.vcpuUsage = { why: 'vCPU threads not known' };
        else if (figures.vcpuUsage !== undefined) facts.vcpuUsage = { value: figures.vcpuUsage, measuredAt: at };
        if (figures.vcpuDelay !== undefined) facts.vcpuDelay = { percent: figures.vcpuDelay, measuredAt: at };
        const limits = readCgroupLimits(pid, roots);
        const limitsAt = options.monotonic();
        facts.cpuLimit = limitOf(limits.cpus, limitsAt);
        facts.memLimit = limitOf(limits.memoryKb, limitsAt);
      }
      facts.memory = options.qmp === undefined ? { why: 'no QMP socket for this VM' } : await memoryOf(options.qmp, options.monotonic);
      return facts;
    } finally {
      running = false;
    }
  };
}

async function memoryOf(qmp: QmpExecutor, monotonic: () => number): Promise<NonNullable<VmFacts['memory']>> {
  try {
    const query = { timeoutMs: MEMORY_QUERY_TIMEOUT_MS };
    const [size, balloon] = await Promise.all([queryMemorySizeSummary(qmp, query), queryBalloon(qmp, query)]);
    const kb = (bytes: number): number => Math.floor(bytes / 1024);
    return { value: { total: kb(size.baseBytes + size.pluggedBytes), balloon: balloon === undefined ? null : kb(balloon) }, measuredAt: monotonic() };
  } catch (error) {
    return { why: `QMP did not tell the memory size (${(error as Error).message})` };
  }
}
