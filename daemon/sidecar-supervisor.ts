// Keeps one VM's sidecar running: restarted with backoff when it dies, so the guest keeps being
// answered; a crash loop is capped and reported instead of spinning. How a sidecar is started
// (its sockets, its uid) is the caller's `launch`; this file only decides when.

import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { Backoff } from '../common/backoff.js';

export interface RestartPolicy {
  readonly firstDelayMs: number;
  readonly maxDelayMs: number;
  /** This many crashes within windowMs: give up. */
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
  /** Starts one sidecar, with an 'error' listener attached; a rejection counts as a crash. */
  readonly launch: () => Promise<ChildProcess>;
  readonly policy?: RestartPolicy;
  /** Monotonic ms. */
  readonly now?: () => number;
}

export class SidecarSupervisor extends EventEmitter<SupervisorEvents> {
  readonly #options: SupervisorOptions;
  readonly #policy: RestartPolicy;
  readonly #now: () => number;
  #child: ChildProcess | undefined;
  #startedAt = 0;
  #crashes: number[] = [];
  #starts = 0;
  #launching = false;
  readonly #backoff: Backoff;
  #timer: NodeJS.Timeout | undefined;
  #stopping = false;

  constructor(options: SupervisorOptions) {
    super();
    this.#options = options;
    this.#policy = options.policy ?? SIDECAR_RESTART;
    this.#now = options.now ?? (() => performance.now());
    this.#backoff = new Backoff({ minMs: this.#policy.firstDelayMs, maxMs: this.#policy.maxDelayMs });
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Sidecar starts so far, the first included. */
  get starts(): number {
    return this.#starts;
  }

  start(): void {
    if (this.#stopping || this.#child !== undefined || this.#launching) return;
    this.#launching = true;
    this.#startedAt = this.#now();
    this.#options.launch().then((child) => {
      this.#launching = false;
      this.#starts += 1;
      if (this.#stopping) {
        child.kill('SIGKILL');
        return;
      }
      // A failed spawn leaves no pid (its 'error' may already have been emitted: launch
      // listens for it); 'exit' comes from the event loop later and cannot be missed.
      if (child.pid === undefined) return this.#crashed('could not be started');
      this.#child = child;
      child.once('exit', (code, signal) => this.#ended(child, signal === null ? `exit status ${code}` : `signal ${signal}`, code === 0));
      this.emit('started', child.pid);
    }, (error: unknown) => {
      this.#launching = false;
      this.#crashed(`could not be started: ${(error as Error).message}`);
    });
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
    this.#crashed(how);
  }

  #crashed(how: string): void {
    if (this.#stopping) return;
    const now = this.#now();
    // A sidecar that served for a while before dying starts the backoff over.
    if (now - this.#startedAt >= STABLE_RUN_MS) this.#backoff.reset();
    this.#crashes = [...this.#crashes.filter((at) => now - at < this.#policy.windowMs), now];
    if (this.#crashes.length >= this.#policy.maxCrashes) {
      this.emit('exited', how, undefined);
      this.emit('gave-up', this.#crashes.length);
      return;
    }
    const delay = this.#backoff.next();
    this.emit('exited', how, delay);
    this.#timer = setTimeout(() => this.start(), delay);
  }

}
