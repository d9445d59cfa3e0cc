// hostinfod with real processes: a VM registered under vms/ is adopted, its sidecar runs as the
// unprivileged sidecar user and answers the guest from the daemon's samples; when QEMU goes, the
// sidecar stops and the VM's directory is removed.

import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { makeSite, stageVm, startDaemon, status, vmStatus, waitForStatus } from '../helpers/served-vm.js';
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
