// While its VM runs, each launcher keeps the host's hostinfo-cache alive: it probes the socket
// every interval and starts a new cache when nothing answers (a crashed or killed cache comes
// back within about one interval; several launchers doing this at once still end with one cache,
// by the cache's own single-instance rule).

import { socketAnswers } from './cache-starter.js';

export const CACHE_PROBE_INTERVAL_MS = 1_000;

export class CacheKeeper {
  readonly #socketPath: string;
  readonly #restart: () => Promise<void>;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(socketPath: string, restart: () => Promise<void>, intervalMs = CACHE_PROBE_INTERVAL_MS) {
    this.#socketPath = socketPath;
    this.#restart = restart;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.#check(), this.#intervalMs);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #check(): Promise<void> {
    // A restart can take longer than one interval (the cache reads its inventory first).
    if (this.#busy) return;
    this.#busy = true;
    try {
      if (!(await socketAnswers(this.#socketPath))) await this.#restart();
    } finally {
      this.#busy = false;
    }
  }
}
