#!/usr/bin/env node
// hostinfo-qemu's planner, run by its shell front (bin/hostinfo-qemu): flags and config, the
// choice between QEMU untouched and QEMU with hostinfo wired in, the VM's registration with the
// daemon. Its stdout is shell for the front to evaluate (see shell-plan.ts); it never runs QEMU.

import { resolve } from 'node:path';
import { closeInheritedFds } from '../common/inherited-fds.js';
import { processStartTime } from '../common/proc.js';
import { checkRuntimeTree, checkTrustedDir, RuntimeTreeError, VMS_DIR } from '../common/runtime-tree.js';
import { MAX_VM_NAME_LENGTH } from '../common/vm-record.js';
import { HOSTINFO_VERSION } from '../common/version.js';
import { ConfigError } from '../policies/config-error.js';
import { loadHostConfig, type HostConfig } from '../policies/host-config.js';
import { kvmFlags, parseLauncherFlags, USAGE, type LauncherFlags } from './cli.js';
import { ensureDaemon } from './daemon-starter.js';
import { scanQemuArgs } from './qemu-args-scan.js';
import { findQemu } from './qemu-binary.js';
import { qemuVersionOf, versionCacheDir } from './qemu-version-probe.js';
import type { QemuVersion } from './qemu-versions.js';
import { planNotices } from './notices.js';
import { planAndRegister } from './register.js';
import { execScript, exitScript } from './shell-plan.js';

const EXIT_USAGE = 2;
const EXIT_NO_QEMU = 127;

/**
 * One or more lines on stderr, as given. With -nographic the terminal may already be raw: a bare
 * LF would not return the cursor, so on a terminal every line ends in CR LF.
 */
function tell(text: string): void {
  const eol = process.stderr.isTTY ? '\r\n' : '\n';
  process.stderr.write(`${text.split('\n').join(eol)}${eol}`);
}

/**
 * Run by bin/hostinfo-kvm (HOSTINFO_FRONT=kvm): argv is QEMU's alone, settings come from the
 * environment and hostinfo.toml, and anything that keeps hostinfo from serving the VM is one
 * stderr line (libvirt's domain log) before QEMU starts plain.
 */
const KVM_MODE = process.env['HOSTINFO_FRONT'] === 'kvm';
const PROGRAM = KVM_MODE ? 'hostinfo-kvm' : 'hostinfo-qemu';

function say(message: string): void {
  tell(`${PROGRAM}: ${message}`);
}

/** The shell process that will exec QEMU; its pid is the one the caller (or a VM manager) tracks. */
function frontPid(): number | undefined {
  const text = process.env['HOSTINFO_FRONT_PID'] ?? '';
  const pid = Number(text);
  return /^\d+$/.test(text) && pid > 1 ? pid : undefined;
}

/** Run directly, nobody evaluates the script: the refusal must be this process's own status. */
function notThroughFront(): string {
  say(`internal entry point: run bin/${PROGRAM}, which becomes QEMU once this has planned`);
  process.exitCode = EXIT_USAGE;
  return exitScript(EXIT_USAGE);
}

async function main(): Promise<string> {
  if (KVM_MODE) return kvmMain();
  const parsed = parseLauncherFlags(process.argv.slice(2));
  if (parsed.kind === 'help') return exitScript(0, USAGE);
  if (parsed.kind === 'version') return exitScript(0, `hostinfo-qemu ${HOSTINFO_VERSION}\n`);
  if (parsed.kind === 'error') {
    say(`${parsed.message}\nTry hostinfo-qemu --help.`);
    return exitScript(EXIT_USAGE);
  }
  const { flags } = parsed;
  const qemu = findQemu(flags.qemu, process.env);
  if (!qemu.found) {
    say(`no QEMU binary found (tried ${qemu.tried.join(', ')}); name one with --qemu PATH or HOSTINFO_QEMU`);
    return exitScript(EXIT_NO_QEMU);
  }
  const plain = execScript(qemu.path, flags.qemuArgs);
  // Questions to QEMU itself (--help, -version, -machine none, ... help) run untouched with no
  // config needed: libvirt's capability probes must see plain QEMU.
  if (scanQemuArgs(flags.qemuArgs).passthrough !== undefined) return plain;
  const pid = frontPid();
  if (pid === undefined) return notThroughFront();
  const served = await serve(flags, pid, qemuVersionOf(qemu.path, versionCacheDir(process.env)));
  if (served.kind === 'plain') return plain;
  if (served.kind === 'refused') return exitScript(EXIT_USAGE);
  return execScript(qemu.path, served.args);
}

/** hostinfo-kvm: QEMU's arguments alone; QEMU found without finding hostinfo-kvm itself. */
async function kvmMain(): Promise<string> {
  const { flags, problem } = kvmFlags(process.argv.slice(2), process.env);
  const self = process.env['HOSTINFO_FRONT_SELF'] || undefined;
  const calledAs = process.env['HOSTINFO_FRONT_NAME'] || undefined;
  const first = calledAs === undefined || calledAs === 'hostinfo-kvm' || calledAs.includes('/') ? [] : [calledAs];
  const qemu = findQemu(undefined, process.env, { skip: self === undefined ? [] : [self], firstCandidates: [...first, 'kvm'] });
  if (!qemu.found) {
    say(`no QEMU binary found (tried ${qemu.tried.join(', ')}, skipping hostinfo-kvm itself); name one with HOSTINFO_QEMU`);
    return exitScript(EXIT_NO_QEMU);
  }
  const plain = execScript(qemu.path, flags.qemuArgs);
  if (scanQemuArgs(flags.qemuArgs).passthrough !== undefined) return plain;
  const pid = frontPid();
  if (pid === undefined) return notThroughFront();
  if (problem !== undefined) {
    say(`${problem}; starting QEMU without hostinfo`);
    return plain;
  }
  const served = await serve(flags, pid, qemuVersionOf(qemu.path, undefined));
  // A VM manager gave these arguments; hostinfo never keeps its VM from starting.
  if (served.kind !== 'wrapped') return plain;
  return execScript(qemu.path, served.args);
}

type Served = { readonly kind: 'wrapped'; readonly args: readonly string[] } | { readonly kind: 'plain' } | { readonly kind: 'refused' };

/**
 * Everything that can keep hostinfo from serving this VM ends in QEMU starting without it,
 * loudly: a broken hostinfo setup must never keep a VM from starting.
 */
async function serve(flags: LauncherFlags, pid: number, qemuVersion: Promise<QemuVersion | undefined>): Promise<Served> {
  const without = (why: string): Served => {
    if (KVM_MODE) say(`${why.trim().split('\n').join('; ')}; starting QEMU without hostinfo`);
    else say(`${why}\nhostinfo-qemu: starting QEMU without hostinfo`);
    return { kind: 'plain' };
  };
  const environment = { env: process.env, uid: process.geteuid?.() ?? 0, cwd: process.cwd() };
  const configPath = flags.configPath === undefined ? undefined : resolve(flags.configPath);
  let config: HostConfig;
  try {
    config = await loadHostConfig({ configPath, policyDir: flags.policyDir, runtimeDir: flags.runtimeDir }, environment);
  } catch (error) {
    // A VM manager's QEMU user (libvirt-qemu) has no XDG runtime directory: hostinfo-kvm
    // registers with the host's root daemon, /run/hostinfo, unless told otherwise.
    if (KVM_MODE && error instanceof ConfigError && error.key === 'XDG_RUNTIME_DIR') {
      try {
        config = await loadHostConfig({ configPath, policyDir: flags.policyDir, runtimeDir: '/run/hostinfo' }, environment);
      } catch (again) {
        if (again instanceof ConfigError) return without(again.message);
        throw again;
      }
    } else if (error instanceof ConfigError) return without(error.message);
    else throw error;
  }
  const name = scanQemuArgs(flags.qemuArgs).name;
  if (name !== undefined && name.length > MAX_VM_NAME_LENGTH) return without(`-name is ${name.length} characters; hostinfo serves VM names of at most ${MAX_VM_NAME_LENGTH}`);
  const startTime = processStartTime(pid);
  if (startTime === undefined) return without(`process ${pid} (the one to become QEMU) is gone`);
  try {
    checkExistingRuntimeDir(config.runtimeDir, environment.uid);
    // Under a VM manager a daemon started here would run as the manager's QEMU user, inside the
    // VM's cgroup, and die with it: there, hostinfod is the host's service or nothing.
    await ensureDaemon({ runtimeDir: config.runtimeDir, configPath: configPath ?? config.file, env: daemonEnv(flags), autostart: !KVM_MODE });
    checkRuntimeTree(config.runtimeDir);
  } catch (error) {
    return without((error as Error).message);
  }
  // Asked before the config was loaded (qemu-version-probe.ts): usually answered by now.
  const version = await qemuVersion;
  let plan;
  try {
    plan = planAndRegister(flags.qemuArgs, { qemuVersion: version, transport: flags.transport, vmsDir: resolve(config.runtimeDir, VMS_DIR), launcherPid: pid, vhostmd: config.vhostmd?.enabled === true }, { pid, startTime, cwd: process.cwd() });
  } catch (error) {
    return without(`cannot register the VM under ${config.runtimeDir}: ${(error as Error).message}`);
  }
  if (plan.mode === 'error') {
    if (KVM_MODE) return without(plan.message);
    say(plan.message);
    return { kind: 'refused' };
  }
  if (plan.mode === 'passthrough') return { kind: 'plain' };
  if (plan.readconfig) say('note: options inside -readconfig files are not inspected; check that they leave a serial port free');
  if (!flags.quiet) for (const line of planNotices(plan)) tell(line);
  return { kind: 'wrapped', args: plan.args };
}

/**
 * A runtime directory that is already there is checked before a daemon is started in it: one
 * planted by another user would only make the daemon fail with a pointer to a log inside it, and
 * a root-owned one that others may write to the daemon would take over by fixing its mode.
 */
function checkExistingRuntimeDir(runtimeDir: string, uid: number): void {
  try {
    checkTrustedDir(runtimeDir, uid === 0 ? [0] : [uid, 0]);
  } catch (error) {
    if (error instanceof RuntimeTreeError && error.code === 'RUNTIME_DIR_MISSING') return;
    throw error;
  }
}

/**
 * An autostarted daemon outlives this VM and serves the next ones: it gets none of this caller's
 * environment (a VM manager's, say) beyond PATH and hostinfo's own settings, and reads the same
 * policy directory as this launcher was told to.
 */
function daemonEnv(flags: LauncherFlags): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
  for (const [key, value] of Object.entries(process.env)) if (key.startsWith('HOSTINFO_') && !key.startsWith('HOSTINFO_FRONT')) env[key] = value;
  if (flags.policyDir !== undefined) env['HOSTINFO_POLICY_DIR'] = resolve(flags.policyDir);
  return env;
}

// Before anything can be started: what the caller left open (libvirt's monitor socket, virtlogd's
// pipe) is for QEMU, which the front's exec keeps; this process and its children need none of it.
closeInheritedFds();
main().then((script) => {
  process.stdout.write(script);
}, (error: unknown) => {
  say(`internal error: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
});
