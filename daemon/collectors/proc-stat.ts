// /proc/stat: the aggregate CPU time counters (for cpuusage and hostcputime) and the per-CPU lines
// (for physcpus: the kernel lists one `cpuN` line per *online* CPU, so hotplug is followed without
// /sys).

import { USER_HZ } from '../../common/proc.js';

/** Cumulative clock ticks since boot, as the aggregate `cpu` line gives them. */
export interface CpuTimes {
  readonly user: number;
  readonly nice: number;
  readonly system: number;
  readonly idle: number;
  readonly iowait: number;
  readonly irq: number;
  readonly softirq: number;
  readonly steal: number;
}

export interface ProcStat {
  readonly total: CpuTimes;
  /** Number of `cpuN` lines: the CPUs online when the file was read. */
  readonly onlineCpus: number;
}

export interface CpuUsage {
  readonly user: number;
  readonly system: number;
  readonly iowait: number;
  readonly steal: number;
  readonly idle: number;
}

const FIELDS = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'] as const;

/**
 * Parses the `cpu` lines at the top of /proc/stat and stops at the first other line: the
 * interrupt counts after them are long and of no interest. Kernels before 2.6.11 lack `steal`
 * (and before 2.6 `iowait`...); missing trailing columns read as 0, as the kernel's own tools do.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  let total: CpuTimes | undefined;
  let onlineCpus = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    if (!text.startsWith('cpu', start)) break;
    const line = text.slice(start, end);
    const space = line.indexOf(' ');
    const label = space === -1 ? line : line.slice(0, space);
    if (label === 'cpu') {
      total = parseTimes(line.slice(space + 1));
      if (total === undefined) return undefined;
    } else if (/^cpu\d+$/.test(label)) {
      onlineCpus++;
    }
    start = end + 1;
  }
  if (total === undefined || onlineCpus === 0) return undefined;
  return { total, onlineCpus };
}

function parseTimes(rest: string): CpuTimes | undefined {
  const columns = rest.trim().split(/ +/);
  // user, nice, system, idle have existed since forever; fewer means this is not /proc/stat.
  if (columns.length < 4) return undefined;
  const values: Record<string, number> = {};
  for (let i = 0; i < FIELDS.length; i++) {
    const column = columns[i];
    const value = column === undefined ? 0 : Number(column);
    if (!Number.isSafeInteger(value) || value < 0) return undefined;
    values[FIELDS[i] as string] = value;
  }
  return values as unknown as CpuTimes;
}

/**
 * CPU percentages between two readings. guest/guest_nice are not counted separately: the kernel
 * already includes them in user/nice. irq and softirq count as system time. Undefined when no
 * tick elapsed or a counter went backwards (a reset or a bogus reading): no interval, no figure.
 */
export function cpuUsageBetween(before: CpuTimes, after: CpuTimes): CpuUsage | undefined {
  const d = (key: keyof CpuTimes): number => after[key] - before[key];
  const deltas = FIELDS.map(d);
  if (deltas.some((value) => value < 0)) return undefined;
  const total = deltas.reduce((sum, value) => sum + value, 0);
  if (total === 0) return undefined;
  const percent = (ticks: number): number => Math.round((ticks / total) * 1000) / 10;
  return {
    user: percent(d('user') + d('nice')),
    system: percent(d('system') + d('irq') + d('softirq')),
    iowait: percent(d('iowait')),
    steal: percent(d('steal')),
    idle: percent(d('idle')),
  };
}

/**
 * hostcputime: CPU seconds the host was busy since boot, summed over CPUs, i.e. every tick that is
 * neither idle nor iowait (cpuusage's 100 - idle - iowait, integrated). irq and softirq are CPU
 * work like system time; steal counts as busy because cpuusage counts it so, and on a host that is
 * itself a VM those ticks were not the host's to use. guest and guest_nice are not added: the
 * kernel already counts them in user and nice (account_guest_time), so adding them would count
 * the VMs' time twice. RHEL's vhostmd.conf sums user + nice + system only; that undercounts a host
 * busy with interrupts, which a hypervisor doing I/O for its VMs is.
 */
export function busySeconds(times: CpuTimes): number {
  const ticks = times.user + times.nice + times.system + times.irq + times.softirq + times.steal;
  return ticks / USER_HZ;
}
