// What the launcher tests need beyond test/helpers/served-vm.ts: bin/hostinfo-qemu run with
// exactly the given arguments, and what /proc says about the processes it leaves behind.

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { vmStatus, waitForStatus, type Site } from '../helpers/served-vm.js';
import { withTimeout } from '../helpers/logged-process.js';
import type { VmStatus } from '../../daemon/messages.js';

/** The QEMU binary the front finds on this host, as /proc/<pid>/exe shows it. */
export const QEMU_EXE = realpathSync(spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).stdout.trim());

export { runFront, userEnv } from '../helpers/served-vm.js';

/** The fields of /proc/<pid>/stat a test looks at; undefined once the process is gone (or a zombie). */
export function procStat(pid: number): { state: string; ppid: number; pgrp: number; session: number; ttyNr: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0] ?? '';
  if (state === 'Z') return undefined;
  return { state, ppid: Number(fields[1]), pgrp: Number(fields[2]), session: Number(fields[3]), ttyNr: Number(fields[4]) };
}

export const alive = (pid: number): boolean => pid > 0 && procStat(pid) !== undefined;

export function exeOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/**
 * True once `pid` runs QEMU with its arguments in place: right after execve /proc/<pid>/exe is
 * already QEMU while its cmdline is still empty.
 */
export const runsQemu = (pid: number): boolean => exeOf(pid) === QEMU_EXE && cmdlineOf(pid).length > 1;

export function cmdlineOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').slice(0, -1);
  } catch {
    return [];
  }
}

/** fd number → what it points at (`pipe:[123]`, `socket:[456]`, a path). */
export function fdLinks(pid: number): Map<number, string> {
  const links = new Map<number, string>();
  let entries: string[] = [];
  try {
    entries = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return links;
  }
  for (const entry of entries) {
    try {
      links.set(Number(entry), readlinkSync(`/proc/${pid}/fd/${entry}`));
    } catch {
      // closed meanwhile
    }
  }
  return links;
}

/** Real, effective, saved and filesystem ids, and the supplementary groups. */
export function idsOf(pid: number): { uids: number[]; gids: number[]; groups: number[] } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const numbers = (key: string): number[] => (new RegExp(`^${key}:(.*)$`, 'm').exec(status)?.[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
  return { uids: numbers('Uid'), gids: numbers('Gid'), groups: numbers('Groups') };
}

/** Polls a condition no event announces (a process ending, a directory removed), within a bound. */
export async function until(condition: () => boolean, what: string, ms = 30_000): Promise<void> {
  await withTimeout((async () => {
    while (!condition()) await new Promise((resolve) => setTimeout(resolve, 25));
  })(), what, ms);
}

/** The VM's status once its sidecar has said hello (QMP answered: QEMU is in its main loop). */
export function servedVm(site: Site, id: string, ms?: number): Promise<VmStatus> {
  return waitForStatus(site, `VM ${id} to be served (sidecar hello)`, (reply) => {
    const vm = vmStatus(reply, id);
    return vm?.sidecar.connected === true ? vm : undefined;
  }, ms);
}

/** Processes whose command line holds `--runtime-dir <dir>`: the daemons serving it. */
export function daemonsOf(runtimeDir: string): number[] {
  const found = spawnSync('pgrep', ['-f', '--', `--runtime-dir ${runtimeDir}( |$)`], { encoding: 'utf8' }).stdout;
  return found.split('\n').filter(Boolean).map(Number);
}
