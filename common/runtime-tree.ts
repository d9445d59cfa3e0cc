// The runtime directory tree, shared by the daemon (which creates it) and the launcher (which
// registers VMs in it). Everything here is access control, so nothing is trusted that was not
// checked: no symlink is followed, every directory must belong to the expected owner and be
// writable by nobody else (the one exception, vms/ with a configured group, is sticky).
//
//   <runtime_dir>/                 0700; 0750 of `group`     the daemon's user
//                                  or `admin_group`; 0751
//                                  of `group` with both
//   <runtime_dir>/hostinfod.sock   0600, 0660 of admin_group control socket (hostinfo-ctl)
//   <runtime_dir>/vms/             0700, 1770 with group     launchers add one directory per VM
//   <runtime_dir>/vms/<vm>/        0700                      the launcher's user: vm.json, sockets
//   <runtime_dir>/logs/            0700                      daemon and sidecar logs
//
// A directory has one group. With both groups set and different, the runtime directory stays
// `group`'s (launchers list vms/ through it) and everyone else gets search (x) only, no listing:
// admins reach the socket by its name, whose own mode (0660 of admin_group; Linux checks it on
// connect) is then what keeps others out, as vms/ (1770 of group) and logs/ (0700) keep theirs.

import { chmodSync, chownSync, closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { CodedError } from './coded-error.js';

export const VMS_DIR = 'vms';
export const LOGS_DIR = 'logs';
export const CONTROL_SOCKET = 'hostinfod.sock';
export const VM_RECORD_FILE = 'vm.json';
export const GUEST_SOCKET = 'guest.sock';
export const QMP_SOCKET = 'qmp.sock';
/** The vhostmd port's chardev, when hostinfo.toml has [vhostmd] enabled = true. */
export const VHOSTMD_SOCKET = 'vhostmd.sock';
export const QEMU_PIDFILE = 'qemu.pid';

export type RuntimeTreeErrorCode = 'RUNTIME_DIR_UNSAFE' | 'RUNTIME_DIR_MISSING' | 'RUNTIME_DIR_UNCREATABLE';
export class RuntimeTreeError extends CodedError<RuntimeTreeErrorCode> {
  override readonly name = 'RuntimeTreeError';
}

export interface TreeAccess {
  /** Group allowed into the runtime directory and to add VM directories; undefined: owner only. */
  readonly gid: number | undefined;
  /** Group allowed to use the control socket (admin_group); undefined: the daemon's user only. */
  readonly adminGid?: number | undefined;
}

/** The runtime directory's group: the VM group's if any (vms/ is reached through it), else the admins'. */
export const runtimeDirGroup = (access: TreeAccess): number | undefined => access.gid ?? access.adminGid;

export function runtimeDirMode(access: TreeAccess): number {
  if (access.gid === undefined && access.adminGid === undefined) return 0o700;
  return access.adminGid === undefined || access.gid === undefined || access.adminGid === access.gid ? 0o750 : 0o751;
}
/** The control socket: 0660 of admin_group when one is set (listenExclusive applies it). */
export const controlSocketMode = (access: TreeAccess): number => (access.adminGid === undefined ? 0o600 : 0o660);
export const vmsDirMode = (access: TreeAccess): number => (access.gid === undefined ? 0o700 : 0o1770);

const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RuntimeTreeError('RUNTIME_DIR_UNSAFE', `${path}: ${(error as Error).message}`);
  }
}

function unsafe(path: string, stat: Stats, why: string): RuntimeTreeError {
  return new RuntimeTreeError('RUNTIME_DIR_UNSAFE', `${path} (owner uid ${stat.uid}, group ${stat.gid}, mode ${octal(stat.mode)}) ${why}; refusing to use it`);
}

/**
 * A directory that may be trusted: a real directory (not a symlink), owned by one of `owners`,
 * and writable by no one else, unless it is `gid`'s and sticky (then members may add entries but
 * not touch each other's).
 */
export function checkTrustedDir(path: string, owners: readonly number[], options: { readonly groupWritable?: number } = {}): Stats {
  const stat = lstatOrUndefined(path);
  if (stat === undefined) throw new RuntimeTreeError('RUNTIME_DIR_MISSING', `${path} does not exist`);
  if (stat.isSymbolicLink()) throw unsafe(path, stat, 'is a symbolic link');
  if (!stat.isDirectory()) throw unsafe(path, stat, 'is not a directory');
  if (!owners.includes(stat.uid)) throw unsafe(path, stat, `belongs to neither ${owners.map((uid) => `uid ${uid}`).join(' nor ')}`);
  refuseOthersWriting(path, stat, options.groupWritable);
  return stat;
}

/** Writable by its owner alone, unless it is sticky and `group`'s: then members may add entries. */
function refuseOthersWriting(path: string, stat: Stats, group: number | undefined): void {
  if ((stat.mode & 0o002) !== 0) throw unsafe(path, stat, 'is writable by everyone');
  const groupMayWrite = group !== undefined && stat.gid === group && (stat.mode & 0o1000) !== 0;
  if ((stat.mode & 0o020) !== 0 && !groupMayWrite) throw unsafe(path, stat, 'is writable by its group');
}

/** Creates `path` with `mode` (and group), or checks and corrects one this uid already owns. */
function ensureDir(path: string, uid: number, mode: number, gid: number | undefined): void {
  if (lstatOrUndefined(path) === undefined) {
    try {
      mkdirSync(path, { mode: 0o700 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new RuntimeTreeError('RUNTIME_DIR_UNCREATABLE', `cannot create ${path}: ${(error as Error).message}`);
    }
  }
  const stat = lstatOrUndefined(path);
  if (stat === undefined) throw new RuntimeTreeError('RUNTIME_DIR_UNCREATABLE', `${path} vanished while being created`);
  if (stat.isSymbolicLink() || !stat.isDirectory()) throw unsafe(path, stat, 'is not a directory');
  if (stat.uid !== uid) throw unsafe(path, stat, `does not belong to this process (uid ${uid})`);
  // Modes are narrowed, never trusted after the fact: what others could write into is refused,
  // since they may have planted entries in it already. The one exception is the sticky,
  // group-writable vms/ of the configured group, which is what `mode` asks for.
  refuseOthersWriting(path, stat, (mode & 0o020) !== 0 ? gid : undefined);
  if (gid !== undefined && stat.gid !== gid) chownSync(path, -1, gid);
  if ((stat.mode & 0o7777) !== mode) chmodSync(path, mode);
}

/**
 * The daemon's side: creates the tree (parents of the runtime directory 0755, like /run/user) or
 * takes over its own, refusing anything that another user owns or could have planted.
 */
export function prepareRuntimeTree(runtimeDir: string, access: TreeAccess, uid = process.geteuid?.() ?? 0): void {
  if (lstatOrUndefined(runtimeDir) === undefined) {
    try {
      mkdirSync(runtimeDir, { recursive: true, mode: 0o755 });
    } catch (error) {
      throw new RuntimeTreeError('RUNTIME_DIR_UNCREATABLE', `cannot create ${runtimeDir}: ${(error as Error).message}`);
    }
  }
  ensureDir(runtimeDir, uid, runtimeDirMode(access), runtimeDirGroup(access));
  ensureDir(join(runtimeDir, VMS_DIR), uid, vmsDirMode(access), access.gid);
  ensureDir(join(runtimeDir, LOGS_DIR), uid, 0o700, undefined);
}

/**
 * The launcher's side: the tree must exist and belong to this user or to root (a root daemon
 * serving this user through its group), and vms/ to the same owner. Returns that owner.
 */
export function checkRuntimeTree(runtimeDir: string, uid = process.geteuid?.() ?? 0): number {
  const top = checkTrustedDir(runtimeDir, uid === 0 ? [0] : [uid, 0]);
  checkTrustedDir(join(runtimeDir, VMS_DIR), [top.uid], { groupWritable: top.gid });
  return top.uid;
}

/**
 * Opens a log for appending, creating it owner-only, never through a symlink (O_NOFOLLOW) and
 * only if it is a regular file (O_NONBLOCK keeps a planted FIFO from blocking the open).
 */
export function openLogNoFollow(path: string): number {
  // libuv adds O_CLOEXEC itself: the fd reaches a child only when passed as its stdio.
  const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  const stat = fstatSync(fd);
  if (!stat.isFile() || stat.nlink !== 1) {
    closeSync(fd);
    throw new RuntimeTreeError('RUNTIME_DIR_UNSAFE', `${path} is not a plain file of its own (hard link or special file); refusing to write to it`);
  }
  return fd;
}
