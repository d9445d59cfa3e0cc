// QMP has no command that reports QEMU's pid, and Node cannot read SO_PEERCRED. The launcher
// knows the pid and should pass it when it can; this is the fallback for a sidecar attached to a
// QEMU it did not start. It finds the listening unix socket bound at `socketPath` in
// /proc/net/unix, then the one process holding that socket inode among /proc/*/fd.
//
// It answers undefined rather than guess whenever the answer is not unique or not visible:
// - QEMU bound a relative path, or lives in another network namespace (not listed the same way);
// - the path was re-bound while an old listener lives on (two inodes);
// - the listener fd is shared by several processes (inherited across fork);
// - we may not read QEMU's /proc/<pid>/fd (needs the same uid or CAP_SYS_PTRACE).
// Passing the vCPU thread ids from query-cpus-fast closes the remaining gap: the pid must own them,
// which ties the answer to the QEMU we are actually talking to.

import { readdir, readFile, readlink, stat } from 'node:fs/promises';

const SO_ACCEPTCON = 0x10000;
const SS_LISTENING = '01';

export interface QemuPidOptions {
  /** vCPU tids (query-cpus-fast thread-id) that must all be tasks of the pid found. */
  readonly threadIds?: readonly number[];
  /** For tests: a different /proc. */
  readonly procRoot?: string;
}

export async function qemuPidFromSocket(socketPath: string, options: QemuPidOptions = {}): Promise<number | undefined> {
  const proc = options.procRoot ?? '/proc';
  const inodes = listeningInodes(await readFile(`${proc}/net/unix`, 'utf8'), socketPath);
  if (inodes.length !== 1) return undefined;
  const target = `socket:[${inodes[0]}]`;

  const owners: number[] = [];
  for (const entry of await readdir(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    if (await holdsSocket(`${proc}/${entry}/fd`, target)) owners.push(Number(entry));
  }
  if (owners.length !== 1) return undefined;
  const pid = owners[0]!;
  for (const tid of options.threadIds ?? []) {
    if (!(await isDirectory(`${proc}/${pid}/task/${tid}`))) return undefined;
  }
  return pid;
}

/** Inodes of listening sockets bound to exactly this path ("Num RefCount Protocol Flags Type St Inode Path"). */
export function listeningInodes(procNetUnix: string, socketPath: string): string[] {
  const inodes: string[] = [];
  for (const line of procNetUnix.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8) continue; // unbound sockets have no path
    const [, , , flags, , state, inode] = fields;
    // The path is the rest of the line; it may itself contain spaces.
    const boundPath = fields.slice(7).join(' ');
    if (boundPath !== socketPath || state !== SS_LISTENING) continue;
    if ((Number.parseInt(flags ?? '0', 16) & SO_ACCEPTCON) === 0) continue;
    if (inode !== undefined) inodes.push(inode);
  }
  return inodes;
}

async function holdsSocket(fdDir: string, target: string): Promise<boolean> {
  let fds: string[];
  try {
    fds = await readdir(fdDir);
  } catch {
    return false; // exited, or not ours to read
  }
  for (const fd of fds) {
    try {
      if ((await readlink(`${fdDir}/${fd}`)) === target) return true;
    } catch {
      // fd closed while we looked
    }
  }
  return false;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
