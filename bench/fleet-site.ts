// The bench's own site and daemon for the fleet benchmarks: a host config, policy directory and
// runtime directory in a temporary directory, hostinfod running in the foreground on them with
// its JSON log parsed as it comes, and the polling and log reading the benchmarks wait with.

import { type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONTROL_SOCKET, LOGS_DIR, VMS_DIR } from '../common/runtime-tree.js';
import { notePid, spawnNoted, stopChild } from './reaper.js';

export const bin = (relative: string): string => fileURLToPath(new URL(`../${relative}`, import.meta.url));
/** The package's bin, a POSIX sh front that execs QEMU once the planner has registered the VM. */
export const FRONT = fileURLToPath(new URL('../../bin/hostinfo-qemu', import.meta.url));
export const QEMU = 'qemu-system-x86_64';
export const PAUSED_QEMU = ['-M', 'pc', '-accel', 'tcg', '-S', '-nodefaults', '-display', 'none'] as const;
/** A rate limit the benchmarks never reach: they measure answering, not refusing. */
export const BENCH_POLICY = 'enabled = true\nburst = 100000000\ninterval = 1\n';
/**
 * The default flood budget (100 lines/s per guest) would cut a round-trip benchmark off after its
 * first 100 requests: the rows measure answering, so the budget is widened out of their way.
 */
export const WIDE_GUEST_BUDGET = '[guest]\nlines_per_second = 1000000\nbytes_per_second = 100000000\n';
/** How rows whose figures depend on the widened budget say so. */
export const WIDE_BUDGET_NOTE = 'guest budget 10⁶ lines/s';
export const READY_TIMEOUT_MS = 60_000;
export const POLL_MS = 10;

export type LogLine = Record<string, unknown>;

/** A host config, policy directory and runtime directory of the bench's own. */
export interface Site {
  readonly dir: string;
  readonly config: string;
  readonly runtime: string;
  readonly vms: string;
  readonly control: string;
  sidecarLog(vm: string): string;
  daemonLog(): string;
}

export async function makeSite(prefix: string): Promise<Site> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await mkdir(join(dir, 'policies'));
  await writeFile(join(dir, 'policies', 'default.toml'), BENCH_POLICY);
  const config = join(dir, 'hostinfo.toml');
  await writeFile(config, `enabled = true\npolicy_dir = "policies"\nruntime_dir = "run"\n${WIDE_GUEST_BUDGET}`);
  const runtime = join(dir, 'run');
  return {
    dir, config, runtime,
    vms: join(runtime, VMS_DIR),
    control: join(runtime, CONTROL_SOCKET),
    sidecarLog: (vm) => join(runtime, LOGS_DIR, `${vm}.sidecar.log`),
    daemonLog: () => join(runtime, LOGS_DIR, 'hostinfod.log'),
  };
}

/** The JSON lines of a log file, the unparseable ones skipped; [] while it does not exist. */
export function readLogLines(path: string): LogLine[] {
  if (!existsSync(path)) return [];
  const lines: LogLine[] = [];
  for (const text of readFileSync(path, 'utf8').split('\n')) {
    if (text === '') continue;
    try {
      lines.push(JSON.parse(text) as LogLine);
    } catch {
      // A line being written right now, or not JSON.
    }
  }
  return lines;
}

/** Polls `check` every POLL_MS until it returns something; the timestamps the benchmarks use come from logs, not from this poll. */
export async function poll<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = READY_TIMEOUT_MS, detail: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await check();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail()}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** hostinfod in the foreground, its JSON log on stderr parsed as it comes. */
export class DaemonProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  #stderr = '';

  constructor(site: Site, extraEnv: NodeJS.ProcessEnv = {}) {
    this.child = spawnNoted(process.execPath, [bin('daemon/main.js'), '--config', site.config, '--runtime-dir', site.runtime], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: cleanEnv(extraEnv),
    });
    let partial = '';
    this.child.stderr?.on('data', (chunk: Buffer) => {
      const text = partial + chunk.toString();
      this.#stderr = (this.#stderr + chunk.toString()).slice(-4000);
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        try {
          const parsed = JSON.parse(line) as LogLine;
          this.lines.push(parsed);
          // Sidecars are the daemon's children, but ours to clean up if anything goes wrong.
          if (parsed['event'] === 'sidecar-started' && typeof parsed['sidecarPid'] === 'number') notePid(parsed['sidecarPid']);
        } catch {
          // not a log line
        }
      }
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  waitFor(what: string, match: (line: LogLine) => boolean, timeoutMs = READY_TIMEOUT_MS): Promise<LogLine> {
    return poll(what, () => {
      if (!this.running) throw new Error(`hostinfod exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}: ${this.#stderr}`);
      return this.lines.find(match);
    }, timeoutMs);
  }

  /** SIGTERM (the daemon stops its sidecars), SIGKILL if it takes longer than 10 s. */
  stop(): Promise<void> {
    return stopChild(this.child, 'SIGTERM');
  }
}

/** HOSTINFO_* from the developer's shell must not change what the bench configures. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('HOSTINFO_'))), ...extra };
}
