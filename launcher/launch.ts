// One VM's life under hostinfo-qemu: claim its runtime directory, make sure the cache runs, start
// QEMU on the user's terminal together with the sidecar, and when QEMU ends stop the
// sidecar, remove the directory and hand back QEMU's exit status.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HostConfig } from '../policies/host-config.js';
import { CacheKeeper } from './cache-keeper.js';
import { ensureCache } from './cache-starter.js';
import type { WrapPlan } from './qemu-args.js';
import { openLog, removeVmDir } from './runtime-dir.js';
import { SidecarSupervisor } from './sidecar-supervisor.js';

export const SIDECAR_MAIN = fileURLToPath(new URL('../sidecar/main.js', import.meta.url));
const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface Say {
  (message: string): void;
}

/** QEMU's exit status as a shell reports it: 128+n when it died of signal n. */
export function exitStatusOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal === null ? 0 : (constants.signals as Partial<Record<NodeJS.Signals, number>>)[signal] ?? 0);
}

/** Runs QEMU with its stdio inherited and signals forwarded; resolves with its exit status. */
export async function runQemu(binary: string, args: readonly string[], onStart?: (child: ChildProcess) => void): Promise<number> {
  const child = spawn(binary, [...args], { stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
  try {
    const spawned = once(child, 'spawn').then(() => true, () => false);
    const exited = new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve(exitStatusOf(code, signal)));
    });
    if (await spawned) onStart?.(child);
    return await exited;
  } finally {
    for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
  }
}

export interface WrappedLaunch {
  readonly qemu: string;
  readonly plan: WrapPlan;
  readonly config: HostConfig;
  /** Absolute config path to hand to the cache and sidecar, when one was named. */
  readonly configPath: string | undefined;
  readonly policyDirOverride: string | undefined;
  readonly env: NodeJS.ProcessEnv;
  readonly say: Say;
}

export async function runWrapped(launch: WrappedLaunch): Promise<number> {
  const { plan, config, say } = launch;
  const cacheSocket = join(config.runtimeDir, 'cache.sock');
  const childEnv = { ...launch.env, HOSTINFO_RUNTIME_DIR: config.runtimeDir };
  // Until QEMU runs there is nobody to forward a signal to: remember it, clean up, and end the
  // way QEMU would have (128+n) instead of dying with the VM directory left behind.
  let early: NodeJS.Signals | undefined;
  const remember = (signal: NodeJS.Signals): void => { early ??= signal; };
  for (const signal of FORWARDED_SIGNALS) process.on(signal, remember);
  let cacheFailing = false;
  const startCache = async (): Promise<void> => {
    const cacheLog = openLog(config.runtimeDir, 'cache.log');
    try {
      await ensureCache({ socketPath: cacheSocket, configPath: launch.configPath, logFd: cacheLog, env: childEnv });
      cacheFailing = false;
    } catch (error) {
      // The VM still starts: the sidecar serves PING/HELP/VERSION and answers 503 for data until
      // a cache appears (it keeps reconnecting, and the keeper below keeps trying). Said once
      // per failing streak: the terminal is the user's.
      if (!cacheFailing) say(`warning: ${(error as Error).message}; see ${join(config.runtimeDir, 'logs', 'cache.log')}`);
      cacheFailing = true;
    } finally {
      closeSync(cacheLog);
    }
  };
  try {
    await startCache();
  } finally {
    for (const signal of FORWARDED_SIGNALS) process.off(signal, remember);
  }
  if (early !== undefined) {
    await removeVmDir(plan);
    return exitStatusOf(null, early);
  }

  const sidecarLog = openLog(config.runtimeDir, `${plan.vmDirName}.sidecar.log`);
  let supervisor: SidecarSupervisor | undefined;
  const keeper = new CacheKeeper(cacheSocket, startCache);
  const status = await runQemu(launch.qemu, plan.args, (child) => {
    keeper.start();
    // Started together with QEMU, not once QMP is up: the sidecar's own start-up (Node, its
    // modules) then overlaps QEMU's, and it retries the QMP socket until QEMU listens.
    supervisor = new SidecarSupervisor({
      command: process.execPath,
      args: [
        SIDECAR_MAIN, '--qmp', plan.qmpSocket, '--guest', plan.guestSocket, '--cache', cacheSocket, '--qemu-pid', String(child.pid),
        ...(launch.configPath === undefined ? [] : ['--config', launch.configPath]),
        ...(launch.policyDirOverride === undefined ? [] : ['--policy-dir', launch.policyDirOverride]),
      ],
      stdio: ['ignore', sidecarLog, sidecarLog],
      env: childEnv,
    });
    supervisor.on('exited', (how, restartInMs) => {
      if (restartInMs !== undefined) say(`sidecar ended (${how}); restarting in ${restartInMs} ms`);
    });
    supervisor.on('gave-up', (crashes) => {
      say(`sidecar crashed ${crashes} times in a row; the guest's hostinfo port is no longer answered. See ${join(config.runtimeDir, 'logs', `${plan.vmDirName}.sidecar.log`)}`);
    });
    supervisor.start();
  });
  keeper.stop();
  await supervisor?.stop();
  closeSync(sidecarLog);
  await removeVmDir(plan);
  return status;
}
