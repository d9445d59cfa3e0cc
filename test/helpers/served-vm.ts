// A real hostinfod serving VMs in a test's own runtime directory. Two ways to give it a VM:
// - launchVm: the real bin/hostinfo-qemu front with a real (usually paused) QEMU, exactly as a
//   user runs it;
// - stageVm: a real paused QEMU for QMP plus a GuestEnd in place of QEMU's chardev end, registered
//   through the same stageVmDir/publishVmDir as the launcher, so a test can write guest bytes at full
//   speed. Both sockets are bound in the staging directory and stay reachable after the rename.

import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processStartTime } from '../../common/proc.js';
import { CONTROL_SOCKET, GUEST_SOCKET, LOGS_DIR, QMP_SOCKET, VMS_DIR } from '../../common/runtime-tree.js';
import { fetchStatus } from '../../daemon/control-client.js';
import type { StatusReply, VmStatus } from '../../daemon/messages.js';
import { publishVmDir, stageVmDir } from '../../common/vm-publish.js';
import { QEMU_BINARY } from '../fixtures/qmp/qemu.js';
import { GuestEnd } from './guest-end.js';
import { readLogFile, waitForLogLine } from './log-file.js';
import { binPath, spawnLogged, withTimeout, type LogLine, type LoggedProcess, type Teardown } from './logged-process.js';

export const FRONT = fileURLToPath(new URL('../../../bin/hostinfo-qemu', import.meta.url));
export const DAEMON = binPath('daemon/main.js');
export const PAUSED_VM = ['-accel', 'tcg', '-M', 'pc', '-S', '-nodefaults', '-display', 'none'];
/** Generous enough for request-level tests; the flood budget is the hostile tests' business. */
export const DATA_POLICY = 'enabled = true\nallow = ["physcpus", "loadavg", "physmem", "uptime"]\nburst = 1000\ninterval = 0.001\n';
/**
 * A flood budget no test's guest reaches: a flooding test end sends 1M+ lines a second (5 s of
 * PING lines were cut at 10^6 lines/s once the request path got faster).
 */
export const WIDE_GUEST_BUDGET = '[guest]\nlines_per_second = 1000000000\nbytes_per_second = 10000000000\n';

export interface Site {
  readonly dir: string;
  readonly config: string;
  readonly policies: string;
  readonly runtime: string;
  readonly vms: string;
  readonly control: string;
  sidecarLog(vm: string): string;
  daemonLog(): string;
}

export interface SiteOptions {
  /** Default policy text (policies/default.toml). */
  readonly policy?: string;
  /** Extra top-level keys and tables for hostinfo.toml (after `enabled`, before [cache]). */
  readonly extraConfig?: string;
  readonly interval?: number;
  readonly maxAge?: number;
}

/** A host config, policy directory and runtime directory of the test's own, torn down after it. */
export async function makeSite(t: Teardown, options: SiteOptions = {}): Promise<Site> {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-site-'));
  // The sidecar runs as the hostinfo user and needs none of this; 0755 only lets `nobody` tests
  // reach the runtime directory's own checks.
  await chmod(dir, 0o755);
  const policies = join(dir, 'policies');
  await mkdir(policies);
  await writeFile(join(policies, 'default.toml'), options.policy ?? DATA_POLICY);
  const runtime = join(dir, 'run');
  const config = join(dir, 'hostinfo.toml');
  await writeFile(config, `enabled = true\npolicy_dir = "policies"\nruntime_dir = "run"\n${options.extraConfig ?? ''}\n[cache]\ninterval = ${options.interval ?? 0.2}\nmax_age = ${options.maxAge ?? 2}\n`);
  // Whatever a test leaves running in this runtime directory (an autostarted daemon) ends with it.
  t.teardown(() => void spawn('pkill', ['-KILL', '-f', '--', `--runtime-dir ${runtime}`]));
  return {
    dir, config, policies, runtime,
    vms: join(runtime, VMS_DIR),
    control: join(runtime, CONTROL_SOCKET),
    sidecarLog: (vm) => join(runtime, LOGS_DIR, `${vm}.sidecar.log`),
    daemonLog: () => join(runtime, LOGS_DIR, 'hostinfod.log'),
  };
}

/** hostinfod in the foreground, logging to its stderr (parsed), killed at teardown. */
export async function startDaemon(t: Teardown, site: Site, extra: readonly string[] = []): Promise<LoggedProcess> {
  const daemon = spawnLogged(t, DAEMON, ['--config', site.config, '--runtime-dir', site.runtime, ...extra]);
  await daemon.waitFor('listening');
  return daemon;
}

export interface Launched {
  readonly child: ChildProcess;
  /** The pid the caller started: the front's, which becomes QEMU's. */
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
}

/** The environment a user's shell would give, without the developer's HOSTINFO_* settings. */
export function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('HOSTINFO_'))), ...extra };
}

export interface FrontOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly stdio?: StdioOptions;
  /** Another entry point than bin/hostinfo-qemu (e.g. a copy of it). */
  readonly file?: string;
  /** Words before `args` (e.g. `--config FILE`). */
  readonly prefix?: readonly string[];
}

/** bin/hostinfo-qemu with exactly `args`, as a user runs it; SIGKILLed at teardown. */
export function runFront(t: Teardown, args: readonly string[], options: FrontOptions = {}): Launched {
  const child = spawn(options.file ?? FRONT, [...(options.prefix ?? []), ...args], { stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'], env: userEnv(options.env) });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, pid: child.pid ?? 0, exited: withTimeout(exited, 'hostinfo-qemu to exit', 60_000), stdout: () => stdout, stderr: () => stderr };
}

/** bin/hostinfo-qemu --config <the site's> <args>. */
export function launchVm(t: Teardown, site: Site, args: readonly string[], options: Omit<FrontOptions, 'prefix'> = {}): Launched {
  return runFront(t, args, { ...options, prefix: ['--config', site.config] });
}

export interface StagedVm {
  readonly name: string;
  readonly dir: string;
  readonly guest: GuestEnd;
  readonly qemuPid: number;
  readonly qemu: ChildProcess;
}

/**
 * A VM whose guest end is the test's: a paused QEMU provides QMP (name, uuid, vCPU threads), the
 * test's GuestEnd plays the chardev. Resolves once the daemon's sidecar has connected to it.
 */
/** `unnamed`: registered (and QEMU run) without -name; `name` is then only its directory. */
export async function stageVm(t: Teardown, site: Site, name: string, options: { uuid?: string; qemuArgs?: readonly string[]; unnamed?: boolean } = {}): Promise<StagedVm> {
  const placeholder = { v: 1 as const, pid: process.pid, startTime: processStartTime(process.pid) ?? '0', name: options.unnamed === true ? undefined : name, uuid: options.uuid, transport: 'isa-serial' as const, guestDevice: '/dev/ttyS0', pidfile: undefined };
  const stage = stageVmDir(site.vms, placeholder);
  const guest = await GuestEnd.listen(t, join(stage, GUEST_SOCKET));
  const qemu = spawn(QEMU_BINARY, [...PAUSED_VM, ...(options.unnamed === true ? [] : ['-name', name]), ...(options.uuid === undefined ? [] : ['-uuid', options.uuid]), ...(options.qemuArgs ?? []), '-qmp', `unix:${join(stage, QMP_SOCKET)},server=on,wait=off`], { stdio: 'ignore' });
  t.teardown(() => void qemu.kill('SIGKILL'));
  const qemuPid = qemu.pid ?? 0;
  // QEMU binds its QMP socket by path: the staging directory must not move before it has.
  const startTime = await withTimeout((async () => {
    for (;;) {
      const value = processStartTime(qemuPid);
      if (value !== undefined && existsSync(join(stage, QMP_SOCKET))) return value;
      if (qemu.exitCode !== null) throw new Error(`QEMU exited with ${qemu.exitCode} before listening`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })(), 'QEMU to listen on QMP');
  // The record now names QEMU: rewritten in the staging directory, which nobody watches.
  writeFileSync(join(stage, 'vm.json.tmp'), `${JSON.stringify({ ...placeholder, pid: qemuPid, startTime })}\n`, { mode: 0o600 });
  renameSync(join(stage, 'vm.json.tmp'), join(stage, 'vm.json'));
  const dir = join(site.vms, name);
  if (!publishVmDir(stage, dir)) {
    rmSync(stage, { recursive: true, force: true });
    throw new Error(`${dir} is taken`);
  }
  await guest.connected();
  return { name, dir, guest, qemuPid, qemu };
}

export function status(site: Site, timeoutMs = 5_000): Promise<StatusReply> {
  return fetchStatus(site.control, timeoutMs);
}

/** Polls the control socket until `find` picks something out of a status reply. */
export async function waitForStatus<T>(site: Site, what: string, find: (reply: StatusReply) => T | undefined, ms = 30_000): Promise<T> {
  let gaveUp = false;
  return withTimeout((async () => {
    // A wait that timed out must not poll on and keep the test file alive.
    for (; !gaveUp;) {
      const reply = await status(site).catch(() => undefined);
      const found = reply === undefined ? undefined : find(reply);
      if (found !== undefined) return found;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('gave up');
  })(), what, ms).finally(() => { gaveUp = true; });
}

export const vmStatus = (reply: StatusReply, id: string): VmStatus | undefined => reply.vms.find((vm) => vm.id === id);

export function waitForSidecarLine(site: Site, vm: string, match: (line: LogLine) => boolean, after = 0): Promise<LogLine> {
  return waitForLogLine(site.sidecarLog(vm), match, after);
}

/** A VM's status entry whose sidecar has said hello over its channel. */
export type ConnectedVm = VmStatus & { readonly sidecar: VmStatus['sidecar'] & { readonly pid: number } };

/** Waits until the VM's sidecar (another than `not`, for a restarted one) has said hello. */
export function waitForSidecar(site: Site, id: string, options: { not?: number; ms?: number } = {}): Promise<ConnectedVm> {
  return pollStatus(site, `a connected sidecar for ${id}${options.not === undefined ? '' : ` other than ${options.not}`}`, (reply) => {
    const found = vmStatus(reply, id);
    const pid = found?.sidecar.pid;
    return found !== undefined && found.sidecar.connected && pid !== null && pid !== undefined && pid !== options.not ? (found as ConnectedVm) : undefined;
  }, options.ms);
}

/** Like waitForStatus, but the polling itself ends at the deadline (a failed wait leaves no loop behind). */
export async function pollStatus<T>(site: Site, what: string, find: (reply: StatusReply) => T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const reply = await status(site, Math.max(100, Math.min(5_000, deadline - Date.now()))).catch(() => undefined);
    const found = reply === undefined ? undefined : find(reply);
    if (found !== undefined) return found;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Writes policies/<stem>.toml (a VM name, a uuid or `default`). */
export async function writePolicy(site: Site, stem: string, text: string): Promise<string> {
  const file = join(site.policies, `${stem}.toml`);
  await writeFile(file, text);
  return file;
}

/** Lines in a VM's sidecar log so far: the `after` of a later waitForSidecarLine. */
export async function sidecarLogMark(site: Site, vm: string): Promise<number> {
  return (await readLogFile(site.sidecarLog(vm))).length;
}

/**
 * Rewrites a policy file and waits for the VM's sidecar to log the decision the daemon sent for
 * it. The text must change the decision: an unchanged one is not sent again.
 */
export async function changePolicy(site: Site, vm: string, stem: string, text: string): Promise<LogLine> {
  const mark = await sidecarLogMark(site, vm);
  await writePolicy(site, stem, text);
  return waitForSidecarLine(site, vm, (line) => line['event'] === 'policy', mark);
}

/**
 * hostinfod as in production, without the test runner's instrumentation: tap's NODE_OPTIONS
 * (its process-info hook) would otherwise reach every sidecar, whatever environment the daemon
 * gives it, and make each exit with 1 (the hook cannot write its files as the sidecar user).
 * For tests of sidecar exit statuses, restarts and environments.
 */
export async function startBareDaemon(t: Teardown, site: Site, extra: readonly string[] = []): Promise<LoggedProcess> {
  return startDaemonAt(t, site.config, site.runtime, extra);
}

/** startBareDaemon for a config and runtime directory of the caller's own (the libvirt tests'). */
export async function startDaemonAt(t: Teardown, config: string, runtime: string, extra: readonly string[] = []): Promise<LoggedProcess> {
  const daemon = spawnLogged(t, DAEMON, ['--config', config, '--runtime-dir', runtime, ...extra], {}, { uninstrumented: true });
  await daemon.waitFor('listening');
  return daemon;
}
