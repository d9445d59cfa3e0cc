// hostinfo under a real libvirtd (TCG domains, no KVM needed), both ways a host admin can set it
// up: hostinfo-kvm as the domain's <emulator>, and a plain QEMU whose domain XML marks a port
// for hostinfo, attached by the shipped hook (examples/libvirt/hooks/qemu). Each way, for ttyS1
// and a virtio channel: the guest reads physcpus, libvirt's pidfile is QEMU's pid, dominfo counts
// its CPU time, destroy + start works three times, nothing of hostinfo is left in the domain's
// cgroups or the runtime directory, and (first round) restarting libvirtd changes nothing for the
// guest. A root hostinfod runs with `group = "kvm"` (libvirt-qemu's QEMU runs as libvirt-qemu
// with the supplementary group kvm). All files libvirt-qemu reads live under /tmp.

import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { guestImage, REPO, until } from '../e2e/harness.js';
import { VHOSTMD_PORT_NAME } from '../../common/vm-record.js';
import { fetchStatus } from '../../daemon/control-client.js';
import { startDaemonAt } from '../helpers/served-vm.js';
import { cgroupDirs, cgroupProcs, hookUnavailable, shippedHook, sidecarsOf, startLibvirtd, testDomainXml, uidOf, virsh, virshOk, type Libvirtd } from './libvirtd.js';

const NAME = `hikvm-${process.pid}`;

const image = await guestImage();
if (image.kind === 'skip') {
  t.plan(0, image.reason);
  process.exit(0);
}
if (process.getuid?.() !== 0 || spawnSync('which', ['libvirtd']).status !== 0) {
  t.plan(0, 'needs root and libvirtd (.ci/setup installs libvirt-daemon-system)');
  process.exit(0);
}
// Three rounds of boots for four domains, and two libvirtd restarts.
t.setTimeout(300_000);
const started = Date.now();
t.teardown(() => t.comment(`libvirt test wall time ${((Date.now() - started) / 1000).toFixed(1)} s`));

// ------------------------------------------------------------------------ site and hostinfod
const site = path.join('/tmp', `hikvm-site-${process.pid}`);
const runtime = `/run/hostinfo-test-${process.pid}`;
const config = path.join(site, 'hostinfo.toml');
const hookLog = path.join(site, 'hook.log');
mkdirSync(path.join(site, 'policies'), { recursive: true });
chmodSync(site, 0o755);
t.teardown(() => rmSync(site, { recursive: true, force: true }));
writeFileSync(path.join(site, 'policies', 'default.toml'), 'enabled = true\nallow = ["physcpus", "loadavg"]\nburst = 1000\ninterval = 0.001\n');
writeFileSync(config, `enabled = true\npolicy_dir = "policies"\nruntime_dir = ${JSON.stringify(runtime)}\ngroup = "kvm"\n[cache]\ninterval = 0.2\nmax_age = 2\n`, { mode: 0o644 });
// libvirt starts the emulator with an empty environment: the wrapper tells hostinfo-kvm its config.
function emulator(file: string, extra: string): string {
  const wrapper = path.join(site, file);
  writeFileSync(wrapper, `#!/bin/sh\nHOSTINFO_CONFIG=${config} ${extra}HOSTINFO_NODE=${process.execPath} exec ${path.join(REPO, 'bin', 'hostinfo-kvm')} "$@"\n`, { mode: 0o755 });
  return wrapper;
}
copyFileSync(path.join(image.dir, 'vmlinuz'), path.join(site, 'vmlinuz'));
// Asks once a second with its own 3 s timeout (a reply lost while nothing serves the port would
// otherwise block a plain read for ever), numbering each answer.
// A domain with a vhostmd channel first asks it once as vm-dump-metrics does (open, the 18 bytes,
// read until the reply ends in a blank line, at most 5 s), up to 3 times while nothing serves it.
writeFileSync(path.join(site, 'guest.sh'), `. /lib/hostinfo.sh
port=$(hostinfo_port)
echo "guest: port $port"
if vport=$(HOSTINFO_PORT_NAME=${VHOSTMD_PORT_NAME} hostinfo_port virtio-serial 2>/dev/null); then
  for try in 1 2 3; do
    : >/tmp/vh; exec 4<>"$vport"; cat <&4 >/tmp/vh & reader=$!
    printf 'GET /metrics/XML\\n\\n' >&4
    i=0; while [ "$(tail -c 2 /tmp/vh | od -An -tx1 | tr -d ' \\n')" != 0a0a ] && [ $i -lt 50 ]; do i=$((i+1)); usleep 100000; done
    kill $reader; wait $reader 2>/dev/null; exec 4<&-
    [ $i -lt 50 ] && break
  done
  echo "guest: vhostmd try $try: $(grep -c '<metric ' /tmp/vh) metrics, last line $(grep -v '^$' /tmp/vh | tail -n 1)"
fi
n=0
while :; do
  n=$((n + 1))
  exec 3<>"$port"
  echo physcpus >&3
  if read -t 3 -r reply <&3; then echo "guest: ask $n $reply"; else echo "guest: ask $n timeout"; fi
  exec 3<&-
  sleep 1
done
`);
spawnSync('bash', [path.join(REPO, 'examples', 'guest', 'with-script.sh'), path.join(site, 'guest.sh'), path.join(site, 'initrd.gz')]);
for (const f of ['vmlinuz', 'initrd.gz']) chmodSync(path.join(site, f), 0o644);

// The shipped hook, with its settings block pointing at this checkout and this site.
const hookSkip = hookUnavailable();
const hook = shippedHook(REPO, config, hookLog);
const libvirtd: Libvirtd = await startLibvirtd(t, hookSkip === undefined ? { hook } : {});

const daemon = await startDaemonAt(t, config, runtime);
t.teardown(async () => {
  await daemon.kill('SIGTERM');
  rmSync(runtime, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------------ domains
interface Setup {
  readonly label: string;
  readonly emulator: string;
  /** The port's XML, for a domain served through the hook; empty for hostinfo-kvm. */
  readonly port: string;
  readonly viaHook: boolean;
  readonly virtio: boolean;
}

const SETUPS: readonly Setup[] = [
  { label: '<emulator> hostinfo-kvm, isa-serial (ttyS1)', emulator: emulator('emulator', ''), port: '', viaHook: false, virtio: false },
  { label: '<emulator> hostinfo-kvm, virtio-serial', emulator: emulator('emulator-virtio', 'HOSTINFO_TRANSPORT=virtio-serial '), port: '', viaHook: false, virtio: true },
  {
    label: 'hook, unix <serial> ua-hostinfo (ttyS1)', emulator: '/usr/bin/qemu-system-x86_64', viaHook: true, virtio: false,
    port: `<serial type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/hostinfo-${NAME}.sock'/><target type='isa-serial' port='1'/><alias name='ua-hostinfo'/></serial>`,
  },
  {
    label: 'hook, virtio <channel> org.hostinfo.0 and a vhostmd <channel>', emulator: '/usr/bin/qemu-system-x86_64', viaHook: true, virtio: true,
    port: `<channel type='unix'><target type='virtio' name='org.hostinfo.0'/></channel><channel type='unix'><target type='virtio' name='${VHOSTMD_PORT_NAME}'/></channel>`,
  },
];

function domainXml(setup: Setup, console: string): string {
  return testDomainXml({ name: NAME, site, emulator: setup.emulator, console, devices: setup.port });
}

/** The guest's answer lines on its console (a tty: each ends in CR LF). */
const answers = (console: string): string[] => (existsSync(console) ? readFileSync(console, 'utf8').split(/\r?\n/).filter((line) => line.startsWith('guest: ask ')) : []);

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

/** libvirtd goes and comes back while the guest asks: every answer after it is still a 200. */
async function restartLibvirtd(t: Tap, console: string, vmDir: string): Promise<void> {
  const before = answers(console).length;
  const restartAt = Date.now();
  await libvirtd.restart();
  t.comment(`libvirtd restarted in ${Date.now() - restartAt} ms`);
  await until(() => answers(console).length >= before + 3, 30_000, () => `3 answers after the restart: ${answers(console).slice(-3).join(' | ')}`);
  const after = answers(console).slice(before);
  t.ok(after.every((line) => / 1\.0 200 \d+$/.test(line)), `after restarting libvirtd the guest's answers go on: ${after.slice(0, 4).join(' | ')}`);
  t.ok(existsSync(vmDir), 'still registered');
  t.equal(virsh('domstate', NAME).out.trim(), 'running', 'libvirt found its running domain again');
}

async function bootAndCheck(t: Tap, setup: Setup, console: string, round: number): Promise<void> {
  rmSync(console, { force: true });
  const hookMark = existsSync(hookLog) ? readFileSync(hookLog, 'utf8').length : 0;
  virshOk('start', NAME);
  const pidfile = `/run/libvirt/qemu/${NAME}.pid`;
  const pid = Number(readFileSync(pidfile, 'utf8').trim());
  t.match(readlinkSync(`/proc/${pid}/exe`), /qemu-system-x86_64$/, `round ${round}: libvirt's pidfile ${pidfile} holds QEMU's pid ${pid}`);
  const domainId = virshOk('domid', NAME).trim();
  await until(() => answers(console).length > 0, 90_000, () => `a guest answer in ${console}: ${existsSync(console) ? readFileSync(console, 'utf8').slice(-500) : 'none'}`);
  t.match(answers(console)[0], /^guest: ask \d+ 1\.0 200 \d+$/, `round ${round}: the guest got physcpus: ${answers(console)[0]}`);
  const vmDir = path.join(runtime, 'vms', NAME);
  t.ok(existsSync(vmDir), `round ${round}: registered as ${vmDir}`);
  if (setup.viaHook) {
    const vm = (await fetchStatus(path.join(runtime, 'hostinfod.sock'))).vms.find((entry) => entry.id === NAME);
    t.match(vm, { attached: true, vm: { pid }, transport: setup.virtio ? 'virtio-serial' : 'isa-serial', sidecar: { uid: uidOf('libvirt-qemu') } }, `round ${round}: attached by the hook; its sidecar runs as QEMU's user, libvirt-qemu`);
    t.match(readFileSync(hookLog, 'utf8').slice(hookMark), new RegExp(`attached as ${NAME} \\(${setup.virtio ? 'org\\.hostinfo\\.0' : '/dev/ttyS1'} on /`), `round ${round}: the hook says what it attached`);
  }
  if (setup.port.includes(VHOSTMD_PORT_NAME)) {
    t.match(readFileSync(hookLog, 'utf8').slice(hookMark), /, vhostmd on \/var\/lib\/libvirt\/qemu\/channel\//, `round ${round}: the hook attached the vhostmd channel too`);
    const vhostmd = /^guest: vhostmd try (\d): (\d+) metrics, last line (.*?)\r?$/m.exec(readFileSync(console, 'utf8'));
    t.ok(vhostmd !== null && Number(vhostmd[2]) > 0 && vhostmd[3] === '</metrics>', `round ${round}: the guest read a vhostmd document: ${vhostmd?.[0] ?? 'none'}`);
  }
  if (round === 1 && !setup.virtio) await restartLibvirtd(t, console, vmDir);
  if (round === 1 && !setup.virtio && setup.viaHook) t.match(readFileSync(hookLog, 'utf8').slice(hookMark), /hook libvirt .* reconnect: already attached as/, 'libvirtd\'s reconnect ran the hook, which found the VM served');
  await until(() => Number(/CPU time:\s+([\d.]+)s/.exec(virshOk('dominfo', NAME))?.[1] ?? 0) > 0.5, 30_000, () => 'CPU time > 0.5 s');
  t.ok(Number(/CPU time:\s+([\d.]+)s/.exec(virshOk('dominfo', NAME))?.[1]) > 0.5, `round ${round}: virsh dominfo CPU time > 0.5 s`);
  const vcpuTime = Number(/vcpu\.0\.time=(\d+)/.exec(virshOk('domstats', '--vcpu', NAME))?.[1] ?? 0);
  t.ok(vcpuTime > 0, `round ${round}: virsh domstats --vcpu counts QEMU's vCPU thread: vcpu.0.time=${vcpuTime} ns`);
  const procs = cgroupProcs(domainId, NAME);
  t.ok(procs.length > 0 && procs.every((p) => p.pid === pid), `round ${round}: only QEMU (${pid}) in the domain's cgroups: ${[...new Set(procs.map((p) => `${p.pid}/${p.comm}`))].join(' ')}`);
  virshOk('destroy', NAME);
  await until(() => !existsSync(vmDir), 10_000, () => `${vmDir} removed after destroy (${readdirSync(path.join(runtime, 'vms')).join(' ')})`);
  t.pass(`round ${round}: after destroy ${vmDir} is gone`);
  t.same(cgroupDirs(NAME), [], `round ${round}: no cgroup directory of the domain left`);
  await until(() => sidecarsOf(runtime).length === 0, 10_000, () => `sidecars of ${runtime} gone: ${sidecarsOf(runtime).join(' ')}`);
  t.pass(`round ${round}: no sidecar left`);
}

for (const setup of SETUPS) {
  await t.test(setup.label, { skip: setup.viaHook ? hookSkip ?? false : false }, async (t) => {
    const console = path.join(site, 'console.log');
    const xml = path.join(site, 'domain.xml');
    writeFileSync(xml, domainXml(setup, console));
    const defineStart = Date.now();
    virshOk('define', xml);
    t.comment(`virsh define (emulator probe included) took ${Date.now() - defineStart} ms`);
    t.teardown(() => {
      virsh('destroy', NAME);
      virsh('undefine', NAME);
    });
    for (const round of [1, 2, 3]) await bootAndCheck(t, setup, console, round);
    if (setup.virtio) t.match(readFileSync(console, 'utf8'), /guest: port \/dev\/vport/, 'the guest used the virtio port');
    const log = readFileSync(`/var/log/libvirt/qemu/${NAME}.log`, 'utf8');
    t.notMatch(log, /starting QEMU without hostinfo/, 'no fail-soft line in the domain log');
    virshOk('undefine', NAME);
  });
}
