// File descriptors a caller leaves open without close-on-exec (libvirt passes its monitor socket
// and virtlogd's pipe to QEMU that way) must not live on in anything hostinfo starts: a daemon or
// sidecar holding virtlogd's pipe keeps the next `virsh start` from opening its log. Node opens
// its own descriptors close-on-exec, so "no O_CLOEXEC" is exactly "inherited from the caller" and
// still able to pass through an exec. (At start-up Node, through libuv's
// uv_disable_stdio_inheritance, already marks close-on-exec every descriptor from 0 up to the
// first unused one above 15: those cannot reach a child, but stay open here and are not listed.
// What this finds and closes is what sits past such a gap.)

import { closeSync, readdirSync, readFileSync } from 'node:fs';

/** O_CLOEXEC as /proc/<pid>/fdinfo prints it (octal "flags:" field). */
const O_CLOEXEC = 0o2000000;

/** The descriptors ≥ 3 of this process that would survive an exec, from /proc/self/fdinfo. */
export function inheritableFds(): number[] {
  const fds: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc/self/fd');
  } catch {
    return fds; // no /proc: nothing to find, nothing to close
  }
  for (const entry of entries) {
    const fd = Number(entry);
    if (!Number.isSafeInteger(fd) || fd < 3) continue;
    const flags = fdFlags(fd);
    if (flags !== undefined && (flags & O_CLOEXEC) === 0) fds.push(fd);
  }
  return fds;
}

function fdFlags(fd: number): number | undefined {
  try {
    const match = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
    return match?.[1] === undefined ? undefined : parseInt(match[1], 8);
  } catch {
    return undefined; // the readdir's own descriptor, already closed
  }
}

/** Closes every inherited descriptor ≥ 3 except `keep` (those handed over on purpose). */
export function closeInheritedFds(keep: readonly number[] = []): number[] {
  const closed: number[] = [];
  for (const fd of inheritableFds()) {
    if (keep.includes(fd)) continue;
    try {
      closeSync(fd);
      closed.push(fd);
    } catch {
      // EBADF: gone already
    }
  }
  return closed;
}
