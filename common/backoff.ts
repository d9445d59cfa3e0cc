// The two waiting rules used wherever something is retried: a Backoff doubles its delay from
// minMs up to maxMs and starts over on reset() (the guest port's reconnects, the supervisor's
// sidecar restarts); retryEvery repeats an attempt at a fixed interval for as long as the caller
// says another try is worth it (connecting to a socket QEMU has not created yet).

export interface BackoffPolicy {
  /** The first delay, and the delay again after reset(). */
  readonly minMs: number;
  /** Doubling stops here. */
  readonly maxMs: number;
}

/** Pure delay arithmetic: no timers, so callers schedule and tests step it directly. */
export class Backoff {
  readonly #policy: BackoffPolicy;
  #nextMs: number;

  constructor(policy: BackoffPolicy) {
    this.#policy = policy;
    this.#nextMs = policy.minMs;
  }

  /** The delay to wait now; the one after it is twice as long, up to maxMs. */
  next(): number {
    const delay = this.#nextMs;
    this.#nextMs = Math.min(delay * 2, this.#policy.maxMs);
    return delay;
  }

  /** Back to minMs: the thing retried worked (for long enough). */
  reset(): void {
    this.#nextMs = this.#policy.minMs;
  }
}

/**
 * Runs `attempt` until it resolves, waiting `intervalMs` between tries. After a failure,
 * `retry(error)` decides: true tries again, false rethrows that error.
 */
export async function retryEvery<T>(intervalMs: number, attempt: () => Promise<T>, retry: (error: unknown) => boolean): Promise<T> {
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (!retry(error)) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
