// Registers a VM with the daemon by publishing its directory under <runtime_dir>/vms/: a staging
// directory gets vm.json, then one rename makes it visible under its final name, complete. The
// daemon watches vms/ and adopts what appears; no socket is involved, so nothing a local user
// does to the daemon's sockets can keep a VM from being registered.

import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { isAbsolute, join, resolve } from 'node:path';
import { VM_RECORD_FILE } from '../common/runtime-tree.js';
import { encodeVmRecord, type VmRecord } from '../common/vm-record.js';
import { planQemuArgs, type PlanOptions, type QemuPlan, type WrapPlan } from './qemu-args.js';

export interface Registration {
  readonly pid: number;
  readonly startTime: string;
  /** For a relative -pidfile: QEMU resolves it against the working directory it inherits. */
  readonly cwd: string;
}

/** The record the daemon reads, from the plan and the process that will become QEMU. */
export function vmRecordOf(plan: WrapPlan, registration: Registration): VmRecord {
  return {
    v: 1,
    pid: registration.pid,
    startTime: registration.startTime,
    name: plan.name,
    uuid: plan.uuid,
    transport: plan.transport,
    guestDevice: plan.serialIndex !== undefined ? `/dev/ttyS${plan.serialIndex}` : plan.portName ?? 'org.hostinfo.0',
    pidfile: plan.pidfile === undefined ? undefined : isAbsolute(plan.pidfile) ? plan.pidfile : resolve(registration.cwd, plan.pidfile),
  };
}

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

/**
 * Plans QEMU's arguments for the first free directory name and publishes that directory. A name
 * taken by another live VM (the rename finds it non-empty, or someone else's in the sticky vms/)
 * moves on to the next candidate.
 */
export function planAndRegister(userArgs: readonly string[], options: Omit<PlanOptions, 'existingDirs'>, registration: Registration): QemuPlan {
  const taken = new Set<string>();
  let stage: string | undefined;
  try {
    for (;;) {
      const plan = planQemuArgs(userArgs, { ...options, existingDirs: taken });
      if (plan.mode !== 'wrap') return plan;
      // The record does not depend on the directory's name: it is staged once for every try.
      stage ??= stageVmDir(options.vmsDir, vmRecordOf(plan, registration));
      if (publishVmDir(stage, plan.vmDir)) {
        stage = undefined;
        return plan;
      }
      taken.add(plan.vmDirName);
    }
  } finally {
    if (stage !== undefined) rmSync(stage, { recursive: true, force: true });
  }
}
