// Real processes for the live hostile-guest tests: one hostinfo-cache, and per VM a paused QEMU (for
// QMP), a unix socket standing in for QEMU's chardev end (GuestEnd, which hands reply lines to a
// callback for volume), and a real hostinfo-sidecar.

import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startQemu, type Qemu } from '../fixtures/qmp/qemu.js';
import { GuestEnd } from '../helpers/guest-end.js';
import { binPath, spawnLogged, type LoggedProcess, type Teardown } from '../helpers/logged-process.js';

const SIDECAR = binPath('sidecar/main.js');
const CACHE = binPath('cache/main.js');

export interface Host {
  readonly dir: string;
  readonly config: string;
  readonly cacheSocket: string;
  readonly cache: LoggedProcess;
}

export async function startHost(t: Teardown): Promise<Host> {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-hostile-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'policies'));
  const config = join(dir, 'hostinfo.toml');
  await writeFile(config, 'enabled = true\npolicy_dir = "policies"\nruntime_dir = "run"\n[cache]\ninterval = 0.5\nmax_age = 5.0\n');
  const cacheSocket = join(dir, 'cache.sock');
  const cache = spawnLogged(t, CACHE, ['--config', config, '--socket', cacheSocket]);
  await cache.waitFor('listening');
  return { dir, config, cacheSocket, cache };
}

export interface Vm {
  readonly name: string;
  readonly policyFile: string;
  readonly qemu: Qemu;
  readonly guest: GuestEnd;
  readonly sidecar: LoggedProcess;
}

export async function startVm(t: Teardown, host: Host, name: string, policy: string): Promise<Vm> {
  const policyFile = join(host.dir, 'policies', `${name}.toml`);
  await writeFile(policyFile, policy);
  const qemu = await startQemu(t, ['-name', name, '-smp', '1']);
  const guest = await GuestEnd.listen(t, join(host.dir, `${name}.guest.sock`));
  const sidecar = spawnLogged(t, SIDECAR, ['--qmp', qemu.socketPath, '--guest', guest.path, '--config', host.config, '--cache', host.cacheSocket, '--qemu-pid', String(qemu.pid)]);
  await guest.connected();
  await sidecar.waitFor('cache-data');
  return { name, policyFile, qemu, guest, sidecar };
}

/** Rewrites a VM's policy and waits for the sidecar to log the new decision. */
export async function changePolicy(vm: Vm, text: string): Promise<void> {
  const from = vm.sidecar.lines.length;
  await writeFile(vm.policyFile, text);
  await vm.sidecar.waitFor('policy', from);
}

/** Fields of /proc/<pid>/status, in kB, e.g. VmHWM (peak RSS) and VmRSS. */
export function memoryKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no ${field} for ${pid}`);
  return Number(match[1]);
}

/** utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux x86). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}
export const USER_HZ = 100;
