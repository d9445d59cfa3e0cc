// One VM's directory under <runtime_dir>/vms/, as the daemon sees it: who owns it (the kernel's
// word for who registered it), its vm.json, and its removal. Every access acts with the owner's
// rights or on what the daemon itself owns, and never through a symlink.

import { spawn } from 'node:child_process';
import { lstatSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { retryEvery } from '../common/backoff.js';
import { VM_RECORD_FILE } from '../common/runtime-tree.js';
import { readSmallFile } from '../common/small-file.js';
import { ownerAccount, runAs } from './run-as.js';
import { systemTool } from './system-tools.js';
import { MAX_VM_RECORD_BYTES, parseVmRecord, type VmRecordResult } from '../common/vm-record.js';

export interface VmDirOwner {
  readonly uid: number;
  readonly gid: number;
}

/** The directory's owner, or why it is not a VM directory at all. */
export function vmDirOwner(dir: string): VmDirOwner | string {
  let stat;
  try {
    stat = lstatSync(dir);
  } catch (error) {
    return (error as Error).message;
  }
  if (stat.isSymbolicLink()) return 'a symbolic link, not a directory';
  if (!stat.isDirectory()) return 'not a directory';
  if ((stat.mode & 0o022) !== 0) return `mode ${(stat.mode & 0o777).toString(8)}: others could write into it`;
  return { uid: stat.uid, gid: stat.gid };
}

export function readVmRecord(dir: string): VmRecordResult | undefined {
  const text = readSmallFile(join(dir, VM_RECORD_FILE), MAX_VM_RECORD_BYTES);
  if (text === undefined) return undefined;
  if (text instanceof Error) return { ok: false, problem: text.message };
  return parseVmRecord(text);
}

/**
 * Removes a VM directory. One the daemon's own user owns it removes itself (nobody else can write
 * there); another user's is removed by `rm` running as that user, so a symlink swapped in during
 * the walk can only ever reach what that user could delete anyway.
 */
export async function removeVmDir(dir: string, owner: VmDirOwner, daemonUid: number): Promise<void> {
  if (owner.uid === daemonUid) {
    rmSync(dir, { recursive: true, force: true });
    return;
  }
  // As that user with its own groups: it may reach the runtime tree only through one of them
  // (libvirt-qemu through kvm, say).
  const [command, prefix] = runAs(ownerAccount(owner));
  await new Promise<void>((resolve, reject) => {
    const rm = spawn(command, [...prefix, systemTool('rm'), '-rf', '--one-file-system', '--', dir], { stdio: 'ignore', env: {}, cwd: '/' });
    rm.once('error', reject);
    rm.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`rm -rf ${dir} as uid ${owner.uid} exited ${code}`))));
  });
}

/** Connects as soon as QEMU listens on `path`; gives up when `keepTrying` says the VM is gone. */
export async function connectWhenListening(path: string, keepTrying: () => boolean, retryMs = 25): Promise<Socket> {
  try {
    return await retryEvery(retryMs, () => connectPaused(path), () => keepTrying());
  } catch {
    throw new Error(`${path}: QEMU is gone before it listened`);
  }
}

/** One connection attempt; rejects with the connect error. */
function connectPaused(path: string): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const attempt = connect({ path });
    attempt.once('connect', () => {
      attempt.removeAllListeners('error');
      // Not a byte may be read here: QEMU's QMP greeting (and any early guest bytes) belong to
      // the sidecar this socket is handed to.
      attempt.pause();
      resolve(attempt);
    });
    attempt.once('error', reject);
  });
}
