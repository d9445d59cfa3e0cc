// Every process a benchmark starts, itself or through a daemon it started (sidecars, an
// autostarted hostinfod), is noted here with its /proc start time, so that whatever happens (a
// benchmark throws, the run is interrupted) none is left behind: each is killed by its pid, and
// only while that pid is still the very process that was noted.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { processStartTime, sameProcess } from '../common/proc.js';

const noted = new Map<number, string>();

/** Notes `pid` (if it runs) for killing at the end. */
export function notePid(pid: number | null | undefined): void {
  if (pid === null || pid === undefined || noted.has(pid)) return;
  const start = processStartTime(pid);
  if (start !== undefined) noted.set(pid, start);
}

/** True while the noted process `pid` runs (a zombie or a recycled pid does not count). */
export function stillRuns(pid: number): boolean {
  const start = noted.get(pid) ?? processStartTime(pid);
  return start !== undefined && sameProcess(pid, start);
}

/** spawn(), with the child noted at once and forgotten once it has exited. */
export function spawnNoted(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, [...args], options);
  child.on('error', () => {});
  const pid = child.pid;
  notePid(pid);
  child.once('exit', () => {
    // A child that exec'd (the front becoming QEMU) keeps its pid and start time.
    if (pid !== undefined && !stillRuns(pid)) noted.delete(pid);
  });
  return child;
}

export function killNoted(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  const start = noted.get(pid);
  if (start === undefined || !sameProcess(pid, start)) {
    noted.delete(pid);
    return;
  }
  try {
    process.kill(pid, signal);
  } catch {
    // Gone between the check and the kill.
  }
}

/** SIGKILLs every noted process still running. Synchronous: also runs from process 'exit'. */
export function killAllNoted(): void {
  for (const pid of [...noted.keys()]) killNoted(pid);
  noted.clear();
}

/** Resolves once `pid` has stopped running (for processes that are not our children). */
export async function untilGone(pid: number, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (stillRuns(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

/** Sends `signal`, then SIGKILL if the child has not exited in `graceMs`; resolves at its exit. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL', graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = signal === 'SIGKILL' ? undefined : setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

process.once('exit', killAllNoted);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAllNoted();
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
  });
}
