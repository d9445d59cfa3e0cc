// Registers a VM with the daemon by publishing its directory under <runtime_dir>/vms/
// (common/vm-publish.ts). The daemon watches vms/ and adopts what appears; no socket is involved,
// so nothing a local user does to the daemon's sockets can keep a VM from being registered.

import { rmSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { VmRecord } from '../common/vm-record.js';
import { publishVmDir, stageVmDir } from '../common/vm-publish.js';
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
    ...(plan.vhostmdSocket === undefined ? {} : { vhostmd: true }),
  };
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
