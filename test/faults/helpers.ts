// Shared by the fault and security tests: launcher-driven VMs around paused QEMUs (observed through
// the sidecar logs and the cache's status), directly-run sidecars with a guest end (for request and
// reply checks), and bounded polling for states that have no event of their own.

import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchStatus } from '../../cache/client.js';
import type { StatusReply } from '../../cache/messages.js';
import { startQemu, type Qemu } from '../fixtures/qmp/qemu.js';
import { GuestEnd } from '../helpers/guest-end.js';
import { waitForLogLine } from '../helpers/log-file.js';
import { binPath, spawnLogged, withTimeout, type LogLine, type LoggedProcess, type Teardown } from '../helpers/logged-process.js';

export const LAUNCHER = binPath('launcher/main.js');
export const SIDECAR = binPath('sidecar/main.js');
export const CACHE = binPath('cache/main.js');
export const PAUSED_VM = ['-accel', 'tcg', '-M', 'pc', '-S', '-nodefaults', '-display', 'none'];
export const DATA_POLICY = 'enabled = true\nallow = ["physcpus", "loadavg", "physmem", "uptime"]\nburst = 1000\ninterval = 0.001\n';

/** Polls `probe` until it returns a value other than undefined, within `ms`. */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 20_000, everyMs = 50): Promise<T> {
  return withTimeout((async () => {
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })(), what, ms);
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function statusOrUndefined(socket: string): Promise<StatusReply | undefined> {
  return fetchStatus(socket, 2_000).catch(() => undefined);
}

// ---------------------------------------------------------------------------------------------
// Launcher-driven VMs

export interface Site {
  readonly dir: string;
  readonly runtime: string;
  readonly config: string;
  readonly policies: string;
  readonly cacheSocket: string;
  sidecarLog(vm: string): string;
}

export interface SiteOptions {
  readonly extraConfig?: string;
  readonly policy?: string;
  /** Mode of the test's own base directory: 0755 lets other users reach the runtime dir itself. */
  readonly baseMode?: number;
}

export async function makeSite(t: Teardown, options: SiteOptions = {}): Promise<Site> {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-faults-'));
  if (options.baseMode !== undefined) await chmod(dir, options.baseMode);
  const runtime = join(dir, 'run');
  const policies = join(dir, 'policies');
  await mkdir(policies);
  await writeFile(join(policies, 'default.toml'), options.policy ?? DATA_POLICY);
  const config = join(dir, 'hostinfo.toml');
  await writeFile(config, `enabled = true\npolicy_dir = "policies"\n${options.extraConfig ?? ''}[cache]\ninterval = 0.2\nmax_age = 1\n`);
  const cacheSocket = join(runtime, 'cache.sock');
  // The launcher leaves the cache running on purpose; a restarted one too.
  t.teardown(() => spawnSync('pkill', ['-KILL', '-f', '--', `--socket ${cacheSocket}`]));
  return { dir, runtime, config, policies, cacheSocket, sidecarLog: (vm) => join(runtime, 'logs', `${vm}.sidecar.log`) };
}

export interface Launched {
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

export function launchVm(t: Teardown, site: Site, qemuArgs: readonly string[]): Launched {
  const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('HOSTINFO_')));
  const child = spawn(process.execPath, [LAUNCHER, '--config', site.config, '--runtime-dir', site.runtime, '--', ...PAUSED_VM, ...qemuArgs], {
    stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv,
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await withTimeout(exited, 'the launcher to exit').catch(() => child.kill('SIGKILL'));
    }
  });
  return { pid: child.pid ?? 0, exited: withTimeout(exited, 'the launcher to exit', 60_000), stderr: () => stderr };
}

export interface LaunchedVm {
  readonly name: string;
  readonly launcher: Launched;
  /** Sidecar pid and QEMU pid, from the sidecar's identity line. */
  readonly sidecarPid: number;
  readonly qemuPid: number;
}

/** Starts a VM and waits until its sidecar is connected to the guest port and has host data. */
export async function startLaunchedVm(t: Teardown, site: Site, name: string, extra: readonly string[] = []): Promise<LaunchedVm> {
  const launcher = launchVm(t, site, ['-name', name, ...extra]);
  const log = site.sidecarLog(name);
  const identity = await waitForLogLine(log, (line) => line['event'] === 'identity');
  const sidecarPid = identity['pid'] as number;
  await waitForLogLine(log, (line) => line['event'] === 'guest-connected' && line['pid'] === sidecarPid);
  await waitForLogLine(log, (line) => line['event'] === 'cache-data' && line['pid'] === sidecarPid);
  return { name, launcher, sidecarPid, qemuPid: (identity['vm'] as { pid: number }).pid };
}

export const isEvent = (event: string, extra: (line: LogLine) => boolean = () => true) => (line: LogLine): boolean => line['event'] === event && extra(line);

// ---------------------------------------------------------------------------------------------
// Directly-run sidecars

export interface Bench {
  readonly dir: string;
  readonly config: string;
  readonly policies: string;
  readonly cacheSocket: string;
  cache: LoggedProcess;
  startCache(): Promise<LoggedProcess>;
}

export async function makeBench(t: Teardown, defaultPolicy: string = DATA_POLICY): Promise<Bench> {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-faults-'));
  const policies = join(dir, 'policies');
  await mkdir(policies);
  await writeFile(join(policies, 'default.toml'), defaultPolicy);
  const config = join(dir, 'hostinfo.toml');
  await writeFile(config, 'enabled = true\npolicy_dir = "policies"\nruntime_dir = "run"\n[cache]\ninterval = 0.2\nmax_age = 1\n');
  const cacheSocket = join(dir, 'cache.sock');
  const startCache = async (): Promise<LoggedProcess> => {
    const cache = spawnLogged(t, CACHE, ['--config', config, '--socket', cacheSocket]);
    await cache.waitFor('listening');
    return cache;
  };
  const bench: Bench = { dir, config, policies, cacheSocket, cache: await startCache(), startCache };
  return bench;
}

export interface DirectVm {
  readonly name: string;
  readonly uuid: string;
  readonly qemu: Qemu;
  readonly guest: GuestEnd;
  readonly sidecar: LoggedProcess;
}

export function startSidecar(t: Teardown, bench: Bench, qemu: Qemu, guestPath: string): LoggedProcess {
  return spawnLogged(t, SIDECAR, ['--qmp', qemu.socketPath, '--guest', guestPath, '--config', bench.config, '--cache', bench.cacheSocket, '--qemu-pid', String(qemu.pid)]);
}

export async function startDirectVm(t: Teardown, bench: Bench, name: string, uuid: string): Promise<DirectVm> {
  const qemu = await startQemu(t, ['-name', name, '-uuid', uuid]);
  const guest = await GuestEnd.listen(t, join(bench.dir, `${name}.guest.sock`));
  const sidecar = startSidecar(t, bench, qemu, guest.path);
  await guest.connected();
  await sidecar.waitFor('cache-data');
  return { name, uuid, qemu, guest, sidecar };
}

export function uuidFor(i: number): string {
  return `6e1f0c2a-3b4d-4e5f-8a6b-${(0x7c8d9e0f0000 + i).toString(16).padStart(12, '0')}`;
}
