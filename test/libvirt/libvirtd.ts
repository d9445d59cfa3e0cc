// A real libvirtd for the libvirt tests, started by hand (no systemd here) and restored as found:
// virtlogd and libvirtd in their own sessions unless they already run, /dev/kvm made root:kvm
// 0660 if it is root:root 0600 (else libvirt re-probes every emulator on each lookup, ~40 s), and
// an optional /etc/libvirt/hooks/qemu (libvirtd looks for hooks when it starts, so one installed
// here means libvirtd must be started by this test). Also the virsh, cgroup and process probes the
// tests share. tap runs test files in parallel: startLibvirtd first takes LIBVIRTD_LOCK, so one
// file at a time owns the host's libvirtd (and /etc/libvirt/hooks/qemu) from start to stop.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { sidecarProcesses, until } from '../e2e/harness.js';
import type { Teardown } from '../helpers/logged-process.js';

const VIRSH = ['-c', 'qemu:///system'];
export const HOOK_PATH = '/etc/libvirt/hooks/qemu';

export function virsh(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync('virsh', [...VIRSH, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

export function virshOk(...args: string[]): string {
  const r = virsh(...args);
  if (r.code !== 0) throw new Error(`virsh ${args.join(' ')}: ${r.out}`);
  return r.out;
}

/** Running processes named `name`; a zombie (a stopped virtlogd its parent has not reaped yet,
 * say) is none: counting it would keep startLibvirtd from starting a new one. */
export function pidsOf(name: string): number[] {
  return spawnSync('pgrep', ['-x', name], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number).filter((pid) => !isGone(pid));
}

export function gidOf(group: string): number {
  const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith(`${group}:`));
  return Number(line?.split(':')[2] ?? NaN);
}

export function uidOf(user: string): number {
  return Number(spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout.trim());
}

/** Every pid in a domain's cgroups (all controllers, nested ones included), with its comm. */
export function cgroupProcs(domainId: string, name: string): { path: string; pid: number; comm: string }[] {
  const out: { path: string; pid: number; comm: string }[] = [];
  const found = spawnSync('find', ['/sys/fs/cgroup', '-path', `*/machine/qemu-${domainId}-${name}.libvirt-qemu*`, '-name', 'cgroup.procs'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const file of found) {
    let text = '';
    try { text = readFileSync(file, 'utf8'); } catch { continue; }
    for (const word of text.split('\n').filter(Boolean)) {
      let comm = '';
      try { comm = readFileSync(`/proc/${word}/comm`, 'utf8').trim(); } catch { /* gone */ }
      out.push({ path: file, pid: Number(word), comm });
    }
  }
  return out;
}

export function cgroupDirs(name: string): string[] {
  return spawnSync('find', ['/sys/fs/cgroup', '-maxdepth', '3', '-path', `*/machine/qemu-*-${name}.libvirt-qemu`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
}

/** Sidecars whose command line names `runtime` (the test's own daemon). */
/** The sidecars whose command line names `runtime` (attached VMs' sidecars get paths under it). */
export function sidecarsOf(runtime: string): number[] {
  return sidecarProcesses().filter(({ args }) => args.some((arg) => arg.includes(runtime))).map(({ pid }) => pid);
}

const isGone = (pid: number): boolean => !existsSync(`/proc/${pid}/status`) || /State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

export interface Libvirtd {
  /** Whether this test started libvirtd (and so installed its hook). */
  readonly ours: boolean;
  /** How long startLibvirtd waited for another test file to release LIBVIRTD_LOCK (ms). */
  readonly lockWaitMs: number;
  /** SIGTERM to libvirtd, then a new one; resolves once virsh answers again. */
  restart(): Promise<void>;
}

/** Why the hook cannot be tested here, or undefined. A libvirtd that another test file holds the
 * lock for is that file's: it stops before startLibvirtd gets the lock, so it is no reason. */
export function hookUnavailable(): string | undefined {
  const holder = lockHolder();
  if (holder !== undefined && holder !== process.pid && !isGone(holder)) return undefined;
  if (pidsOf('libvirtd').length > 0) return 'a libvirtd this test did not start is running: its hooks cannot be changed';
  return undefined;
}

/** Held by the test file (its pid inside) that owns the host's libvirtd; see holdLibvirtdLock. */
export const LIBVIRTD_LOCK = '/run/hostinfo-test-libvirtd.lock';

function lockHolder(): number | undefined {
  try {
    const pid = Number(readFileSync(LIBVIRTD_LOCK, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Waits (up to `ms`) until this process holds LIBVIRTD_LOCK; returns how long that took (ms). It
 * is released in teardown, which tap runs last for what was registered first. The lock appears
 * whole (a pid file linked into place, so no reader sees it empty); one whose holder is gone (a
 * test killed before its teardown) is taken over.
 */
export async function holdLibvirtdLock(t: Teardown, ms = 600_000): Promise<number> {
  const mine = `${LIBVIRTD_LOCK}.${process.pid}`;
  writeFileSync(mine, `${process.pid}\n`, { mode: 0o644 });
  const take = (): boolean => {
    try {
      linkSync(mine, LIBVIRTD_LOCK);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = lockHolder();
    if (holder === process.pid) return true;
    if (holder !== undefined && isGone(holder)) rmSync(LIBVIRTD_LOCK, { force: true });
    return false;
  };
  const waitFrom = Date.now();
  try {
    await until(take, ms, () => `${LIBVIRTD_LOCK}, held by pid ${lockHolder()}`);
  } finally {
    rmSync(mine, { force: true });
  }
  t.teardown(() => {
    if (lockHolder() === process.pid) rmSync(LIBVIRTD_LOCK, { force: true });
  });
  return Date.now() - waitFrom;
}

export async function startLibvirtd(t: Teardown, options: { readonly hook?: string } = {}): Promise<Libvirtd> {
  const lockWaitMs = await holdLibvirtdLock(t);
  fixKvmPermissions(t);
  if (options.hook !== undefined) installHook(t, options.hook);
  const started: number[] = [];
  const start = (name: string): void => {
    if (pidsOf(name).length > 0) return;
    // detached: its own session (setsid), so it outlives nothing of this test's terminal.
    const child = spawn(name, [], { detached: true, stdio: 'ignore' });
    child.unref();
    started.push(child.pid ?? 0);
  };
  const answering = (): Promise<void> => until(() => spawnSync('virsh', [...VIRSH, 'version'], { stdio: 'ignore' }).status === 0, 30_000, () => 'virsh version answering');
  t.teardown(async () => {
    // Only what this test started; a libvirtd that was running stays.
    for (const name of ['libvirtd', 'virtlogd']) for (const pid of pidsOf(name)) if (started.includes(pid)) process.kill(pid, 'SIGTERM');
    await until(() => started.every(isGone), 10_000, () => 'libvirtd/virtlogd stopping');
  });
  const ours = pidsOf('libvirtd').length === 0;
  start('virtlogd');
  start('libvirtd');
  await answering();
  return {
    ours,
    lockWaitMs,
    async restart(): Promise<void> {
      const [pid] = pidsOf('libvirtd');
      if (pid === undefined || !started.includes(pid)) throw new Error('restart: libvirtd is not this test\'s');
      process.kill(pid, 'SIGTERM');
      await until(() => isGone(pid), 20_000, () => `libvirtd ${pid} stopping`);
      start('libvirtd');
      await answering();
    },
  };
}

function fixKvmPermissions(t: Teardown): void {
  const kvm = statSync('/dev/kvm', { throwIfNoEntry: false });
  if (kvm === undefined || kvm.uid !== 0 || kvm.gid !== 0 || (kvm.mode & 0o777) !== 0o600) return;
  chownSync('/dev/kvm', 0, gidOf('kvm'));
  chmodSync('/dev/kvm', 0o660);
  t.teardown(() => {
    chownSync('/dev/kvm', kvm.uid, kvm.gid);
    chmodSync('/dev/kvm', kvm.mode & 0o7777);
  });
}

/** The shipped examples/libvirt/hooks/qemu with its settings block set: this checkout's
 * hostinfo-ctl, `config`, this node, and its log appended to `log`. */
export function shippedHook(repo: string, config: string, log: string): string {
  return readFileSync(join(repo, 'examples', 'libvirt', 'hooks', 'qemu'), 'utf8')
    .replace(/^HOSTINFO_CTL=.*$/m, `HOSTINFO_CTL=${join(repo, 'bin', 'hostinfo-ctl')}`)
    .replace(/^HOSTINFO_CONFIG=.*$/m, `HOSTINFO_CONFIG=${config}`)
    .replace(/^# HOSTINFO_NODE=.*$/m, `HOSTINFO_NODE=${process.execPath}`)
    .replace(/^LOG=$/m, `LOG=${log}`);
}

/** Installs `text` as libvirt's QEMU hook; what was there (if anything) comes back in teardown. */
function installHook(t: Teardown, text: string): void {
  const backup = `${HOOK_PATH}.hostinfo-test-${process.pid}`;
  const had = existsSync(HOOK_PATH);
  const madeDir = !existsSync(dirname(HOOK_PATH));
  mkdirSync(dirname(HOOK_PATH), { recursive: true });
  if (had) copyFileSync(HOOK_PATH, backup);
  writeFileSync(`${HOOK_PATH}.new`, text, { mode: 0o755 });
  renameSync(`${HOOK_PATH}.new`, HOOK_PATH);
  t.teardown(() => {
    if (had) renameSync(backup, HOOK_PATH);
    else rmSync(HOOK_PATH, { force: true });
    if (madeDir) rmSync(dirname(HOOK_PATH), { recursive: true, force: true });
  });
}

export interface TestDomain {
  readonly name: string;
  readonly uuid?: string;
  /** Holds vmlinuz and initrd.gz, readable by libvirt-qemu. */
  readonly site: string;
  readonly emulator: string;
  /** The file the guest's ttyS0 is written to. */
  readonly console: string;
  /** Devices of the setup under test (a hostinfo port), inside <devices>. */
  readonly devices: string;
}

/** The tests' TCG domain: 256 MiB, one vCPU, the test kernel and initrd, destroyed on power-off. */
export function testDomainXml(domain: TestDomain): string {
  return `<domain type='qemu'>
  <name>${domain.name}</name>${domain.uuid === undefined ? '' : `\n  <uuid>${domain.uuid}</uuid>`}
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>${domain.site}/vmlinuz</kernel><initrd>${domain.site}/initrd.gz</initrd><cmdline>console=ttyS0 panic=-1 quiet</cmdline></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>${domain.emulator}</emulator>
    <serial type='file'><source path='${domain.console}'/><target port='0'/></serial>
    ${domain.devices}
    <memballoon model='none'/>
  </devices>
</domain>
`;
}
