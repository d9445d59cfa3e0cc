// The directory holding the cache socket is its real access control (a unix socket's own mode is
// not honoured everywhere): only the owner, and the configured group if any, may enter it.

import { chmodSync, chownSync, lstatSync, mkdirSync } from 'node:fs';
import { CacheError } from './errors.js';

export interface SocketAccess {
  /** Group allowed in; undefined keeps directory and socket owner-only. */
  readonly gid: number | undefined;
}

export const dirMode = (access: SocketAccess): number => (access.gid === undefined ? 0o700 : 0o750);
export const socketMode = (access: SocketAccess): number => (access.gid === undefined ? 0o600 : 0o660);

/**
 * Creates the directory with the right mode and group, or checks an existing one. An existing
 * directory is only changed when `owned` (it is the configured runtime directory, which belongs to
 * hostinfo); a directory given through --socket is never chmod'ed, only refused if it is open to
 * others: chmod'ing, say, /tmp would be a disaster.
 */
export function prepareSocketDir(dir: string, access: SocketAccess, owned: boolean): void {
  const uid = process.geteuid?.() ?? 0;
  let created = false;
  try {
    mkdirSync(dir, { mode: dirMode(access) });
    created = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      chmodSync(dir, dirMode(access));
      created = true;
    } else if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw error;
    }
  }
  const stat = lstatSync(dir);
  if (!stat.isDirectory()) throw new CacheError('SOCKET_DIR_UNSAFE', `${dir} is not a directory`);
  if (stat.uid !== uid) throw new CacheError('SOCKET_DIR_UNSAFE', `${dir} belongs to uid ${stat.uid}, not to this daemon's uid ${uid}`);
  if (created || owned) {
    if (access.gid !== undefined && stat.gid !== access.gid) chownSync(dir, -1, access.gid);
    if ((stat.mode & 0o7777) !== dirMode(access)) chmodSync(dir, dirMode(access));
    return;
  }
  const mode = stat.mode & 0o777;
  const groupOk = (mode & 0o070) === 0 || (access.gid !== undefined && stat.gid === access.gid && (mode & 0o020) === 0);
  if ((mode & 0o007) !== 0 || !groupOk) {
    throw new CacheError('SOCKET_DIR_UNSAFE', `${dir} has mode ${mode.toString(8)}: others (or a group other than the configured one) could reach the socket; use a directory of mode 700 (750 with the configured group)`);
  }
}
