// hostinfo-kvm as libvirt's <emulator>, against a real libvirtd (TCG domain, no KVM needed).
// Starts virtlogd and libvirtd by hand (no systemd here) unless they already run, a root hostinfod
// with `group = "kvm"` (libvirt-qemu's QEMU runs as libvirt-qemu with the supplementary group kvm;
// its sidecar runs as libvirt-qemu, primary gid kvm), and a domain whose emulator is a wrapper
// script: libvirt clears the environment, so the wrapper sets HOSTINFO_CONFIG and execs
// bin/hostinfo-kvm. Sets /dev/kvm to root:kvm 0660 if it finds root:root 0600 (else libvirt
// re-probes the emulator on every lookup, ~40 s) and restores what it found.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { guestImage, REPO, until } from '../e2e/harness.js';
import { startDaemonAt } from '../helpers/served-vm.js';

const VIRSH = ['-c', 'qemu:///system'];
const NAME = `hikvm-${process.pid}`;

function virsh(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync('virsh', [...VIRSH, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function virshOk(...args: string[]): string {
  const r = virsh(...args);
  if (r.code !== 0) throw new Error(`virsh ${args.join(' ')}: ${r.out}`);
  return r.out;
}

function pidsOf(name: string): number[] {
  return spawnSync('pgrep', ['-x', name], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
}

function gidOf(group: string): number {
  const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith(`${group}:`));
  return Number(line?.split(':')[2] ?? NaN);
}

/** Every pid in the domain's cgroups (all controllers, nested ones included), with its comm. */
function cgroupProcs(domainId: string): { path: string; pid: number; comm: string }[] {
  const out: { path: string; pid: number; comm: string }[] = [];
  const found = spawnSync('find', ['/sys/fs/cgroup', '-path', `*/machine/qemu-${domainId}-${NAME}.libvirt-qemu*`, '-name', 'cgroup.procs'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
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

function cgroupDirs(): string[] {
  return spawnSync('find', ['/sys/fs/cgroup', '-maxdepth', '3', '-path', `*/machine/qemu-*-${NAME}.libvirt-qemu`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
}

const image = await guestImage();
if (image.kind === 'skip') {
  t.plan(0, image.reason);
  process.exit(0);
}
if (process.getuid?.() !== 0 || spawnSync('which', ['libvirtd']).status !== 0) {
  t.plan(0, 'needs root and libvirtd (.ci/setup installs libvirt-daemon-system)');
  process.exit(0);
}

const started = Date.now();
t.teardown(() => t.comment(`libvirt emulator test wall time ${((Date.now() - started) / 1000).toFixed(1)} s`));

// ---------------------------------------------------------------------------------- /dev/kvm
const kvm = statSync('/dev/kvm', { throwIfNoEntry: false });
if (kvm !== undefined && kvm.uid === 0 && kvm.gid === 0 && (kvm.mode & 0o777) === 0o600) {
  chownSync('/dev/kvm', 0, gidOf('kvm'));
  chmodSync('/dev/kvm', 0o660);
  t.teardown(() => {
    chownSync('/dev/kvm', kvm.uid, kvm.gid);
    chmodSync('/dev/kvm', kvm.mode & 0o7777);
  });
}

// --------------------------------------------------------------------- virtlogd and libvirtd
const startedServices: number[] = [];
function startService(name: string): void {
  if (pidsOf(name).length > 0) return;
  // detached: its own session (setsid), so it outlives nothing of this test's terminal.
  const child = spawn(name, [], { detached: true, stdio: 'ignore' });
  child.unref();
  startedServices.push(child.pid ?? 0);
}
t.teardown(async () => {
  // Only what this test started; a libvirtd that was running stays.
  for (const name of ['libvirtd', 'virtlogd']) {
    if (!startedServices.length) break;
    for (const pid of pidsOf(name)) if (startedServices.includes(pid)) process.kill(pid, 'SIGTERM');
  }
  await until(() => startedServices.every((pid) => !existsSync(`/proc/${pid}/status`) || /State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8'))), 10_000, () => 'libvirtd/virtlogd stopping');
});
startService('virtlogd');
startService('libvirtd');
await until(() => spawnSync('virsh', [...VIRSH, 'version'], { stdio: 'ignore' }).status === 0, 30_000, () => 'virsh version answering');

// ------------------------------------------------------------------------ site and hostinfod
// Under /tmp (readable by libvirt-qemu): config, policies, the emulator wrapper, kernel, initrd.
const site = path.join('/tmp', `hikvm-site-${process.pid}`);
const runtime = `/run/hostinfo-test-${process.pid}`;
mkdirSync(path.join(site, 'policies'), { recursive: true });
chmodSync(site, 0o755);
t.teardown(() => rmSync(site, { recursive: true, force: true }));
writeFileSync(path.join(site, 'policies', 'default.toml'), 'enabled = true\nallow = ["physcpus", "loadavg"]\nburst = 1000\ninterval = 0.001\n');
writeFileSync(path.join(site, 'hostinfo.toml'), `enabled = true\npolicy_dir = "policies"\nruntime_dir = ${JSON.stringify(runtime)}\ngroup = "kvm"\n[cache]\ninterval = 0.2\nmax_age = 2\n`, { mode: 0o644 });
// libvirt starts the emulator with an empty environment: the wrapper tells hostinfo-kvm its config.
function emulator(file: string, extra: string): string {
  const wrapper = path.join(site, file);
  writeFileSync(wrapper, `#!/bin/sh\nHOSTINFO_CONFIG=${site}/hostinfo.toml ${extra}HOSTINFO_NODE=${process.execPath} exec ${path.join(REPO, 'bin', 'hostinfo-kvm')} "$@"\n`, { mode: 0o755 });
  return wrapper;
}
const serialEmulator = emulator('emulator', '');
const virtioEmulator = emulator('emulator-virtio', 'HOSTINFO_TRANSPORT=virtio-serial ');
copyFileSync(path.join(image.dir, 'vmlinuz'), path.join(site, 'vmlinuz'));
writeFileSync(path.join(site, 'guest.sh'), '. /lib/hostinfo.sh\nport=$(hostinfo_port)\necho "guest: port $port"\necho "guest: physcpus $(hostinfo_ask "$port" physcpus)"\nwhile :; do :; done\n');
spawnSync('bash', [path.join(REPO, 'examples', 'guest', 'with-script.sh'), path.join(site, 'guest.sh'), path.join(site, 'initrd.gz')]);
for (const f of ['vmlinuz', 'initrd.gz']) chmodSync(path.join(site, f), 0o644);

const daemon = await startDaemonAt(t, path.join(site, 'hostinfo.toml'), runtime);
t.teardown(async () => {
  await daemon.kill('SIGTERM');
  rmSync(runtime, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------------ domain
function domainXml(emulatorPath: string, console: string): string {
  return `<domain type='qemu'>
  <name>${NAME}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>${site}/vmlinuz</kernel><initrd>${site}/initrd.gz</initrd><cmdline>console=ttyS0 panic=-1 quiet</cmdline></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>${emulatorPath}</emulator>
    <serial type='file'><source path='${console}'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];
async function bootAndCheck(t: Tap, console: string, round: number): Promise<void> {
  rmSync(console, { force: true });
  virshOk('start', NAME);
  const pidfile = `/run/libvirt/qemu/${NAME}.pid`;
  const pid = Number(readFileSync(pidfile, 'utf8').trim());
  t.match(readlinkSync(`/proc/${pid}/exe`), /qemu-system-x86_64$/, `round ${round}: libvirt's pidfile ${pidfile} holds QEMU's pid ${pid}`);
  const domainId = virshOk('domid', NAME).trim();
  await until(() => existsSync(console) && /guest: physcpus /.test(readFileSync(console, 'utf8')), 90_000, () => `guest reply in ${console}: ${existsSync(console) ? readFileSync(console, 'utf8').slice(-500) : 'none'}`);
  const text = readFileSync(console, 'utf8');
  t.match(text, /guest: physcpus 1\.0 200 \d+/, `round ${round}: the guest got physcpus: ${/guest: physcpus .*/.exec(text)?.[0]}`);
  const vmDir = path.join(runtime, 'vms', NAME);
  t.ok(existsSync(vmDir), `round ${round}: registered as ${vmDir}`);
  await until(() => Number(/CPU time:\s+([\d.]+)s/.exec(virshOk('dominfo', NAME))?.[1] ?? 0) > 0.5, 30_000, () => 'CPU time > 0.5 s');
  const cpu = /CPU time:\s+([\d.]+)s/.exec(virshOk('dominfo', NAME))?.[1];
  t.ok(Number(cpu) > 0.5, `round ${round}: virsh dominfo CPU time ${cpu} s`);
  const procs = cgroupProcs(domainId);
  t.ok(procs.length > 0 && procs.every((p) => p.pid === pid), `round ${round}: only QEMU (${pid}) in the domain's cgroups: ${[...new Set(procs.map((p) => `${p.pid}/${p.comm}`))].join(' ')}`);
  virshOk('destroy', NAME);
  await until(() => !existsSync(vmDir), 10_000, () => `${vmDir} removed after destroy (${readdirSync(path.join(runtime, 'vms')).join(' ')})`);
  t.pass(`round ${round}: after destroy ${vmDir} is gone`);
  t.same(cgroupDirs(), [], `round ${round}: no cgroup directory of the domain left`);
  t.same(spawnSync('pgrep', ['-f', 'hostinfo-sidecar|dist/sidecar/main.js'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).filter((p) => spawnSync('grep', ['-q', runtime, `/proc/${p}/cmdline`]).status === 0), [], `round ${round}: no sidecar left`);
}

for (const [label, emulatorPath] of [['isa-serial (ttyS1)', serialEmulator], ['virtio-serial', virtioEmulator]] as const) {
  await t.test(`hostinfo-kvm as <emulator>, ${label}`, async (t) => {
    const console = path.join(site, 'console.log');
    const xml = path.join(site, 'domain.xml');
    writeFileSync(xml, domainXml(emulatorPath, console));
    const defineStart = Date.now();
    virshOk('define', xml);
    t.comment(`virsh define (emulator probe included) took ${Date.now() - defineStart} ms`);
    t.teardown(() => {
      virsh('destroy', NAME);
      virsh('undefine', NAME);
    });
    for (const round of [1, 2, 3]) await bootAndCheck(t, console, round);
    if (label === 'virtio-serial') t.match(readFileSync(console, 'utf8'), /guest: port \/dev\/vport/, 'the guest used the virtio port');
    const log = readFileSync(`/var/log/libvirt/qemu/${NAME}.log`, 'utf8');
    t.notMatch(log, /starting QEMU without hostinfo/, 'no fail-soft line in the domain log');
    virshOk('undefine', NAME);
  });
}
