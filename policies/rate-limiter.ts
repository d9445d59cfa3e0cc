// Per-VM token bucket, written as the equivalent GCRA (generic cell rate algorithm) so that the
// whole state is one number and every decision is exact at a given instant: `burst` requests
// may come back to back, then one more per `interval`. The clock is the caller's, which keeps
// the request path pure and the tests free of sleeps. It must be monotonic (the sidecar's
// performance.now): `fullAt` is an instant on that clock, so on a wall clock stepped back by X
// every request would be refused with "retry after X ms".

export interface RateLimit {
  /** Sustained spacing between requests, milliseconds. */
  readonly intervalMs: number;
  /** Requests allowed back to back from a full bucket. */
  readonly burst: number;
}

export interface LimiterState {
  /**
   * Theoretical arrival time: the instant at which the bucket would be full again. -Infinity for
   * a bucket that has never been used.
   */
  readonly fullAt: number;
}

export const FRESH_LIMITER: LimiterState = { fullAt: Number.NEGATIVE_INFINITY };

export type LimiterDecision =
  | { readonly allowed: true; readonly state: LimiterState }
  | { readonly allowed: false; readonly state: LimiterState; readonly retryAfterMs: number };

/** Takes one token at `now` (ms) if there is one. A refused request takes nothing. */
export function takeToken(limit: RateLimit, state: LimiterState, now: number): LimiterDecision {
  const fullAt = Math.max(state.fullAt, now);
  // The bucket holds `burst` tokens; a new token may be taken while fullAt is no more than
  // burst - 1 intervals ahead of now.
  const earliest = fullAt - (limit.burst - 1) * limit.intervalMs;
  if (now < earliest) {
    return { allowed: false, state, retryAfterMs: Math.ceil(earliest - now) };
  }
  return { allowed: true, state: { fullAt: fullAt + limit.intervalMs } };
}

/**
 * Carries a bucket over to a new limit (the VM's policy changed). The state is an instant in the
 * old limit's terms; without this, tightening a generous policy would leave the guest locked out
 * for up to the old burst × old interval. A guest keeps no more debt than a full new bucket.
 */
export function rebaseLimiter(limit: RateLimit, state: LimiterState, now: number): LimiterState {
  const worst = now + limit.burst * limit.intervalMs;
  return state.fullAt > worst ? { fullAt: worst } : state;
}
