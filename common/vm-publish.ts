// Publishing a VM directory under <runtime_dir>/vms/, the one way a VM appears there: a staging
// directory gets vm.json, then one rename makes it visible under its final name, complete, so the
// daemon never adopts half a registration. Launchers publish the VMs they start; the daemon
// publishes the VMs attached to it (hostinfo-ctl attach) the same way.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { VM_RECORD_FILE } from './runtime-tree.js';
import { encodeVmRecord, type VmRecord } from './vm-record.js';

/** A staging directory under vms/ with `record` written in it; published later by one rename. */
export function stageVmDir(vmsDir: string, record: VmRecord): string {
  const stage = join(vmsDir, `.new-${process.pid}-${randomBytes(6).toString('hex')}`);
  mkdirSync(stage, { mode: 0o700 });
  // 'wx' (O_EXCL) in a directory just made: nothing can be planted under the name.
  writeFileSync(join(stage, VM_RECORD_FILE), encodeVmRecord(record), { flag: 'wx', mode: 0o600 });
  return stage;
}

/**
 * Makes a staged directory visible as `vmDir`, complete. False when the name is taken by another
 * live VM (the rename finds it non-empty, or it is someone else's in the sticky vms/).
 */
export function publishVmDir(stage: string, vmDir: string): boolean {
  try {
    renameSync(stage, vmDir);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EPERM' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOTDIR') return false;
    throw error;
  }
}

