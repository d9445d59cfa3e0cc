// Makes sure a hostinfo-cache serves the host: use the one that answers on the socket, else start
// one detached (its own session, so it outlives this VM and serves the next ones) and wait for it.
// Two launchers racing here both start one; the cache's own single-instance rule leaves exactly
// one serving, and both launchers see it answer.

import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';

export const CACHE_MAIN = fileURLToPath(new URL('../cache/main.js', import.meta.url));
/** First start reads the static inventory (systeminformation), which takes a moment. */
export const CACHE_START_TIMEOUT_MS = 15_000;
const PROBE_INTERVAL_MS = 25;

/** True when something accepts connections on the unix socket. */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface CacheStart {
  readonly socketPath: string;
  /** Passed on as --config so the cache reads the same host config as this launcher. */
  readonly configPath: string | undefined;
  /** The cache's stdout and stderr; an fd opened for appending. */
  readonly logFd: number;
  readonly env: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
}

export type CacheState = { readonly state: 'running' } | { readonly state: 'started'; readonly pid: number };

export async function ensureCache(options: CacheStart): Promise<CacheState> {
  if (await socketAnswers(options.socketPath)) return { state: 'running' };
  const args = [CACHE_MAIN, '--socket', options.socketPath, ...(options.configPath === undefined ? [] : ['--config', options.configPath])];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', options.logFd, options.logFd], env: options.env });
  child.unref();
  let exit: string | undefined;
  child.once('exit', (code, signal) => { exit = signal ?? `exit status ${code}`; });
  child.once('error', (error) => { exit = error.message; });
  const deadline = Date.now() + (options.timeoutMs ?? CACHE_START_TIMEOUT_MS);
  while (Date.now() < deadline) {
    if (await socketAnswers(options.socketPath)) return { state: 'started', pid: child.pid ?? 0 };
    // Exit status 3 means another starter won the race: keep probing for its socket.
    if (exit !== undefined && exit !== 'exit status 3') break;
    await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS));
  }
  throw new Error(`hostinfo-cache did not start on ${options.socketPath} (${exit ?? 'no answer in time'})`);
}
