// QEMU killed under a VM started by the real bin/hostinfo-qemu front: its sidecar exits (QMP
// closed), the daemon removes its directory and forgets it, while a second VM on the same daemon
// is untouched.

import { readdir, stat } from 'node:fs/promises';
import t from 'tap';
import { readLogFile } from '../helpers/log-file.js';
import { launchVm, makeSite, PAUSED_VM, startBareDaemon, status, vmStatus, waitForSidecar, waitForStatus } from '../helpers/served-vm.js';
import { processAlive, waitUntil } from './helpers.js';

t.setTimeout(90_000);

t.test('QEMU kill -9: sidecar exits, directory removed, the daemon drops the VM', async (t) => {
  const site = await makeSite(t);
  const daemon = await startBareDaemon(t, site);
  const doomed = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'qk-doomed']);
  const other = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'qk-other']);
  const doomedSidecar = (await waitForSidecar(site, 'qk-doomed')).sidecar.pid;
  const otherSidecar = (await waitForSidecar(site, 'qk-other')).sidecar.pid;
  const before = await status(site);
  t.equal(before.vmcount, 2);
  t.equal(vmStatus(before, 'qk-doomed')?.vm.pid, doomed.pid, 'the front\'s pid is QEMU\'s');

  const killedAt = Date.now();
  process.kill(doomed.pid, 'SIGKILL');
  t.same(await doomed.exited, { code: null, signal: 'SIGKILL' }, 'the caller sees QEMU\'s own death: the front became QEMU');
  await waitUntil('the sidecar to exit', () => (processAlive(doomedSidecar) ? undefined : true), 10_000);
  const after = await waitForStatus(site, 'the daemon to drop the VM', (s) => (s.vms.length === 1 ? s : undefined), 10_000);
  t.comment(`VM dropped ${Date.now() - killedAt} ms after kill -9 of its QEMU`);
  t.same(after.vms.map((v) => v.id), ['qk-other'], 'only the other VM is left');
  t.equal(after.vmcount, 1);
  t.equal(after.pid, before.pid, 'the same daemon carries on');
  await t.rejects(stat(`${site.vms}/qk-doomed`), { code: 'ENOENT' }, 'VM directory removed');
  t.same((await readdir(site.vms)).sort(), ['qk-other']);
  const lines = await readLogFile(site.sidecarLog('qk-doomed'));
  t.match(lines.find((l) => l['event'] === 'stopping'), { reason: /QMP connection closed|QEMU shut down|QEMU is gone|guest chardev/ }, 'the sidecar says why it stopped');
  t.match(await daemon.waitFor((l) => l['event'] === 'vm-ended' && l['vm'] === 'qk-doomed'), { reason: /QEMU is gone/ });

  t.ok(processAlive(other.pid) && processAlive(otherSidecar), 'the other VM and its sidecar are untouched');
  t.equal((await waitForSidecar(site, 'qk-other')).sidecar.pid, otherSidecar, 'the other VM\'s sidecar was never restarted');
});
