// kill -9 of hostinfod while VMs are being served (the old "cache kill": the daemon is now the
// only source of policy and host data, and the sidecars' only parent).
//  1. Ten staged VMs being asked: every sidecar ends (its channel closed), no QEMU dies, every VM
//     directory stays; a new hostinfod re-adopts every VM and each guest is answered again.
//  2. A VM started by the real bin/hostinfo-qemu front survives its autostarted daemon's kill -9;
//     the next VM's launch autostarts a new daemon, which serves both.
// Nobody restarts a killed daemon by design (systemd's Restart= does, or the next launch).

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { VM_RECORD_FILE } from '../../common/runtime-tree.js';
import { readLogFile } from '../helpers/log-file.js';
import { launchVm, makeSite, PAUSED_VM, startBareDaemon, status, waitForSidecar, waitForStatus } from '../helpers/served-vm.js';
import { askLoop, processAlive, stageFleet, waitUntil } from './helpers.js';

const VMS = 10;
const TICK_MS = 150;
/** From kill -9 to every sidecar gone: each sees its channel close at once. */
const SIDECARS_GONE_BOUND_MS = 5_000;
/** From the new daemon listening to every guest answered: ten sidecars started on two cores. */
const RECOVERY_BOUND_MS = 15_000;

t.setTimeout(150_000);

t.test(`${VMS} staged VMs: sidecars end with the daemon, QEMU runs on, a new daemon serves every VM again`, async (t) => {
  const site = await makeSite(t, { maxAge: 1 });
  const first = await startBareDaemon(t, site);
  const fleet = await stageFleet(t, site, 'dk-vm', VMS);

  // Everyone is answered with data before the fault.
  const loops = fleet.map(({ vm }) => askLoop(vm, ['loadavg', 'PING q'], TICK_MS));
  await waitUntil('two rounds answered on every VM', () => (loops.every((loop) => loop.log.length >= 4) ? true : undefined));
  await Promise.all(loops.map((loop) => loop.stop()));
  for (const [i, loop] of loops.entries()) {
    t.ok(loop.log.every((a) => (a.request === 'loadavg' ? /^1\.0 200 \d+\.\d\d \d+\.\d\d \d+\.\d\d$/ : /^1\.0 200 q$/).test(a.reply)), `${fleet[i]?.vm.name}: ${loop.log.length} requests answered before the kill`);
  }

  const killedAt = Date.now();
  await first.kill('SIGKILL');
  const goneAfter = await waitUntil('every sidecar to end', () => (fleet.every(({ served }) => !processAlive(served.sidecar.pid)) ? Date.now() - killedAt : undefined), SIDECARS_GONE_BOUND_MS);
  t.comment(`every sidecar gone ${goneAfter} ms after kill -9 of hostinfod`);
  for (const { vm, served } of fleet) {
    const lines = await readLogFile(site.sidecarLog(vm.name));
    const stopping = lines.find((line) => line['event'] === 'stopping' && line['pid'] === served.sidecar.pid);
    t.match(stopping, { reason: /^channel to hostinfod closed/ }, `${vm.name}: its sidecar ended because the channel closed`);
    t.ok(processAlive(vm.qemuPid), `${vm.name}: QEMU still runs`);
    t.ok(existsSync(join(vm.dir, VM_RECORD_FILE)), `${vm.name}: its registration stays for the next daemon`);
  }

  const second = await startBareDaemon(t, site);
  const backAt = Date.now();
  t.comment(`new hostinfod listening ${backAt - killedAt} ms after the kill`);
  const answeredAfter = await Promise.all(fleet.map(async ({ vm }) => {
    await vm.guest.connected(2);
    const reply = await vm.guest.ask('loadavg');
    return { reply, after: Date.now() - backAt };
  }));
  const worst = Math.max(...answeredAfter.map((a) => a.after));
  t.comment(`guests answered again ${Math.min(...answeredAfter.map((a) => a.after))}..${worst} ms after the new daemon listened`);
  t.ok(worst <= RECOVERY_BOUND_MS, `every guest answered within ${RECOVERY_BOUND_MS} ms (worst ${worst} ms)`);
  t.ok(answeredAfter.every((a) => /^1\.0 200 \d+\.\d\d /.test(a.reply)), 'with host data from the new daemon');

  const after = await waitForStatus(site, 'every VM re-adopted, its sidecar connected', (reply) => (reply.vms.length === VMS && reply.vms.every((v) => v.sidecar.connected) ? reply : undefined));
  t.equal(after.pid, second.child.pid, 'the new daemon answers');
  t.equal(after.vmcount, VMS, 'every VM served again');
  t.same(after.vms.map((v) => v.vm.pid).sort(), fleet.map(({ vm }) => vm.qemuPid).sort(), 'the same QEMUs');
  t.ok(after.vms.every((v) => !fleet.some(({ served }) => served.sidecar.pid === v.sidecar.pid)), 'each by a new sidecar');
  t.ok(after.vms.every((v) => v.sidecar.restarts === 0), 'started once each by the new daemon');
});

t.test('launched VM: survives its autostarted daemon\'s kill -9; the next launch autostarts one that serves both', async (t) => {
  const site = await makeSite(t);
  const a = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'keep-a']);
  const servedA = await waitForSidecar(site, 'keep-a');
  const before = await status(site);
  t.equal(servedA.vm.pid, a.pid, 'the front\'s pid is QEMU\'s');

  process.kill(before.pid, 'SIGKILL');
  await waitUntil('keep-a\'s sidecar to end', () => (processAlive(servedA.sidecar.pid) ? undefined : true), SIDECARS_GONE_BOUND_MS);
  t.ok(processAlive(a.pid), 'QEMU keeps running without a daemon');
  t.equal(a.child.exitCode, null, 'and has not exited');

  const b = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'keep-b']);
  const reply = await waitForStatus(site, 'a new daemon serving both VMs', (r) => (r.pid !== before.pid && r.vms.length === 2 && r.vms.every((v) => v.sidecar.connected) ? r : undefined));
  t.same(reply.vms.map((v) => [v.id, v.vm.pid]), [['keep-a', a.pid], ['keep-b', b.pid]], 'both VMs, known by their QEMU pids');
  t.not(reply.vms[0]?.sidecar.pid, servedA.sidecar.pid, 'keep-a has a new sidecar');
  t.equal(reply.vmcount, 2);
});
