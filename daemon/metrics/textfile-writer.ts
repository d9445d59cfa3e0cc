// Writes the metrics text where node_exporter's textfile collector reads it, once per sample.
// A scrape must never see half a file, so each write goes to a new temporary file in the same
// directory, which is then renamed over the target (rename is atomic within one file system).
//
// - The temporary name starts with "." and ends in ".tmp": node_exporter reads only *.prom.
// - It is opened O_CREAT|O_EXCL|O_NOFOLLOW: an entry already there (a symlink someone planted, a
//   leftover) is never written through; a fresh random name is tried instead, a few times.
// - Mode 0644 is set with fchmod, since the daemon's umask (the unit's UMask=0077) would otherwise
//   leave node_exporter, another user, unable to read it.
// - The directory is checked before every write, as it can change under a running daemon: not a
//   symlink, a directory, and not writable by everyone unless sticky (where others cannot rename
//   or remove our files).
// - No fsync: the file is replaced every interval, so after a power cut the next write (within
//   one interval of the daemon starting) repairs whatever the rename left; a journal commit every
//   second for that would cost more than it saves.
// - Asynchronous and never rejecting: a slow or hung file system (NFS) must not stall the
//   sampling tick that feeds the sidecars. One write at a time; a tick that finds the previous
//   write still running skips its own (the next tick writes newer numbers anyway); skips are
//   logged at the first and every 100th after, with their count, however the writes fare.
// - Each distinct failure is logged once, not every interval, and recovery once.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { CodedError } from '../../common/coded-error.js';
import type { Log } from '../log.js';

export type TextfileErrorCode = 'TEXTFILE_DIR_UNSAFE' | 'TEXTFILE_WRITE';
export class TextfileError extends CodedError<TextfileErrorCode> {
  override readonly name = 'TextfileError';
  /** What tells one failure from another for logging: the code plus the errno and step. */
  readonly key: string;
  constructor(code: TextfileErrorCode, key: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.key = `${code}:${key}`;
  }
}

/** Attempts at a fresh temporary name before giving up on this write. */
const TEMP_ATTEMPTS = 4;
const TEMP_MODE = 0o644;
const LOG_EVERY_SKIPS = 100;

export const randomTempName = (target: string): string => `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`;

export interface TextfileWriterOptions {
  readonly log: Log;
  /** The temporary file's name in the target's directory; tests make it predictable. */
  readonly tempName?: (target: string) => string;
}

export class TextfileWriter {
  readonly #log: Log;
  readonly #tempName: (target: string) => string;
  #busy = false;
  #skipped = 0;
  /** The key of the failure last logged; undefined while writes succeed. */
  #failing: string | undefined;

  constructor(options: TextfileWriterOptions) {
    this.#log = options.log;
    this.#tempName = options.tempName ?? randomTempName;
  }

  /**
   * Writes what `render` returns to `target`; resolves when done and never rejects: failures,
   * a throwing `render` included, go to the log. Not rendered at all when a write is running.
   */
  async write(target: string, render: () => string): Promise<void> {
    if (this.#busy) {
      if (this.#skipped++ % LOG_EVERY_SKIPS === 0) {
        this.#log.warn({ event: 'metrics-textfile-skipped', file: target, skipped: this.#skipped }, 'previous write of the metrics textfile still in progress; skipping this one');
      }
      return;
    }
    this.#busy = true;
    try {
      await writeAtomically(target, render(), this.#tempName);
      if (this.#failing !== undefined) this.#log.info({ event: 'metrics-textfile-ok', file: target }, 'metrics textfile written again');
      this.#failing = undefined;
    } catch (error) {
      this.#failed(target, error instanceof TextfileError ? error : new TextfileError('TEXTFILE_WRITE', 'unexpected', `cannot write ${target}: ${String(error)}`));
    } finally {
      this.#busy = false;
    }
  }

  #failed(target: string, error: TextfileError): void {
    const key = `${target}\0${error.key}`;
    if (this.#failing === key) return;
    this.#failing = key;
    this.#log.warn({ event: 'metrics-textfile-failed', file: target, code: error.code, err: error.message }, 'metrics textfile not written (logged once until it changes)');
  }
}

/** The checks and the temp-file-and-rename itself; throws a TextfileError naming `target`. */
export async function writeAtomically(target: string, text: string, tempName: (target: string) => string = randomTempName): Promise<void> {
  const dir = dirname(target);
  await checkTextfileDir(dir, target);
  const handle = await openFresh(dir, target, tempName);
  let renamed = false;
  try {
    try {
      await handle.file.chmod(TEMP_MODE);
      await handle.file.writeFile(text);
    } finally {
      await handle.file.close();
    }
    await rename(handle.path, target).catch((error: unknown) => {
      throw writeError(target, 'rename', error, `rename of ${handle.path} over it`);
    });
    renamed = true;
  } catch (error) {
    throw error instanceof TextfileError ? error : writeError(target, 'write', error, `writing ${handle.path}`);
  } finally {
    if (!renamed) await unlink(handle.path).catch(() => {});
  }
}

async function checkTextfileDir(dir: string, target: string): Promise<void> {
  let stat;
  try {
    stat = await lstat(dir);
  } catch (error) {
    throw writeError(target, 'lstat', error, `its directory ${dir}`);
  }
  const refuse = (why: string): TextfileError =>
    new TextfileError('TEXTFILE_DIR_UNSAFE', why, `cannot write ${target}: its directory ${dir} (owner uid ${stat.uid}, mode ${(stat.mode & 0o7777).toString(8).padStart(4, '0')}) ${why}; refusing to write there`);
  if (stat.isSymbolicLink()) throw refuse('is a symbolic link');
  if (!stat.isDirectory()) throw refuse('is not a directory');
  if ((stat.mode & 0o002) !== 0 && (stat.mode & 0o1000) === 0) throw refuse('is writable by everyone and not sticky');
}

async function openFresh(dir: string, target: string, tempName: (target: string) => string): Promise<{ path: string; file: Awaited<ReturnType<typeof open>> }> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  let last: unknown;
  for (let attempt = 0; attempt < TEMP_ATTEMPTS; attempt++) {
    const path = `${dir}/${tempName(target)}`;
    try {
      return { path, file: await open(path, flags, TEMP_MODE) };
    } catch (error) {
      last = error;
      // Only "something is there already" is worth another name; anything else will fail again.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') break;
    }
  }
  throw writeError(target, 'open', last, `a new temporary file in ${dir}`);
}

function writeError(target: string, step: string, error: unknown, what: string): TextfileError {
  const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
  return new TextfileError('TEXTFILE_WRITE', `${step}:${code}`, `cannot write ${target}: ${what}: ${(error as Error).message}`, { cause: error });
}
