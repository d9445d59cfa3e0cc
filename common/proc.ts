// What /proc says about another process, read without privileges: enough to tell that a pid is
// still the process that was registered (its start time survives exec, a recycled pid's does not),
// who runs it, and what it was started with.

import { readFileSync } from 'node:fs';

/**
 * /proc/<pid>/stat and /proc/stat count CPU time in clock ticks of USER_HZ, which the kernel's
 * user ABI fixes at 100 (include/asm-generic/param.h; sysconf(_SC_CLK_TCK) reports it, `getconf
 * CLK_TCK` prints 100) on every architecture a KVM host runs; only Alpha differs.
 */
export const USER_HZ = 100;

/** /proc/<pid>/stat and status are a few hundred bytes; cmdline is bounded by ARG_MAX. */
const MAX_CMDLINE_BYTES = 2 * 1024 * 1024;

function readProc(pid: number, file: string): string | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'latin1');
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/<pid>/stat (clock ticks after boot), as text; undefined when gone. */
export function processStartTime(pid: number): string | undefined {
  const stat = readProc(pid, 'stat');
  return stat === undefined ? undefined : startTimeOfStat(stat);
}

/** Field 22 of a /proc/<pid>/stat text; undefined for a zombie or a text that is not one. */
export function startTimeOfStat(stat: string): string | undefined {
  // comm (field 2) may contain spaces and parentheses: fields after it start past the last ')'.
  const close = stat.lastIndexOf(')');
  if (close === -1) return undefined;
  const fields = stat.slice(close + 2).split(' ');
  const start = fields[19];
  // A zombie keeps its stat until reaped, but it is no longer the VM.
  if (fields[0] === 'Z' || start === undefined || !/^\d+$/.test(start)) return undefined;
  return start;
}

/** True while `pid` is the very process that had `startTime`. */
export function sameProcess(pid: number, startTime: string): boolean {
  return processStartTime(pid) === startTime;
}

/** Real uid (first Uid: field of /proc/<pid>/status). */
export function processUid(pid: number): number | undefined {
  const match = /^Uid:\s+(\d+)/m.exec(readProc(pid, 'status') ?? '');
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** Real gid (first Gid: field of /proc/<pid>/status). */
export function processGid(pid: number): number | undefined {
  const match = /^Gid:\s+(\d+)/m.exec(readProc(pid, 'status') ?? '');
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

export function processCmdline(pid: number): string[] {
  const text = readProc(pid, 'cmdline');
  if (text === undefined || text.length > MAX_CMDLINE_BYTES) return [];
  return text.split('\0').filter((word) => word !== '');
}
