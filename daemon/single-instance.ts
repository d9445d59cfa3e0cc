// One daemon per socket path. The listening socket itself says whether a daemon is alive (connect
// succeeds) or a crashed one left it behind (ECONNREFUSED). Replacing a stale socket is a
// check-then-unlink, which two starters could interleave so that one unlinks the socket the other
// just bound; a short-lived O_EXCL lock file around check + unlink + bind serialises that.

import { chmodSync, chownSync, linkSync, lstatSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect, type Server } from 'node:net';
import { DaemonError } from './errors.js';
import { SILENT_LOG, type Log } from './log.js';

/** How long a starter waits for another starter's lock before giving up. */
export const DEFAULT_LOCK_TIMEOUT_MS = 10_000;
/** A lock file still empty after this was left by a starter that died between create and write. */
export const EMPTY_LOCK_GRACE_MS = 5_000;
/** A live daemon answers a connect at once; one that does not within this is treated as busy, not stale. */
export const PROBE_TIMEOUT_MS = 2_000;

export interface ListenOptions {
  readonly mode: number;
  readonly gid: number | undefined;
  readonly lockTimeoutMs?: number;
  readonly log?: Log;
}

/**
 * Binds `server` to `path`, replacing a stale socket, and sets the socket's mode and group.
 * Throws ALREADY_RUNNING when a live daemon answers on the path.
 */
export async function listenExclusive(server: Server, path: string, options: ListenOptions): Promise<void> {
  const log = options.log ?? SILENT_LOG;
  const lockPath = `${path}.lock`;
  await acquireLock(lockPath, options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS, log);
  try {
    await clearStaleSocket(path, log);
    await new Promise<void>((resolve, reject) => {
      const failed = (error: NodeJS.ErrnoException): void => {
        reject(error.code === 'EADDRINUSE'
          ? new DaemonError('ALREADY_RUNNING', `${path} was bound by another process while this one held the lock`)
          : new DaemonError('LISTEN_FAILED', `cannot listen on ${path}: ${error.message}`));
      };
      server.once('error', failed);
      server.listen(path, () => {
        server.off('error', failed);
        resolve();
      });
    });
    // Usually the directory already keeps others out and the socket's own mode matches it; with
    // both `group` and `admin_group` the directory lets everyone search it (runtime-tree.ts) and
    // this mode is what refuses them (Linux checks write permission on connect). Bound with the
    // umask's mode (0700 under the daemon's 077) until here, so it never is wider than asked.
    if (options.gid !== undefined) chownSync(path, -1, options.gid);
    chmodSync(path, options.mode);
  } finally {
    releaseLock(lockPath);
  }
}

async function clearStaleSocket(path: string, log: Log): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!isSocket) throw new DaemonError('SOCKET_PATH_NOT_SOCKET', `${path} exists and is not a socket; not replacing it`);
  const answer = await probe(path);
  if (answer === 'gone') return;
  if (answer === 'alive') throw new DaemonError('ALREADY_RUNNING', `another hostinfod is serving ${path}`);
  log.warn({ event: 'stale-socket', socket: path }, 'replacing the socket of a daemon that is gone');
  unlinkSync(path);
}

/** 'stale' only on ECONNREFUSED: anything else might be a live daemon and must not be unlinked. */
function probe(path: string): Promise<'alive' | 'stale' | 'gone'> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const timer = setTimeout(() => finish('alive'), PROBE_TIMEOUT_MS);
    function finish(answer: 'alive' | 'stale' | 'gone'): void {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    }
    socket.once('connect', () => finish('alive'));
    socket.once('error', (error: NodeJS.ErrnoException) => {
      finish(error.code === 'ECONNREFUSED' ? 'stale' : error.code === 'ENOENT' ? 'gone' : 'alive');
    });
  });
}

async function acquireLock(lockPath: string, timeoutMs: number, log: Log): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      writeFileSync(lockPath, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = readLock(lockPath);
    if (holder !== undefined && isStale(holder)) {
      log.warn({ event: 'stale-lock', lock: lockPath, pid: holder.pid }, 'removing the lock of a starter that is gone');
      breakLock(lockPath, holder.text);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new DaemonError('LOCK_TIMEOUT', `${lockPath} stayed locked by pid ${holder?.pid ?? '?'} for ${timeoutMs} ms`);
    }
    // Another starter is inside its critical section, which lasts a few milliseconds; polling is
    // the only way to wait for a file without flock(). The jitter keeps racers from lock-stepping.
    await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20));
  }
}

interface LockHolder {
  readonly text: string;
  readonly pid: number | undefined;
  readonly mtimeMs: number;
}

function readLock(lockPath: string): LockHolder | undefined {
  try {
    const text = readFileSync(lockPath, 'latin1').slice(0, 64);
    const mtimeMs = statSync(lockPath).mtimeMs;
    const pid = /^\d+\n$/.test(text) ? Number(text.trim()) : undefined;
    return { text, pid, mtimeMs };
  } catch {
    return undefined; // released meanwhile: just retry
  }
}

function isStale(holder: LockHolder): boolean {
  if (holder.pid === undefined) return Date.now() - holder.mtimeMs > EMPTY_LOCK_GRACE_MS;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Removes the lock only if it is still the stale one that was judged: it is moved aside first
 * (atomic), then checked; a fresh lock taken meanwhile by another starter is put back with link(),
 * which refuses to overwrite. (A third starter locking in that instant is the one residual case.)
 */
function breakLock(lockPath: string, staleText: string): void {
  const aside = `${lockPath}.stale.${process.pid}`;
  try {
    renameSync(lockPath, aside);
  } catch {
    return; // someone else broke it first
  }
  try {
    if (readFileSync(aside, 'latin1').slice(0, 64) !== staleText) {
      try {
        linkSync(aside, lockPath);
      } catch {
        // EEXIST: a new lock exists already; the one moved aside is lost to its owner's release.
      }
    }
  } finally {
    unlinkSync(aside);
  }
}

function releaseLock(lockPath: string): void {
  try {
    unlinkSync(lockPath);
  } catch {
    // Already gone: nothing to release.
  }
}
