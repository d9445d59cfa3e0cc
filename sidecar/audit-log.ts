// One audit line per guest request (vm, command, status), at a bounded rate: a guest that floods
// must not be able to fill the host's disk. Lines over the bound are counted, and the count is
// reported on the next line that is written.

import { FRESH_LIMITER, takeToken, type LimiterState, type RateLimit } from '../policies/rate-limiter.js';
import type { Status } from './protocol/reply.js';

/** 20 lines back to back, then 10 per second, per VM. */
export const AUDIT_RATE: RateLimit = { burst: 20, intervalMs: 100 };

export interface AuditRecord {
  readonly vm: string;
  readonly command: string;
  readonly status: Status;
  /** Requests not logged since the previous written line. */
  readonly suppressed?: number;
}

export class AuditLog {
  readonly #write: (record: AuditRecord) => void;
  readonly #rate: RateLimit;
  #limiter: LimiterState = FRESH_LIMITER;
  #suppressed = 0;

  constructor(write: (record: AuditRecord) => void, rate: RateLimit = AUDIT_RATE) {
    this.#write = write;
    this.#rate = rate;
  }

  /**
   * `now`: monotonic ms (the sidecar's performance.now clock), never the wall clock: a wall
   * clock stepped back by X would leave every request unlogged for X.
   */
  record(vm: string, command: string, status: Status, now: number): void {
    const decision = takeToken(this.#rate, this.#limiter, now);
    this.#limiter = decision.state;
    if (!decision.allowed) {
      this.#suppressed += 1;
      return;
    }
    this.#write(this.#suppressed === 0 ? { vm, command, status } : { vm, command, status, suppressed: this.#suppressed });
    this.#suppressed = 0;
  }

  /** Requests left out since the last written line, reported once (at shutdown): none get lost. */
  flush(write: (suppressed: number) => void): void {
    if (this.#suppressed > 0) write(this.#suppressed);
    this.#suppressed = 0;
  }
}
