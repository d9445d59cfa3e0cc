// vmsession: an id for "this QEMU process on this host boot", so a guest can tell that its
// host-side counters (vmcputime, the request counters, vcpudelay's baseline) started over: the
// VM migrated, was restored from a saved state, or QEMU was restarted. 16 lowercase hex digits,
// the first 8 bytes of sha256(boot_id "\0" pid "\0" start time), where boot_id is the host's
// /proc/sys/kernel/random/boot_id (new at every boot) and the start time is field 22 of
// /proc/<pid>/stat (clock ticks after boot). The three together name one process on one host
// and nothing else (a pid is reused only by a later process, whose start time differs), so the
// id survives sidecar and hostinfod restarts and differs between the two ends of a migration,
// even on one host. Hashed, so the guest learns neither the pid nor the boot id.

import { createHash } from 'node:crypto';
import { startTimeOfStat } from '../common/proc.js';
import { readSmallFile } from '../common/small-file.js';

/** boot_id is a UUID and a newline; /proc/<pid>/stat a few hundred bytes. */
const MAX_BOOT_ID_BYTES = 64;
const MAX_STAT_BYTES = 4096;
const BOOT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type SessionReading = { readonly value: string } | { readonly why: string };

/** The id from its three parts; exported so tests compute the expected value the same way. */
export function sessionId(bootId: string, pid: number, startTime: string): string {
  return createHash('sha256').update(`${bootId}\0${pid}\0${startTime}`).digest('hex').slice(0, 16);
}

function small(path: string, maxBytes: number): string | { readonly why: string } {
  try {
    const read = readSmallFile(path, maxBytes);
    if (read === undefined) return { why: `${path} does not exist` };
    return typeof read === 'string' ? read : { why: read.message };
  } catch (error) {
    return { why: `cannot read ${path}: ${(error as Error).message}` };
  }
}

/** Reads the host's boot id and the process's start time now; why not, when either is missing. */
export function readSession(pid: number, procRoot = '/proc'): SessionReading {
  if (!Number.isSafeInteger(pid) || pid <= 0) return { why: `${pid} is not a pid` };
  const bootPath = `${procRoot}/sys/kernel/random/boot_id`;
  const boot = small(bootPath, MAX_BOOT_ID_BYTES);
  if (typeof boot !== 'string') return boot;
  const bootId = boot.trim();
  if (!BOOT_ID.test(bootId)) return { why: `${bootPath} is not a boot id` };
  const statPath = `${procRoot}/${pid}/stat`;
  const stat = small(statPath, MAX_STAT_BYTES);
  if (typeof stat !== 'string') return stat;
  const startTime = startTimeOfStat(stat);
  if (startTime === undefined) return { why: `${statPath} has no start time (process ended)` };
  return { value: sessionId(bootId, pid, startTime) };
}

/**
 * Asked once per meter tick with the pid known then: reads only when the pid is new (the daemon
 * may learn a daemonized QEMU's pid after the sidecar started), and again after a failed read.
 */
export function sessionMeter(procRoot = '/proc'): (pid: number) => SessionReading {
  let known: { readonly pid: number; readonly reading: { readonly value: string } } | undefined;
  return (pid) => {
    if (known?.pid === pid) return known.reading;
    const reading = readSession(pid, procRoot);
    known = 'value' in reading ? { pid, reading } : undefined;
    return reading;
  };
}
