// Issue 16 under libvirt: `virsh migrate --live` from the host's libvirtd to a second libvirtd on
// this machine posing as another host (test/libvirt/second-libvirtd.ts: its own mount namespace,
// host UUID, hooks and cgroup partition), while the guest asks `physcpus` every 0.5 s over ttyS1
// on one port it keeps open, and `vmsession` beside each. Both libvirtds share this host's one
// hostinfod, so the destination is vms/NAME-2 while the source lives. Legs:
// - way B: plain QEMU, the port marked in the domain XML, attached by the shipped hook, which each
//   libvirtd runs: the destination's on "started" (QEMU listening, before the migration data);
// - way A: bin/hostinfo-kvm as <emulator>, which registers each end itself.
// Checked: the destination's QEMU is served (hostinfo-ctl status names its pid), every reply after
// the switch-over is a 200 the destination's sidecar audited, at most one request went unanswered,
// the source's VM directory and sidecar are gone once libvirt ended the source, `vmsession`
// changed from the source QEMU's to the destination QEMU's.
// The destination's domain XML (virsh migrate --xml) differs from the source's only where one
// machine forces it: the console file, the hostinfo socket (the source's path names the host's
// /var/lib/libvirt, which hostinfod would resolve to the source's socket) and the cgroup partition.

import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { StatusReply } from '../../daemon/message-types.js';
import { alive, auditOf, guestImage, REPO, run, sidecarsServing, until, type LogLine } from '../e2e/harness.js';
import { startDaemonAt } from '../helpers/served-vm.js';
import { checkSwitchOver, migratingGuestScript, numberedReplies, sessionReply } from '../helpers/migrating-guest.js';
import { vmSessionOf } from '../helpers/proc-stats.js';
import { CTL } from '../ctl/run-ctl.js';
import { hookUnavailable, shippedHook, startLibvirtd, testDomainXml, virsh, virshOk } from './libvirtd.js';
import { startSecondLibvirtd, type SecondLibvirtd } from './second-libvirtd.js';

const NAME = `himig-${process.pid}`;
/** The destination's domain name (virsh migrate --dname when it differs) and its VM directory:
 * the same name, so vms/NAME-2 while the source's vms/NAME lives. */
const DEST = NAME;
const DEST_ID = DEST === NAME ? `${NAME}-2` : DEST;

const image = await guestImage();
if (image.kind === 'skip') {
  t.plan(0, image.reason);
  process.exit(0);
}
for (const tool of ['libvirtd', 'virtlogd', 'unshare']) {
  if (process.getuid?.() !== 0 || spawnSync('which', [tool]).status !== 0) {
    t.plan(0, 'needs root, libvirtd, virtlogd and unshare (.ci/setup installs libvirt-daemon-system)');
    process.exit(0);
  }
}
const hookSkip = hookUnavailable();
if (hookSkip !== undefined) {
  t.plan(0, hookSkip);
  process.exit(0);
}
// The lock may make this file wait for test/libvirt/libvirt.test.ts (a few minutes); its own work
// is two boots and two migrations.
t.setTimeout(480_000);
const started = Date.now();

// ------------------------------------------------------------------------ site and hostinfod
const site = path.join('/tmp', `himig-site-${process.pid}`);
const runtime = `/run/hostinfo-test-${process.pid}`;
const config = path.join(site, 'hostinfo.toml');
mkdirSync(path.join(site, 'policies'), { recursive: true });
chmodSync(site, 0o755);
t.teardown(() => rmSync(site, { recursive: true, force: true }));
writeFileSync(path.join(site, 'policies', 'default.toml'), 'enabled = true\nallow = ["physcpus", "vmsession"]\nburst = 10\ninterval = 0.1\n');
// group kvm: way A's QEMU (libvirt-qemu, supplementary group kvm) registers in the runtime dir.
writeFileSync(config, `enabled = true\npolicy_dir = "policies"\nruntime_dir = ${JSON.stringify(runtime)}\ngroup = "kvm"\n[cache]\ninterval = 0.2\nmax_age = 2\n`, { mode: 0o644 });
const emulator = path.join(site, 'emulator');
writeFileSync(emulator, `#!/bin/sh\nHOSTINFO_CONFIG=${config} HOSTINFO_NODE=${process.execPath} exec ${path.join(REPO, 'bin', 'hostinfo-kvm')} "$@"\n`, { mode: 0o755 });
copyFileSync(path.join(image.dir, 'vmlinuz'), path.join(site, 'vmlinuz'));
writeFileSync(path.join(site, 'guest.sh'), migratingGuestScript('isa-serial', 'stay-up'));
spawnSync('bash', [path.join(REPO, 'examples', 'guest', 'with-script.sh'), path.join(site, 'guest.sh'), path.join(site, 'initrd.gz')]);
for (const f of ['vmlinuz', 'initrd.gz']) chmodSync(path.join(site, f), 0o644);

const hookLog = { source: path.join(site, 'hook-source.log'), destination: path.join(site, 'hook-destination.log') };
const libvirtd = await startLibvirtd(t, { hook: shippedHook(REPO, config, hookLog.source) });
if (libvirtd.lockWaitMs > 1000) t.comment(`waited ${(libvirtd.lockWaitMs / 1000).toFixed(1)} s for another libvirt test file to release libvirtd`);
const workFrom = Date.now();
t.teardown(() => t.comment(`libvirt migration wall time ${((Date.now() - started) / 1000).toFixed(1)} s, ${((Date.now() - workFrom) / 1000).toFixed(1)} s of it after the libvirtd lock`));
const daemon = await startDaemonAt(t, config, runtime);
t.teardown(async () => {
  await daemon.kill('SIGTERM');
  rmSync(runtime, { recursive: true, force: true });
});
const second: SecondLibvirtd = await startSecondLibvirtd(t, path.join(site, 'destination'), { hook: shippedHook(REPO, config, hookLog.destination) });

// ------------------------------------------------------------------------------------ helpers
interface Leg {
  readonly label: string;
  readonly emulator: string;
  /** The hostinfo port in the domain XML (way B); empty when hostinfo-kvm adds it (way A). */
  readonly port: (socket: string) => string;
  readonly attached: boolean;
}

function domainXml(leg: Leg, uuid: string, console: string): string {
  return testDomainXml({ name: NAME, uuid, site, emulator: leg.emulator, console, devices: leg.port(`/var/lib/libvirt/qemu/hostinfo-${NAME}.sock`) });
}

/** The source's migratable XML with what must differ on this one machine replaced; each must be there. */
function destinationXml(sourceConsole: string, destinationConsole: string, leg: Leg): string {
  let xml = virshOk('dumpxml', '--migratable', NAME);
  const swaps: [string, string][] = [[`path='${sourceConsole}'`, `path='${destinationConsole}'`], ['<partition>/machine</partition>', `<partition>${second.partition}</partition>`]];
  if (leg.attached) swaps.push([`path='/var/lib/libvirt/qemu/hostinfo-${NAME}.sock'`, `path='${second.libDir}/qemu/hostinfo-${NAME}.sock'`]);
  for (const [from, to] of swaps) {
    if (!xml.includes(from)) throw new Error(`the source's migratable XML has no ${from}:\n${xml}`);
    xml = xml.replace(from, to);
  }
  return xml;
}

const pidIn = (file: string): number => Number(readFileSync(file, 'utf8').trim());
const consoleText = (file: string): string => (existsSync(file) ? readFileSync(file, 'utf8') : '');
const numbered = (file: string): Map<number, string> => numberedReplies(consoleText(file));
const session = (file: string, which: 'first' | 'last'): string | undefined => sessionReply(consoleText(file), which);
const vmDir = (id: string): string => path.join(runtime, 'vms', id);
const sidecarLog = (id: string): LogLine[] => readFileSync(path.join(runtime, 'logs', `${id}.sidecar.log`), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as LogLine);

/** `hostinfo-ctl status --json`, as an administrator runs it. */
function ctlStatus(): StatusReply {
  const r = spawnSync(CTL, ['--config', config, 'status', '--json'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, HOSTINFO_NODE: process.execPath } });
  if (r.status !== 0) throw new Error(`hostinfo-ctl status: ${r.status} ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusReply;
}

async function migrateLeg(t: Test, leg: Leg): Promise<void> {
  const consoles = { source: path.join(site, 'console-source.log'), destination: path.join(site, 'console-destination.log') };
  for (const file of Object.values(consoles)) rmSync(file, { force: true });
  const daemonMark = daemon.lines.length; // the legs reuse VM ids: only this leg's log lines count
  const hookMark = existsSync(hookLog.destination) ? readFileSync(hookLog.destination, 'utf8').length : 0;
  const xmlFile = path.join(site, 'domain.xml');
  writeFileSync(xmlFile, domainXml(leg, randomUUID(), consoles.source));
  t.teardown(() => {
    virsh('destroy', NAME);
    second.virsh('destroy', DEST);
  });
  virshOk('create', xmlFile); // transient: after the migration it is the destination's alone
  const sourcePid = pidIn(`/run/libvirt/qemu/${NAME}.pid`);
  const sourceSession = vmSessionOf(sourcePid);
  await until(() => numbered(consoles.source).size >= 3, 90_000, () => `3 answers on the source's console: ${existsSync(consoles.source) ? readFileSync(consoles.source, 'utf8').slice(-400) : 'none'}`);
  t.match(ctlStatus().vms.find((vm) => vm.id === NAME), { vm: { pid: sourcePid }, served: true }, `the source QEMU ${sourcePid} is served as ${NAME}`);
  const sourceSidecars = sidecarsServing(sourcePid);

  const destinationXmlFile = path.join(site, 'destination.xml');
  writeFileSync(destinationXmlFile, destinationXml(consoles.source, consoles.destination, leg));
  const migrateAt = Date.now();
  // tcp://127.0.0.1: the destination picks a port of its range; its hostname would do on two hosts.
  const migrated = await run('virsh', ['-c', 'qemu:///system', 'migrate', '--live', '--xml', destinationXmlFile, ...(DEST === NAME ? [] : ['--dname', DEST]), NAME, second.uri, '--migrateuri', 'tcp://127.0.0.1']);
  const migrateMs = Date.now() - migrateAt;
  t.equal(migrated.code, 0, `virsh migrate --live to ${second.uri} (${migrateMs} ms): ${migrated.stdout}${migrated.stderr}`.trim());
  if (migrated.code !== 0) return;
  const destinationPid = pidIn(path.join(second.runDir, 'qemu', `${DEST}.pid`));
  const destinationSession = vmSessionOf(destinationPid);
  const served = ctlStatus().vms.find((vm) => vm.vm.pid === destinationPid);
  t.match(served, { id: DEST_ID, served: true, vm: { name: DEST } }, `hostinfo-ctl status: the destination QEMU ${destinationPid} is served, as ${served?.id} (source still registered: ${existsSync(vmDir(NAME))})`);
  t.match(readFileSync(`/proc/${destinationPid}/cgroup`, 'utf8'), `${second.partition.slice(1)}.partition/qemu-`, 'the destination QEMU runs in the second libvirtd\'s cgroup partition');
  if (leg.attached) t.match(readFileSync(hookLog.destination, 'utf8').slice(hookMark), new RegExp(`attached as ${DEST_ID} \\(/dev/ttyS1 on /`), 'the destination\'s hook attached it on "started"');
  const source = virsh('domstate', NAME);
  t.not(source.code, 0, `libvirt ended the source: ${source.out.trim()}`);

  t.ok(!alive(sourcePid), `the source QEMU ${sourcePid} is gone`);
  await until(() => !existsSync(vmDir(NAME)), 15_000, () => `${vmDir(NAME)} removed`);
  t.pass(`the source's VM directory ${vmDir(NAME)} is removed`);
  await until(() => !sourceSidecars.some(alive), 15_000, () => `the source's sidecar ${sourceSidecars.join(', ')} to end`);
  t.equal(sourceSidecars.length, 1, `the source had one sidecar (${sourceSidecars.join(', ')}), and it ended`);

  // The guest asks ASKS_AFTER_MOVE times on the destination, prints its last vmsession and stays up.
  await until(() => session(consoles.destination, 'last') !== undefined, 60_000, () => `the guest to finish on the destination: ${readFileSync(consoles.destination, 'utf8').slice(-300)}`);
  // Served until the end: nothing (the source's "stopped" hook, say) ended the destination's VM.
  // By pid: the previous leg's destination had the same VM id, and its last lines may come late.
  const endedEarly = daemon.lines.slice(daemonMark).find((line) => line['event'] === 'vm-ended' && line['qemuPid'] === destinationPid);
  t.equal(endedEarly, undefined, `the destination stayed served while its guest ran (${JSON.stringify(endedEarly)})`);
  second.virsh('destroy', DEST);
  await until(() => !existsSync(vmDir(DEST_ID)), 15_000, () => `${vmDir(DEST_ID)} removed after the destination ended`);
  const before = numbered(consoles.source);
  const after = numbered(consoles.destination);
  const lost = checkSwitchOver(t, before, after);
  const audit = auditOf(sidecarLog(DEST_ID)).filter(([command]) => command === 'physcpus');
  t.ok(audit.length >= after.size - 1 && audit.every(([, status]) => status === 200), `the destination's sidecar audited the answers printed there: ${audit.length} × 200 for ${after.size}`);
  t.equal(session(consoles.source, 'first'), `1.0 200 ${sourceSession}`, 'vmsession before: the source QEMU\'s');
  t.equal(session(consoles.destination, 'last'), `1.0 200 ${destinationSession}`, 'vmsession after: the destination QEMU\'s, so the guest knows its counters started over');
  t.not(sourceSession, destinationSession);
  t.comment(`${leg.label}: virsh migrate ${migrateMs} ms; replies lost: ${lost.length}; ${before.size} answers on the source, ${after.size} on the destination`);
}

const LEGS: readonly Leg[] = [
  {
    label: 'way B: plain QEMU, unix <serial> ua-hostinfo (ttyS1), attached by each libvirtd\'s hook', emulator: '/usr/bin/qemu-system-x86_64', attached: true,
    port: (socket) => `<serial type='unix'><source mode='bind' path='${socket}'/><target type='isa-serial' port='1'/><alias name='ua-hostinfo'/></serial>`,
  },
  { label: 'way A: <emulator> hostinfo-kvm (ttyS1)', emulator, attached: false, port: () => '' },
];
for (const leg of LEGS) await t.test(leg.label, async (t) => migrateLeg(t, leg));
