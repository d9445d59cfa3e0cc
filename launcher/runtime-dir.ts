// The runtime directory tree: <runtime_dir>/ (shared with the cache), <runtime_dir>/logs/, and
// one <runtime_dir>/<vm>/ per live VM, 0700, removed when the VM ends. Each VM directory holds
// the launcher's pid, so one left behind by a killed launcher is recognised and reused.

import { openSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { socketAnswers } from './cache-starter.js';
import { planQemuArgs, type PlanOptions, type QemuPlan, type WrapPlan } from './qemu-args.js';

export async function ensureRuntimeDir(runtimeDir: string): Promise<void> {
  // The cache daemon sets the final mode and group of the shared directory when it starts; until
  // then nobody but the owner may enter.
  await mkdir(runtimeDir, { recursive: true, mode: 0o700 });
  await mkdir(join(runtimeDir, 'logs'), { recursive: true, mode: 0o700 });
}

/**
 * Opens (creating, appending) a log file under <runtime_dir>/logs, owner-only, as a plain fd for
 * a child's stdio. The caller closes it once no child needs to be started with it any more.
 */
export function openLog(runtimeDir: string, name: string): number {
  return openSync(join(runtimeDir, 'logs', name), 'a', 0o600);
}

/**
 * Plans QEMU's arguments and claims the VM's directory: mkdir is the atomic claim, so two
 * launchers for VMs of the same name end up in different directories.
 */
export async function planAndClaimVmDir(userArgs: readonly string[], options: Omit<PlanOptions, 'existingDirs'>): Promise<QemuPlan> {
  const taken = new Set<string>();
  for (;;) {
    const plan = planQemuArgs(userArgs, { ...options, existingDirs: taken });
    if (plan.mode !== 'wrap') return plan;
    try {
      await mkdir(plan.vmDir, { mode: 0o700 });
      await writeFile(join(plan.vmDir, OWNER_FILE), `${process.pid}\n`, { mode: 0o600 });
      return plan;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    if (await isStale(plan)) {
      await rm(plan.vmDir, { recursive: true, force: true });
      continue;
    }
    taken.add(plan.vmDirName);
  }
}

const OWNER_FILE = 'launcher.pid';
/** A directory without an owner file this old was left by a launcher that died right after mkdir. */
const UNOWNED_GRACE_MS = 10_000;

async function isStale(plan: WrapPlan): Promise<boolean> {
  let owner: number;
  try {
    owner = Number((await readFile(join(plan.vmDir, OWNER_FILE), 'utf8')).trim());
  } catch {
    const age = Date.now() - (await stat(plan.vmDir)).mtimeMs;
    return age > UNOWNED_GRACE_MS;
  }
  if (Number.isSafeInteger(owner) && owner > 0 && processExists(owner)) return false;
  // The launcher is gone, but its QEMU may live on (the launcher was killed, not the VM): a QMP
  // socket that still accepts connections means the directory is in use.
  return !(await socketAnswers(plan.qmpSocket));
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive but someone else's.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function removeVmDir(plan: WrapPlan): Promise<void> {
  await rm(plan.vmDir, { recursive: true, force: true });
}
