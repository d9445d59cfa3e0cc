// N VMs as the fleet benchmarks need them: one real hostinfo-cache, N paused QEMUs (real QMP) and
// N real hostinfo-sidecars. The bench plays each QEMU's hostinfo chardev end: it listens on N unix
// sockets and each sidecar connects to its own. Every process started here is killed by close().

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const bin = (relative: string): string => fileURLToPath(new URL(`../${relative}`, import.meta.url));

export const PAUSED_QEMU = ['-M', 'pc', '-accel', 'tcg', '-S', '-nodefaults', '-display', 'none'] as const;
/** Pairs started at once: 2 cores gain nothing from more, and startup stays orderly. */
const START_CONCURRENCY = 6;
const READY_TIMEOUT_MS = 60_000;

export interface FleetVm {
  readonly index: number;
  readonly qemu: ChildProcess;
  readonly sidecar: ChildProcess;
  /** The bench's end of the VM's hostinfo chardev: write requests here, replies come back. */
  readonly guest: Socket;
  readonly server: Server;
}

/** Calls `onEvent(event, line)` for every JSON log line a child writes to stderr, and keeps draining. */
export function watchLog(child: ChildProcess, onEvent: (event: string, line: string) => void): void {
  let partial = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const match = /"event":"([^"]+)"/.exec(line);
      if (match?.[1] !== undefined) onEvent(match[1], line);
    }
  });
}

/** Resolves with the line of the first log event named `event`; rejects if the child exits first. */
export function logEvent(child: ChildProcess, event: string, timeoutMs = READY_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} from pid ${child.pid} in ${timeoutMs} ms`)), timeoutMs);
    watchLog(child, (name, line) => {
      if (name !== event) return;
      clearTimeout(timer);
      resolve(line);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`pid ${child.pid} exited (${signal ?? code}) before ${event}`));
    });
  });
}

/** Resolves once the JSON log file `path` holds a line with `event`. Files, not pipes, so the bench
 * does not have to read every sidecar's audit lines while it measures. */
export async function fileLogEvent(path: string, event: string, child: ChildProcess, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!readFileSync(path, 'utf8').includes(`"event":"${event}"`)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`pid ${child.pid} exited before ${event}: ${readFileSync(path, 'utf8').slice(-500)}`);
    if (Date.now() > deadline) throw new Error(`no ${event} in ${path} in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function waitForPath(path: string, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`${path} did not appear in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Runs `task` for 0..count-1 with at most `limit` at a time. */
export async function pool(count: number, limit: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

export async function killAndWait(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}

export class Fleet {
  readonly dir: string;
  readonly vms: FleetVm[] = [];
  readonly cache: ChildProcess;
  readonly #children: ChildProcess[];

  private constructor(dir: string, cache: ChildProcess, children: ChildProcess[]) {
    this.dir = dir;
    this.cache = cache;
    this.#children = children;
  }

  /** Starts the cache, then `count` QEMU + sidecar pairs; resolves once every sidecar has host data and is connected. */
  static async start(count: number): Promise<Fleet> {
    const dir = await mkdtemp(join(tmpdir(), 'hostinfo-fleet-'));
    const children: ChildProcess[] = [];
    const spawnChild = (command: string, args: readonly string[]): ChildProcess => {
      const child = spawn(command, [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      children.push(child);
      return child;
    };
    let fleet: Fleet | undefined;
    try {
      await mkdir(join(dir, 'policies'));
      // A rate limit the benchmark never reaches: it measures answering, not refusing.
      await writeFile(join(dir, 'policies', 'default.toml'), 'enabled = true\nburst = 100000000\ninterval = 1\n');
      const config = join(dir, 'hostinfo.toml');
      await writeFile(config, 'enabled = true\npolicy_dir = "policies"\nruntime_dir = "run"\n');
      const cachePath = join(dir, 'cache.sock');
      const cache = spawnChild(process.execPath, [bin('cache/main.js'), '--config', config, '--socket', cachePath]);
      await logEvent(cache, 'listening');
      fleet = new Fleet(dir, cache, children);
      const vms = fleet.vms;
      await pool(count, START_CONCURRENCY, async (index) => {
        const qmp = join(dir, `qmp-${index}.sock`);
        const guestPath = join(dir, `guest-${index}.sock`);
        const qemu = spawnChild('qemu-system-x86_64', [...PAUSED_QEMU, '-name', `bench-${index}`, '-qmp', `unix:${qmp},server=on,wait=off`]);
        const server = createServer();
        server.listen(guestPath);
        await once(server, 'listening');
        const accepted = once(server, 'connection').then(([socket]) => socket as Socket);
        await waitForPath(qmp);
        const logPath = join(dir, `sidecar-${index}.log`);
        const logFd = openSync(logPath, 'a');
        const sidecar = spawn(process.execPath, [
          bin('sidecar/main.js'), '--qmp', qmp, '--guest', guestPath, '--config', config, '--cache', cachePath, '--qemu-pid', String(qemu.pid),
        ], { stdio: ['ignore', 'ignore', logFd] });
        closeSync(logFd);
        children.push(sidecar);
        const [, guest] = await Promise.all([fileLogEvent(logPath, 'cache-data', sidecar), accepted]);
        guest.setNoDelay(true);
        vms.push({ index, qemu, sidecar, guest, server });
      });
      vms.sort((a, b) => a.index - b.index);
      return fleet;
    } catch (error) {
      if (fleet !== undefined) await fleet.close();
      else {
        await Promise.all(children.map((child) => killAndWait(child)));
        await rm(dir, { recursive: true, force: true });
      }
      throw error;
    }
  }

  /** Stops every VM (sidecar and QEMU) after the first `count`. */
  async shrink(count: number): Promise<void> {
    const gone = this.vms.splice(count);
    for (const vm of gone) {
      vm.guest.destroy();
      vm.server.close();
    }
    await Promise.all(gone.flatMap((vm) => [killAndWait(vm.sidecar), killAndWait(vm.qemu)]));
  }

  async close(): Promise<void> {
    for (const vm of this.vms) {
      vm.guest.destroy();
      vm.server.close();
    }
    await Promise.all(this.#children.map((child) => killAndWait(child)));
    await rm(this.dir, { recursive: true, force: true });
  }
}
