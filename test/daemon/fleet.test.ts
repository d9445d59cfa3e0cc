// hostinfod with real processes: a VM registered under vms/ is adopted, its sidecar runs as the
// unprivileged sidecar user and answers the guest from the daemon's samples; when QEMU goes, the
// sidecar stops and the VM's directory is removed.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { processStartTime } from '../../common/proc.js';
import { encodeVmRecord, type VmRecord } from '../../common/vm-record.js';
import { withTimeout } from '../helpers/logged-process.js';
import { makeSite, stageVm, startDaemon, status, vmStatus, waitForStatus, type Site } from '../helpers/served-vm.js';
import { findAccount } from '../../daemon/passwd.js';

t.test('a staged VM is adopted, served by a non-root sidecar, and cleaned up when QEMU exits', async (t) => {
  const site = await makeSite(t);
  await startDaemon(t, site);
  const vm = await stageVm(t, site, 'fleet1', { uuid: '5d6c7f2a-1b3e-4c5d-8e9f-0a1b2c3d4e5f' });
  t.match(await vm.guest.ask('physcpus'), /^1\.0 200 \d+$/);
  const entry = await waitForStatus(site, 'the sidecar to say hello', (reply) => {
    const found = vmStatus(reply, 'fleet1');
    return found?.sidecar.connected === true ? found : undefined;
  });
  t.equal(entry.vm.pid, vm.qemuPid, 'the VM is known by its QEMU pid');
  t.equal(entry.served, true);
  const sidecarPid = entry.sidecar.pid ?? 0;
  const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${sidecarPid}/status`, 'utf8'))?.[1]);
  t.not(uid, 0, 'the sidecar does not run as root');
  t.equal(uid, findAccount('hostinfo')?.uid, 'it runs as the sidecar user');
  vm.qemu.kill('SIGKILL');
  await waitForStatus(site, 'the VM to be forgotten', (reply) => (vmStatus(reply, 'fleet1') === undefined ? true : undefined));
  t.notOk(existsSync(vm.dir), 'its directory is gone');
  t.equal((await status(site)).vms.length, 0);
});

const RECORD: VmRecord = { v: 1, pid: process.pid, startTime: processStartTime(process.pid) ?? '0', name: undefined, uuid: undefined, transport: 'isa-serial', guestDevice: '/dev/ttyS0', pidfile: undefined };

/** A pid that was just in use and is not any more. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await once(child, 'exit');
  return child.pid ?? 0;
}

/** A VM directory made complete first and then moved into vms/ in one rename, as launchers do. */
function placeVmDir(site: Site, name: string, vmJson: string): string {
  const hold = join(site.vms, `.hold-${name}`);
  mkdirSync(hold, { mode: 0o700 });
  writeFileSync(join(hold, 'vm.json'), vmJson, { mode: 0o600 });
  renameSync(hold, join(site.vms, name));
  return join(site.vms, name);
}

async function gone(path: string): Promise<void> {
  await withTimeout((async () => {
    while (existsSync(path)) await new Promise((resolve) => setTimeout(resolve, 20));
  })(), `${path} to be removed`);
}

t.test('an invalid vm.json is logged once however often vms/ is read, and again only when it changes', async (t) => {
  const site = await makeSite(t);
  const daemon = await startDaemon(t, site);
  const bad = placeVmDir(site, 'bad', '{"v":1,"pid":"x"}\n');
  const rejected = (): Record<string, unknown>[] => daemon.lines.filter((line) => line['event'] === 'vm-rejected' && line['dir'] === bad);
  t.match(await daemon.waitFor((line) => line['event'] === 'vm-rejected' && line['dir'] === bad), { reason: /^invalid vm\.json: pid must be/ });
  // Every entry appearing in vms/ makes the daemon read it again.
  for (let i = 0; i < 3; i++) {
    mkdirSync(join(site.vms, `.poke-${i}`));
    rmSync(join(site.vms, `.poke-${i}`), { recursive: true });
  }
  await stageVm(t, site, 'good');
  await daemon.waitFor((line) => line['event'] === 'vm-adopted' && line['vm'] === 'good');
  t.equal(rejected().length, 1, 'one vm-rejected line across the rescans');
  writeFileSync(join(bad, 'vm.json'), '{"v":2}\n');
  mkdirSync(join(site.vms, '.poke-again'));
  t.match(await daemon.waitFor((line) => line['event'] === 'vm-rejected' && line['dir'] === bad && /v must be 1/.test(String(line['reason']))), {}, 'a different problem is logged');
  t.equal(rejected().length, 2);
  t.ok(existsSync(bad), 'an invalid directory is never removed');
  t.equal(vmStatus(await status(site), 'bad'), undefined, 'nor served');
});

t.test('a dead VM\'s directory and a dead launcher\'s staging directory are removed at adoption', async (t) => {
  const site = await makeSite(t);
  mkdirSync(site.vms, { recursive: true, mode: 0o700 });
  const stale = placeVmDir(site, 'stale', encodeVmRecord({ ...RECORD, pid: await deadPid(), startTime: '12345' }));
  const recycled = placeVmDir(site, 'recycled', encodeVmRecord({ ...RECORD, startTime: `${RECORD.startTime}0` }));
  const staging = join(site.vms, `.new-${await deadPid()}-0123456789ab`);
  mkdirSync(staging, { mode: 0o700 });
  writeFileSync(join(staging, 'vm.json'), encodeVmRecord(RECORD));
  const live = join(site.vms, `.new-${process.pid}-0123456789ab`);
  mkdirSync(live, { mode: 0o700 });
  const daemon = await startDaemon(t, site);
  await Promise.all([gone(stale), gone(recycled), gone(staging)]);
  const removed = daemon.lines.filter((line) => line['event'] === 'stale-removed').map((line) => line['dir']);
  t.same(removed.sort(), [staging, recycled, stale].sort(), 'each logged as stale');
  t.ok(existsSync(live), 'a live launcher\'s staging directory is left alone');
  t.same((await status(site)).vms, []);
  // The same while running.
  const later = placeVmDir(site, 'later', encodeVmRecord({ ...RECORD, pid: await deadPid(), startTime: '1' }));
  await gone(later);
});

t.test('a daemon restart re-adopts a running VM and serves it again', async (t) => {
  const site = await makeSite(t);
  const first = await startDaemon(t, site);
  const vm = await stageVm(t, site, 'survivor');
  t.match(await vm.guest.ask('physcpus'), /^1\.0 200 \d+$/);
  const sidecar = (await waitForStatus(site, 'the sidecar', (reply) => vmStatus(reply, 'survivor')?.sidecar.pid ?? undefined));
  first.child.kill('SIGTERM');
  t.same(await first.exited, { code: 0, signal: null });
  t.equal(processStartTime(sidecar), undefined, 'the sidecar stopped with the daemon');
  t.ok(existsSync(vm.dir), 'the VM directory stays for the next daemon');
  await startDaemon(t, site);
  await vm.guest.connected(2);
  t.match(await vm.guest.ask('physcpus'), /^1\.0 200 \d+$/, 'served again');
  const entry = await waitForStatus(site, 'the new sidecar to say hello', (reply) => (vmStatus(reply, 'survivor')?.sidecar.connected === true ? vmStatus(reply, 'survivor') : undefined));
  t.not(entry.sidecar.pid, sidecar);
  t.equal(entry.vm.pid, vm.qemuPid);
});

t.test('vmcount counts served VMs only', async (t) => {
  const site = await makeSite(t);
  await writeFile(join(site.policies, 'off.toml'), 'enabled = false\n');
  await startDaemon(t, site);
  await stageVm(t, site, 'on');
  await stageVm(t, site, 'off');
  const reply = await waitForStatus(site, 'both VMs', (r) => (r.vms.length === 2 ? r : undefined));
  t.equal(reply.vmcount, 1);
  t.match(vmStatus(reply, 'off'), { served: false, reason: /enabled/, items: [] });
  t.match(vmStatus(reply, 'on'), { served: true });
});
