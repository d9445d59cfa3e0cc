// Whether the daemon may connect to a socket path it did not create. An attached VM's sockets are
// wherever its manager put them; when the daemon connects for the sidecar (QEMU runs as root, so
// its sidecar runs as the unprivileged sidecar user and could not connect itself), a path that
// anyone else could redirect would let them point root's connection, and then the sidecar's fd,
// at any socket on the host. So every directory on the way must be one only trusted users can
// change, a symlink is followed only when it sits in such a directory, and the end must be a
// socket such a user owns.

import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { dirname, isAbsolute, resolve, sep } from 'node:path';

/** More symlinks than this on one path is a loop (Linux stops at 40 too). */
const MAX_SYMLINKS = 40;

/** Why `path` is not safe for the daemon to connect to, or undefined when it is. */
export function unsafeSocketPath(path: string, trustedUids: readonly number[]): string | undefined {
  if (!isAbsolute(path)) return `${path} is not an absolute path`;
  let pending = path.split(sep).filter(Boolean);
  let at = '/';
  let hops = 0;
  const trusted = (stat: Stats): boolean => trustedUids.includes(stat.uid);
  const why = (where: string, stat: Stats, what: string): string => `${where} (owner uid ${stat.uid}, mode ${(stat.mode & 0o7777).toString(8)}) ${what}`;
  const top = lstatOrError(at);
  if (typeof top === 'string') return top;
  if (!trusted(top) || writableByOthers(top)) return why(at, top, 'may be changed by an untrusted user');
  while (pending.length > 0) {
    const [name, ...rest] = pending as [string, ...string[]];
    const next = at === '/' ? `/${name}` : `${at}/${name}`;
    const stat = lstatOrError(next);
    if (typeof stat === 'string') return stat;
    if (stat.isSymbolicLink()) {
      // Its directory is trusted (checked on the way here); in a sticky one others may add
      // entries, so the link must be a trusted user's own as well.
      if (!trusted(stat)) return why(next, stat, 'is a symbolic link of an untrusted user');
      hops += 1;
      if (hops > MAX_SYMLINKS) return `${path}: too many symbolic links`;
      const target = readlinkOrError(next);
      if (typeof target !== 'string') return target.problem;
      const resolved = isAbsolute(target) ? target : resolve(dirname(next), target);
      pending = [...resolved.split(sep).filter(Boolean), ...rest];
      at = '/';
      continue;
    }
    if (rest.length === 0) {
      if (!stat.isSocket()) return `${next} is not a socket`;
      if (!trusted(stat)) return why(next, stat, 'belongs to an untrusted user');
      return undefined;
    }
    if (!stat.isDirectory()) return `${next} is not a directory`;
    if (!trusted(stat) || writableByOthers(stat)) return why(next, stat, 'may be changed by an untrusted user');
    at = next;
    pending = rest;
  }
  return `${path} names a directory, not a socket`;
}

/** Group- or world-writable without the sticky bit: others could rename entries in it. */
function writableByOthers(stat: Stats): boolean {
  return (stat.mode & 0o022) !== 0 && (stat.mode & 0o1000) === 0;
}

/** The link's target, or why not (it was replaced between lstat and readlink): an answer, never a throw. */
function readlinkOrError(path: string): string | { readonly problem: string } {
  try {
    return readlinkSync(path);
  } catch (error) {
    return { problem: `${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
  }
}

function lstatOrError(path: string): Stats | string {
  try {
    return lstatSync(path);
  } catch (error) {
    return `${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
  }
}
