// Makes sure a hostinfod serves this runtime directory. On a managed host it runs as a service
// and this only looks; for VMs run by hand (the demo) the first launcher starts one: detached in
// its own session, with no descriptor of the caller's, so it outlives this VM and serves the next.

import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CodedError } from '../common/coded-error.js';
import { CONTROL_SOCKET, LOGS_DIR } from '../common/runtime-tree.js';

export const DAEMON_MAIN = fileURLToPath(new URL('../daemon/main.js', import.meta.url));
/** The first start reads the static inventory (systeminformation), which takes a moment. */
export const DAEMON_START_TIMEOUT_MS = 15_000;
const PROBE_INTERVAL_MS = 20;

/** 'denied': a daemon of another user (root's, reached through a group) may run; we cannot ask. */
export type Probe = 'answers' | 'absent' | 'denied';

export function probeDaemon(socketPath: string): Promise<Probe> {
  return new Promise((resolve) => {
    const socket = connect({ path: socketPath });
    socket.once('connect', () => {
      socket.destroy();
      resolve('answers');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'EACCES' || error.code === 'EPERM' ? 'denied' : 'absent'));
  });
}

export class DaemonStartError extends CodedError<'DAEMON_START_FAILED'> {
  override readonly name = 'DaemonStartError';
}

export interface DaemonStart {
  readonly runtimeDir: string;
  /** Passed on as --config so the daemon reads the same host config as this launcher. */
  readonly configPath: string | undefined;
  readonly env: NodeJS.ProcessEnv;
  /** False: only look (hostinfo-kvm, under a VM manager); no daemon is then an error. */
  readonly autostart?: boolean;
  readonly timeoutMs?: number;
}

export async function ensureDaemon(options: DaemonStart): Promise<'running' | 'started' | 'unknown'> {
  const socketPath = join(options.runtimeDir, CONTROL_SOCKET);
  const first = await probeDaemon(socketPath);
  if (first === 'answers') return 'running';
  if (first === 'denied') return 'unknown';
  if (options.autostart === false) throw new DaemonStartError('DAEMON_START_FAILED', `no hostinfod answers on ${socketPath}; run it as the host's service (systemctl start hostinfod)`);
  // The daemon opens its own log once it has made (and checked) the runtime directory.
  const args = [DAEMON_MAIN, '--runtime-dir', options.runtimeDir, '--log-file', ...(options.configPath === undefined ? [] : ['--config', options.configPath])];
  let exit: string | undefined;
  const child = spawn(process.execPath, args, { detached: true, stdio: 'ignore', env: options.env, cwd: '/' });
  child.unref();
  child.once('exit', (code, signal) => { exit = signal ?? `exit status ${code}`; });
  child.once('error', (error) => { exit = error.message; });
  const deadline = Date.now() + (options.timeoutMs ?? DAEMON_START_TIMEOUT_MS);
  while (Date.now() < deadline) {
    if ((await probeDaemon(socketPath)) === 'answers') return 'started';
    // Exit status 3: another starter won the race; its socket will answer.
    if (exit !== undefined && exit !== 'exit status 3') break;
    await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS));
  }
  throw new DaemonStartError('DAEMON_START_FAILED', `hostinfod did not start on ${socketPath} (${exit ?? 'no answer in time'}); see ${join(options.runtimeDir, LOGS_DIR, 'hostinfod.log')}`);
}
