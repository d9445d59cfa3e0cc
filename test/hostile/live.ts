// Real processes for the live hostile-guest tests: a real hostinfod, and per VM a paused QEMU (for
// QMP), the test's GuestEnd in place of QEMU's chardev end (it hands reply lines to a callback for
// volume) and the sidecar the daemon runs for it, as the sidecar user. Policies are files the
// daemon watches; what the sidecar does is read from its log and from /proc.

import type { GuestEnd } from '../helpers/guest-end.js';
import { readLogFile } from '../helpers/log-file.js';
import type { LoggedProcess, LogLine, Teardown } from '../helpers/logged-process.js';
import { processAlive } from '../helpers/proc-stats.js';
import {
  changePolicy as rewritePolicy, makeSite, stageVm, startBareDaemon, waitForSidecar, waitForSidecarLine, WIDE_GUEST_BUDGET, writePolicy,
  type Site, type StagedVm,
} from '../helpers/served-vm.js';

export { cpuTicks, memoryKb, USER_HZ } from '../helpers/proc-stats.js';

export interface Host {
  readonly site: Site;
  readonly daemon: LoggedProcess;
}

/**
 * `budget: 'wide'` lifts the per-guest flood budget (100 lines/s by default) out of the way, for
 * tests about what the request path does with volume; the budget itself is budget.test.ts's.
 */
export async function startHost(t: Teardown, options: { budget: 'wide' | 'default' }): Promise<Host> {
  const site = await makeSite(t, { policy: 'enabled = false\n', extraConfig: options.budget === 'wide' ? WIDE_GUEST_BUDGET : '', interval: 0.5, maxAge: 5 });
  return { site, daemon: await startBareDaemon(t, site) };
}

export interface Vm {
  readonly name: string;
  readonly staged: StagedVm;
  readonly guest: GuestEnd;
  readonly qemuPid: number;
  readonly sidecarPid: number;
}

/** A staged VM under its own <name>.toml, once its sidecar has host data. */
export async function startVm(t: Teardown, host: Host, name: string, policy: string): Promise<Vm> {
  await writePolicy(host.site, name, policy);
  const staged = await stageVm(t, host.site, name, { qemuArgs: ['-smp', '1'] });
  const served = await waitForSidecar(host.site, name);
  await waitForSidecarLine(host.site, name, (line) => line['event'] === 'host-data');
  return { name, staged, guest: staged.guest, qemuPid: staged.qemuPid, sidecarPid: served.sidecar.pid };
}

/** Rewrites a VM's policy and waits for its sidecar to log the daemon's new decision. */
export async function changePolicy(host: Host, vm: Vm, text: string): Promise<LogLine> {
  return rewritePolicy(host.site, vm.name, vm.name, text);
}

export function sidecarLines(host: Host, vm: Vm): Promise<LogLine[]> {
  return readLogFile(host.site.sidecarLog(vm.name));
}

/** The first sidecar still runs and is still the VM's: it never crashed nor was replaced. */
export async function sameSidecar(host: Host, vm: Vm): Promise<boolean> {
  return processAlive(vm.sidecarPid) && (await waitForSidecar(host.site, vm.name)).sidecar.pid === vm.sidecarPid;
}
