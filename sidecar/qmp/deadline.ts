// One bound on how long something may take: a timeout, a caller's AbortSignal, or both. Whichever
// comes first calls `onExpire` once with the matching QmpError; `clear()` disarms both.

import { QmpAbortedError, QmpTimeoutError } from './errors.js';

export class Deadline {
  #timer: NodeJS.Timeout | undefined;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | undefined;

  /**
   * `timeoutMs` of Infinity means no timeout. The signal must not already be aborted: callers
   * check that first, so that nothing is started on behalf of an abandoned operation.
   */
  constructor(what: string, timeoutMs: number, signal: AbortSignal | undefined, onExpire: (error: QmpTimeoutError | QmpAbortedError) => void) {
    if (Number.isFinite(timeoutMs)) {
      this.#timer = setTimeout(() => {
        this.clear();
        onExpire(new QmpTimeoutError(`${what} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
    }
    if (signal !== undefined) {
      this.#signal = signal;
      this.#onAbort = () => {
        this.clear();
        onExpire(abortedError(what, signal));
      };
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#onAbort !== undefined) this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#onAbort = undefined;
    this.#signal = undefined;
  }
}

export const abortedError = (what: string, signal: AbortSignal): QmpAbortedError =>
  new QmpAbortedError(`${what} aborted`, { cause: signal.reason });

/** Timeouts are positive milliseconds; Infinity disables. Anything else is a caller bug. */
export function checkTimeout(timeoutMs: number): number {
  if (timeoutMs === Infinity || (Number.isFinite(timeoutMs) && timeoutMs > 0)) return timeoutMs;
  throw new RangeError(`timeoutMs must be a positive number or Infinity, got ${timeoutMs}`);
}
