#!/usr/bin/env node
// hostinfo-qemu: used instead of qemu-system-x86_64 / qemu-kvm. Flags, config and the choice
// between running QEMU untouched and running it with hostinfo wired in.

import { resolve } from 'node:path';
import { ConfigError } from '../policies/config-error.js';
import { loadHostConfig } from '../policies/host-config.js';
import { HOSTINFO_VERSION } from '../sidecar/version.js';
import { parseLauncherFlags, USAGE } from './cli.js';
import { runQemu, runWrapped } from './launch.js';
import { scanQemuArgs } from './qemu-args-scan.js';
import { findQemu } from './qemu-binary.js';
import { ensureRuntimeDir, planAndClaimVmDir } from './runtime-dir.js';

const EXIT_USAGE = 2;
const EXIT_NO_QEMU = 127;

/** With -nographic the terminal is raw: a bare LF would not return the cursor. */
function say(message: string): void {
  process.stderr.write(`hostinfo-qemu: ${message}${process.stderr.isTTY ? '\r\n' : '\n'}`);
}

async function main(): Promise<number> {
  const parsed = parseLauncherFlags(process.argv.slice(2));
  if (parsed.kind === 'help') return process.stdout.write(USAGE), 0;
  if (parsed.kind === 'version') return process.stdout.write(`hostinfo-qemu ${HOSTINFO_VERSION}\n`), 0;
  if (parsed.kind === 'error') {
    say(`${parsed.message}\nTry hostinfo-qemu --help.`);
    return EXIT_USAGE;
  }
  const { flags } = parsed;
  const qemu = findQemu(flags.qemu, process.env);
  if (!qemu.found) {
    say(`no QEMU binary found (tried ${qemu.tried.join(', ')}); name one with --qemu PATH or HOSTINFO_QEMU`);
    return EXIT_NO_QEMU;
  }
  // Questions to QEMU itself (--help, -version, -machine none, ... help) run untouched, with no
  // config needed: libvirt's capability probes must see plain QEMU.
  if (scanQemuArgs(flags.qemuArgs).passthrough !== undefined) return runQemu(qemu.path, flags.qemuArgs);

  const environment = { env: process.env, uid: process.geteuid?.() ?? 0, cwd: process.cwd() };
  const configPath = flags.configPath === undefined ? undefined : resolve(flags.configPath);
  let config;
  try {
    config = await loadHostConfig({ configPath, policyDir: flags.policyDir, runtimeDir: flags.runtimeDir }, environment);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // A broken hostinfo config must not keep VMs from starting: run QEMU without hostinfo, loudly.
    say(`${error.message}\nhostinfo-qemu: starting QEMU without hostinfo`);
    return runQemu(qemu.path, flags.qemuArgs);
  }
  await ensureRuntimeDir(config.runtimeDir);
  const plan = await planAndClaimVmDir(flags.qemuArgs, { transport: flags.transport, runtimeDir: config.runtimeDir, launcherPid: process.pid });
  if (plan.mode === 'error') {
    say(plan.message);
    return EXIT_USAGE;
  }
  if (plan.mode === 'passthrough') return runQemu(qemu.path, plan.args);
  if (plan.readconfig) say('note: options inside -readconfig files are not inspected; check that they leave a serial port free');
  return runWrapped({
    qemu: qemu.path,
    plan,
    config,
    configPath,
    policyDirOverride: flags.policyDir === undefined ? undefined : resolve(flags.policyDir),
    env: process.env,
    say,
  });
}

main().then((status) => {
  process.exitCode = status;
}, (error: unknown) => {
  say(`internal error: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
});
