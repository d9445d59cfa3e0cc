// Issue 16, end to end: live migration. A guest started under hostinfo-qemu asks `physcpus` every
// 0.5 s over one port it keeps open, and `vmsession` beside each; meanwhile a second hostinfo-qemu
// with the same arguments plus `-incoming unix:PATH` (what libvirt and Proxmox start on the
// destination) takes the VM over, as a VM manager drives it over its own QMP socket: `migrate`,
// wait for the MIGRATION event, `quit` the source. The guest changes nothing. Checked: the
// destination got its own VM directory and sidecar, which learnt the VM's identity from the
// destination's QMP; every reply after the switch-over is a 200 that the destination's sidecar
// audited; at most one request (the one in flight at the switch-over) went unanswered; the
// source's directory and sidecar are gone; `vmsession` changed, each side's value being the hash
// of its own QEMU process.
//
// Legs: same QEMU on both ends, for each QEMU of test/helpers/qemu-versions.ts (isa-serial), and a
// host upgrade, 7.2 to 10.0 on the versioned machine type both know (-M pc-i440fx-7.2), over
// virtio-serial, with the destination started as libvirt does (-incoming defer, then QMP
// migrate-incoming).

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { QmpClient } from '../../sidecar/qmp/client.js';
import type { QmpEvent } from '../../sidecar/qmp/messages.js';
import { connectWithRetry } from '../fixtures/qmp/qemu.js';
import { checkSwitchOver, migratingGuestScript, numberedReplies, sessionReply } from '../helpers/migrating-guest.js';
import { vmSessionOf } from '../helpers/proc-stats.js';
import { qemuLegs, type QemuUnderTest } from '../helpers/qemu-versions.js';
import { alive, APPEND, auditOf, guestImage, type Host, Launcher, type LogLine, makeHost, sidecarsServing, until, vmDirRemoved, within } from './harness.js';

t.setTimeout(10 * 60_000);

const VM = 'e2e-migrate';

interface Leg {
  readonly name: string;
  readonly source: QemuUnderTest;
  readonly destination: QemuUnderTest;
  readonly machine: string;
  readonly transport: 'isa-serial' | 'virtio-serial';
  /** `-incoming URI`, or `-incoming defer` and then QMP `migrate-incoming` (libvirt's way). */
  readonly incoming: 'uri' | 'defer';
}

/** True once the sidecar log of VM directory `dir` has a line with `event`. */
function existsLog(host: Host, dir: string, event: string): boolean {
  try {
    return readFileSync(path.join(host.runtimeDir, 'logs', `${dir}.sidecar.log`), 'utf8').includes(`"event":"${event}"`);
  } catch {
    return false;
  }
}

/** The VM directory (under vms/) whose record names QEMU `pid`. */
function vmDirOf(host: Host, pid: number): string | undefined {
  const vms = path.join(host.runtimeDir, 'vms');
  return readdirSync(vms).find((dir) => {
    try {
      return (JSON.parse(readFileSync(path.join(vms, dir, 'vm.json'), 'utf8')) as { pid?: unknown }).pid === pid;
    } catch {
      return false;
    }
  });
}

async function qmpOf(t: Test, socketPath: string, launcher: Launcher): Promise<QmpClient> {
  const qmp = new QmpClient();
  t.teardown(() => qmp.close());
  const exited = launcher.exited.then((exit) => exit.code);
  await connectWithRetry(qmp, { pid: launcher.child.pid ?? -1, socketPath, exited, stderr: () => launcher.stderr });
  return qmp;
}

/** Resolves with the MIGRATION event whose status is final (completed, failed or cancelled). */
function migrationEnd(qmp: QmpClient): Promise<string> {
  return new Promise((resolve) => {
    const listener = (event: QmpEvent): void => {
      const status = (event.data as { status?: unknown } | undefined)?.status;
      if (event.event !== 'MIGRATION' || (status !== 'completed' && status !== 'failed' && status !== 'cancelled')) return;
      qmp.off('event', listener);
      resolve(status);
    };
    qmp.on('event', listener);
  });
}

async function migrate(t: Test, host: Host, guest: string, leg: Leg): Promise<void> {
  await host.policy(VM, 'enabled = true\nallow = ["physcpus", "vmsession"]\nburst = 10\ninterval = 0.1\n');
  const initrd = await host.initrd(migratingGuestScript(leg.transport, 'power-off'));
  const vmArgs = ['-name', VM, '-accel', 'tcg', '-M', leg.machine, '-m', '256', '-no-reboot', '-nographic', '-initrd', initrd, '-kernel', path.join(guest, 'vmlinuz'), '-append', APPEND];
  const launcherArgs = (qemu: QemuUnderTest): string[] => [...qemu.launcherArgs, '--transport', leg.transport];
  const qmpSocket = (side: string): string => path.join(host.dir, `${side}.qmp`);
  const qmpArg = (side: string): string[] => ['-qmp', `unix:${qmpSocket(side)},server=on,wait=off`];
  const incoming = `unix:${path.join(host.dir, 'migrate.sock')}`;

  const source = new Launcher(t, host, launcherArgs(leg.source), [...vmArgs, ...qmpArg('source')]);
  const sourcePid = await source.qemuPid();
  const sourceSession = vmSessionOf(sourcePid);
  await source.output(/^R 3 \[/m);
  const sourceDir = vmDirOf(host, sourcePid);
  t.equal(sourceDir, VM, 'the source registered under the VM\'s name');

  const destination = new Launcher(t, host, launcherArgs(leg.destination), [...vmArgs, ...qmpArg('destination'), '-incoming', leg.incoming === 'uri' ? incoming : 'defer']);
  const destinationPid = await destination.qemuPid();
  const destinationSession = vmSessionOf(destinationPid);
  const started = Date.now();
  await until(() => vmDirOf(host, destinationPid) !== undefined, 30_000, () => 'the destination to register');
  const destinationDir = vmDirOf(host, destinationPid) ?? '';
  t.not(destinationDir, sourceDir, `the destination has a VM directory of its own (${destinationDir}) while the source still runs`);
  // A manager starts the migration once the destination listens; the destination's sidecar must be
  // on the guest port before the guest runs there, or the guest's first requests there are lost.
  await until(() => existsLog(host, destinationDir, 'guest-connected'), 30_000, () => 'the destination\'s sidecar to connect the guest port');
  const readyMs = Date.now() - started;

  if (leg.incoming === 'defer') await (await qmpOf(t, qmpSocket('destination'), destination)).execute('migrate-incoming', { uri: incoming });
  const sourceQmp = await qmpOf(t, qmpSocket('source'), source);
  await sourceQmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  const ended = migrationEnd(sourceQmp);
  const migrateAt = Date.now();
  await sourceQmp.execute('migrate', { uri: incoming });
  t.equal(await within(ended, 120_000, () => 'the migration to end'), 'completed', 'the migration completed');
  const stats = (await sourceQmp.execute('query-migrate')) as { 'total-time'?: number; downtime?: number };
  t.comment(`destination served ${readyMs} ms after its QEMU started; migration took ${Date.now() - migrateAt} ms (QEMU: total ${stats['total-time']} ms, downtime ${stats.downtime} ms)`);

  // The manager ends the source, which QEMU has left paused (postmigrate).
  const sourceSidecars = sidecarsServing(sourcePid);
  await sourceQmp.execute('quit').catch(() => {}); // QEMU may close the socket before it replies
  t.same(await source.exit(), { code: 0, signal: null }, 'the source QEMU quit');
  t.ok(await vmDirRemoved(host, VM), 'the source\'s VM directory is removed');
  await until(() => !sourceSidecars.some(alive), 15_000, () => `the source's sidecar ${sourceSidecars.join(', ')} to end`);
  t.ok(sourceSidecars.length === 1, `the source had one sidecar (${sourceSidecars.join(', ')}), and it ended`);

  t.same(await destination.exit(), { code: 0, signal: null }, 'the guest finished on the destination and powered off');
  const after = numberedReplies(destination.console);
  checkSwitchOver(t, numberedReplies(source.console), after);

  const destinationLog = await host.sidecarLog(destinationDir);
  const destinationAudit = auditOf(destinationLog).filter(([command]) => command === 'physcpus');
  t.ok(destinationAudit.length >= after.size - 1 && destinationAudit.every(([, status]) => status === 200), `the destination's sidecar audited the answers the guest printed there: ${destinationAudit.length} × 200`);
  const audited = (log: readonly LogLine[]): unknown[] => [...new Set(log.filter((line) => line['event'] === 'request').map((line) => line['qemu']))];
  t.same(audited(destinationLog), [destinationPid], `its audit lines name the destination QEMU, ${destinationPid}`);
  t.same(audited(await host.sidecarLog(VM)), [sourcePid], `the source's name the source QEMU, ${sourcePid}`);
  const identity = (await host.sidecarLog(destinationDir)).find((line) => line['event'] === 'identity');
  t.match(identity, { source: 'QMP', vm: { name: VM } }, 'the destination\'s sidecar learnt the VM from the destination\'s QMP');

  t.equal(sessionReply(source.console, 'first'), `1.0 200 ${sourceSession}`, 'vmsession before: the source QEMU\'s');
  t.equal(sessionReply(destination.console, 'last'), `1.0 200 ${destinationSession}`, 'vmsession after: the destination QEMU\'s, so the guest knows its per-VM counters started over');
  t.not(sourceSession, destinationSession);
}

const image = await guestImage();
if (image.kind === 'skip') {
  t.plan(0, image.reason);
} else {
  const guest = image.dir;
  const ready = (await qemuLegs()).flatMap((leg) => (leg.kind === 'ready' ? [leg.qemu] : []));
  const [system, newer] = [ready[0], ready.find((qemu) => qemu.version.major >= 10)];
  const legs: Leg[] = ready.map((qemu) => ({ name: `${qemu.label} to ${qemu.label}, isa-serial`, source: qemu, destination: qemu, machine: 'pc', transport: 'isa-serial', incoming: 'uri' }));
  if (system !== undefined && newer !== undefined && system !== newer) {
    legs.push({ name: `${system.label} to ${newer.label} (a host upgrade), virtio-serial, -incoming defer`, source: system, destination: newer, machine: `pc-i440fx-${system.version.major}.${system.version.minor}`, transport: 'virtio-serial', incoming: 'defer' });
  } else {
    t.comment('no QEMU 10 here: the cross-version leg is left out (bash .ci/qemu-10 sets it up)');
  }
  for (const leg of legs) {
    t.test(leg.name, async (t) => migrate(t, await makeHost(t, guest), guest, leg));
  }
}
