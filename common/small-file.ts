// Small files the processes read that someone else may have written (vm.json, pidfiles, a
// manager's config): never through a symlink, never a FIFO that would block, never more than the
// caller's bound.

import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** Reads a small regular file without following a symlink; undefined when absent. */
export function readSmallFile(path: string, maxBytes: number): string | undefined | Error {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? undefined : new Error(code === 'ELOOP' ? `${path} is a symbolic link` : (error as Error).message);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) return new Error(`${path} is not a regular file`);
    if (stat.size > maxBytes) return new Error(`${path} is larger than ${maxBytes} bytes`);
    const buffer = Buffer.alloc(maxBytes + 1);
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    return buffer.subarray(0, length).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
