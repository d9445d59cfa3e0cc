// Keeps the VM's sidecar running: restarted with backoff when it dies, so the guest keeps being
// answered; a crash loop is capped and reported instead of spinning. The sidecar runs in its own
// process group, so a Ctrl-C typed at QEMU's terminal reaches QEMU, not the sidecar.

import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';

export interface RestartPolicy {
  readonly firstDelayMs: number;
  readonly maxDelayMs: number;
  /** More crashes than this within windowMs: give up. */
  readonly maxCrashes: number;
  readonly windowMs: number;
}

export const SIDECAR_RESTART: RestartPolicy = { firstDelayMs: 100, maxDelayMs: 5_000, maxCrashes: 5, windowMs: 60_000 };
export const SIDECAR_STOP_GRACE_MS = 3_000;
const STABLE_RUN_MS = 10_000;

export interface SupervisorEvents {
  started: [pid: number];
  /** The sidecar ended; `restartInMs` is undefined when it will not be restarted. */
  exited: [how: string, restartInMs: number | undefined];
  /** Crash loop: the sidecar is no longer restarted. */
  'gave-up': [crashes: number];
}

export interface SupervisorOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly stdio: readonly ['ignore', number | 'ignore' | 'inherit', number | 'ignore' | 'inherit'];
  readonly env: NodeJS.ProcessEnv;
  readonly policy?: RestartPolicy;
  readonly now?: () => number;
}

export class SidecarSupervisor extends EventEmitter<SupervisorEvents> {
  readonly #options: SupervisorOptions;
  readonly #policy: RestartPolicy;
  readonly #now: () => number;
  #child: ChildProcess | undefined;
  #startedAt = 0;
  #crashes: number[] = [];
  #delay: number;
  #timer: NodeJS.Timeout | undefined;
  #stopping = false;

  constructor(options: SupervisorOptions) {
    super();
    this.#options = options;
    this.#policy = options.policy ?? SIDECAR_RESTART;
    this.#now = options.now ?? Date.now;
    this.#delay = this.#policy.firstDelayMs;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): void {
    if (this.#stopping || this.#child !== undefined) return;
    const child = spawn(this.#options.command, [...this.#options.args], { stdio: [...this.#options.stdio], env: this.#options.env, detached: true });
    this.#child = child;
    this.#startedAt = this.#now();
    child.once('spawn', () => this.emit('started', child.pid ?? 0));
    child.once('error', () => {
      // 'exit' may not follow a spawn error; treat it as a crash.
      if (this.#child === child) this.#ended(child, 'could not be started');
    });
    child.once('exit', (code, signal) => this.#ended(child, signal === null ? `exit status ${code}` : `signal ${signal}`, code === 0));
  }

  /** Stops the sidecar (SIGTERM, then SIGKILL after the grace period) and never restarts it. */
  async stop(graceMs = SIDECAR_STOP_GRACE_MS): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#timer);
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  #ended(child: ChildProcess, how: string, clean = false): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    // Exit 0 is the sidecar's own decision (QEMU shut down): nothing to restart.
    if (this.#stopping || clean) {
      this.emit('exited', how, undefined);
      return;
    }
    const now = this.#now();
    // A sidecar that served for a while before dying starts the backoff over.
    if (now - this.#startedAt >= STABLE_RUN_MS) this.#delay = this.#policy.firstDelayMs;
    this.#crashes = [...this.#crashes.filter((at) => now - at < this.#policy.windowMs), now];
    if (this.#crashes.length > this.#policy.maxCrashes) {
      this.emit('exited', how, undefined);
      this.emit('gave-up', this.#crashes.length);
      return;
    }
    const delay = this.#delay;
    this.#delay = Math.min(this.#delay * 2, this.#policy.maxDelayMs);
    this.emit('exited', how, delay);
    this.#timer = setTimeout(() => this.start(), delay);
  }

}
