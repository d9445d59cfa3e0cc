// Reading /proc on the hot path: plain synchronous open/read/close into one reused buffer. A /proc
// read takes microseconds and never blocks on disk, so the thread pool round trips of async fs
// would cost more CPU than the read itself (the benchmark compares against exactly this).

import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Largest /proc file read. /proc/stat is the big one (its `intr` line grows with the interrupt
 * count); its `cpu` lines, the only part used, come first and fit in this even with thousands of
 * CPUs. Longer files are cut here, which only ever drops the tail.
 */
export const MAX_PROC_READ_BYTES = 256 * 1024;

/** Something that returns the text of a /proc file by relative name, or undefined if unreadable. */
export interface ProcSource {
  read(name: string): string | undefined;
}

export class ProcFiles implements ProcSource {
  readonly root: string;
  readonly #buffer = Buffer.allocUnsafe(MAX_PROC_READ_BYTES);

  constructor(root = '/proc') {
    this.root = root;
  }

  /** Bytes of the file copied into the shared buffer, or -1 if it cannot be read. */
  readRaw(name: string): number {
    let fd: number;
    try {
      fd = openSync(join(this.root, name), 'r');
    } catch {
      // ENOENT for PSI on old kernels, EOPNOTSUPP when PSI is compiled in but disabled: either way
      // the item is unavailable, which the caller expresses by leaving it out.
      return -1;
    }
    try {
      let length = 0;
      for (;;) {
        const got = readSync(fd, this.#buffer, length, this.#buffer.length - length, null);
        if (got === 0) break;
        length += got;
        if (length === this.#buffer.length) break;
      }
      return length;
    } catch {
      return -1;
    } finally {
      closeSync(fd);
    }
  }

  read(name: string): string | undefined {
    const length = this.readRaw(name);
    // /proc text is ASCII; latin1 decodes it without UTF-8 validation work.
    return length < 0 ? undefined : this.#buffer.toString('latin1', 0, length);
  }
}
