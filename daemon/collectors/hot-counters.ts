// The per-sample collector: everything that changes between samples, read straight from /proc.
// No child processes and no systeminformation here: this runs every interval for the host's life.

import type { PartialHostValues } from '../sample.js';
import { parseLoadavg } from './loadavg.js';
import { parseMeminfo } from './meminfo.js';
import { parsePressureSomeAvg10 } from './pressure.js';
import { busySeconds, type CpuTimes, cpuUsageBetween, parseProcStat } from './proc-stat.js';
import type { ProcSource } from './proc-reader.js';
import { parseUptime } from './uptime.js';
import { parseVmstatPaging } from './vmstat.js';

/** The /proc files one sample reads, relative to the proc root. */
export const HOT_PROC_FILES = ['stat', 'loadavg', 'meminfo', 'uptime', 'pressure/cpu', 'pressure/memory', 'pressure/io', 'vmstat'] as const;

export type HotValues = Pick<PartialHostValues, 'physcpus' | 'loadavg' | 'cpuusage' | 'pressure' | 'physmem' | 'swap' | 'uptime' | 'pagedin' | 'pagedout' | 'hostcputime'>;

export class HotCounters {
  readonly #proc: ProcSource;
  /** The /proc/stat reading the next cpuusage is measured from. */
  #baseline: CpuTimes | undefined;

  constructor(proc: ProcSource) {
    this.#proc = proc;
  }

  /**
   * One reading. The first call only sets the cpuusage baseline (a since-boot average is not "the
   * last interval"), so cpuusage appears from the second call on.
   */
  collect(): HotValues {
    const values: HotValues = {};
    const stat = parseProcStat(this.#proc.read('stat') ?? '');
    if (stat !== undefined) {
      values.physcpus = stat.onlineCpus;
      values.hostcputime = busySeconds(stat.total);
      const usage = this.#baseline === undefined ? undefined : cpuUsageBetween(this.#baseline, stat.total);
      if (usage !== undefined) values.cpuusage = usage;
      // With no tick elapsed the old baseline is kept, so the next figure covers the longer span
      // instead of being lost; a backwards jump resets it.
      if (usage !== undefined || this.#baseline === undefined || isBehind(stat.total, this.#baseline)) this.#baseline = stat.total;
    }
    const loadavg = parseLoadavg(this.#proc.read('loadavg') ?? '');
    if (loadavg !== undefined) values.loadavg = loadavg;
    const memory = parseMeminfo(this.#proc.read('meminfo') ?? '');
    if (memory.physmem !== undefined) values.physmem = memory.physmem;
    if (memory.swap !== undefined) values.swap = memory.swap;
    const uptime = parseUptime(this.#proc.read('uptime') ?? '');
    if (uptime !== undefined) values.uptime = uptime;
    const paging = parseVmstatPaging(this.#proc.read('vmstat') ?? '');
    if (paging.pagedin !== undefined) values.pagedin = paging.pagedin;
    if (paging.pagedout !== undefined) values.pagedout = paging.pagedout;
    const pressure = this.#pressure();
    if (pressure !== undefined) values.pressure = pressure;
    return values;
  }

  /** All three resources or nothing: a partial PSI reading would read as "no pressure". */
  #pressure(): HotValues['pressure'] {
    const cpu = this.#someAvg10('pressure/cpu');
    if (cpu === undefined) return undefined;
    const memory = this.#someAvg10('pressure/memory');
    if (memory === undefined) return undefined;
    const io = this.#someAvg10('pressure/io');
    if (io === undefined) return undefined;
    return { cpu, memory, io };
  }

  #someAvg10(name: string): number | undefined {
    const text = this.#proc.read(name);
    return text === undefined ? undefined : parsePressureSomeAvg10(text);
  }
}

function isBehind(now: CpuTimes, before: CpuTimes): boolean {
  return (Object.keys(now) as (keyof CpuTimes)[]).some((key) => now[key] < before[key]);
}
