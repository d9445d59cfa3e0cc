// Runs a callback every interval on a fixed grid of the monotonic clock, so samples do not drift
// later by the callback's own duration; a missed slot (the loop was blocked) is skipped, not
// caught up with a burst.

import { performance } from 'node:perf_hooks';

export class Ticker {
  #timer: NodeJS.Timeout | undefined;
  readonly #intervalMs: number;
  readonly #tick: () => void;
  #origin = 0;
  #count = 0;

  constructor(intervalMs: number, tick: () => void) {
    this.#intervalMs = intervalMs;
    this.#tick = tick;
  }

  start(): void {
    this.#origin = performance.now();
    this.#count = 0;
    this.#schedule();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    const now = performance.now();
    this.#count = Math.max(this.#count + 1, Math.ceil((now - this.#origin) / this.#intervalMs));
    this.#timer = setTimeout(() => {
      this.#tick();
      if (this.#timer !== undefined) this.#schedule();
    }, this.#origin + this.#count * this.#intervalMs - now);
  }
}
