// vCPU threads found by name, for a VM without a QMP socket to ask (query-cpus-fast): with
// `-name ...,debug-threads=on`, which libvirt and Proxmox always pass, QEMU names each vCPU thread
// "CPU <index>/<accelerator>" (qemu_thread_create in the accelerators' vCPU start-up), and the
// kernel shows that name in /proc/<pid>/task/<tid>/comm.

import { readdir, readFile } from 'node:fs/promises';

export const VCPU_THREAD_NAME = /^CPU (\d+)\/[A-Z]+$/;
/** More threads than this are not read: QEMU has a few dozen, plus one per vCPU. */
export const MAX_TASKS_READ = 4096;

/** The vCPU thread ids of `pid`, in vCPU index order; empty when the threads are not named. */
export async function vcpuThreadsByName(pid: number, procRoot = '/proc'): Promise<number[]> {
  let tids: string[];
  try {
    tids = (await readdir(`${procRoot}/${pid}/task`)).filter((name) => /^\d+$/.test(name)).slice(0, MAX_TASKS_READ);
  } catch {
    return [];
  }
  const found = await Promise.all(tids.map(async (tid) => {
    try {
      const match = VCPU_THREAD_NAME.exec((await readFile(`${procRoot}/${pid}/task/${tid}/comm`, 'latin1')).trim());
      return match?.[1] === undefined ? undefined : { index: Number(match[1]), tid: Number(tid) };
    } catch {
      return undefined; // the thread ended meanwhile
    }
  }));
  return found.filter((entry) => entry !== undefined).sort((a, b) => a.index - b.index).map((entry) => entry.tid);
}
