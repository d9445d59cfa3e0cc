// What /proc says about a process the tests did not start themselves (a daemon-run sidecar, the
// daemon): memory, CPU time, credentials, working directory and environment.

import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on Linux). */
export const USER_HZ = 100;

/** One field of /proc/<pid>/status, as text (e.g. Uid, Groups, CapEff, NoNewPrivs). */
export function statusField(pid: number, field: string): string {
  const match = new RegExp(`^${field}:[ \\t]*(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no ${field} in /proc/${pid}/status`);
  return (match[1] ?? '').trim();
}

/** VmHWM (peak RSS) or VmRSS, in kB. */
export function memoryKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const value = /^(\d+) kB$/.exec(statusField(pid, field))?.[1];
  if (value === undefined) throw new Error(`no ${field} for ${pid}`);
  return Number(value);
}

/** utime + stime, in clock ticks (USER_HZ). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * What the `vmsession` item is for a process of this host, as the README defines it (the first 8
 * bytes of sha256(boot_id "\0" pid "\0" start time)), computed here from /proc without the code.
 */
export function vmSessionOf(pid: number): string {
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  return createHash('sha256').update(`${bootId}\0${pid}\0${startTime}`).digest('hex').slice(0, 16);
}

/** Counters of /proc/vmstat and the busy seconds of /proc/stat's cpu line, now. */
export function hostCounters(): { readonly pgpgin: number; readonly pgpgout: number; readonly busySeconds: number } {
  const vmstat = readFileSync('/proc/vmstat', 'latin1');
  const counter = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(vmstat)?.[1]);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = (/^cpu +(.*)$/m.exec(readFileSync('/proc/stat', 'latin1'))?.[1] ?? '').split(' ').map(Number);
  return { pgpgin: counter('pgpgin'), pgpgout: counter('pgpgout'), busySeconds: (user + nice + system + irq + softirq + steal) / USER_HZ };
}

export const cwdOf = (pid: number): string => readlinkSync(`/proc/${pid}/cwd`);

/** The environment the process was started with, NUL-separated entries split. */
export function environOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').filter((entry) => entry !== '');
}

/**
 * True while the process runs. A zombie does not: an orphan (a sidecar whose daemon was killed)
 * waits for init to reap it, which can take a while, having long finished.
 */
export function processAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** The host's online CPUs as the kernel lists them (/sys/devices/system/cpu/online: "0-3,6"). */
export function onlineCpus(): number {
  let count = 0;
  for (const range of readFileSync('/sys/devices/system/cpu/online', 'utf8').trim().split(',')) {
    const [a, b] = range.split('-').map(Number);
    count += b === undefined ? 1 : b - (a ?? 0) + 1;
  }
  return count;
}
