// QEMU killed under a launcher-driven VM: its sidecar exits, its runtime directory is removed and
// the cache registry drops it, while a second VM on the same cache is untouched.

import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { fetchStatus } from '../../cache/client.js';
import { readLogFile } from '../helpers/log-file.js';
import { makeSite, processAlive, startLaunchedVm, statusOrUndefined, waitUntil } from './helpers.js';

t.setTimeout(90_000);

t.test('QEMU kill -9: sidecar exits, directory removed, registry drops the VM', async (t) => {
  const site = await makeSite(t);
  const doomed = await startLaunchedVm(t, site, 'qk-doomed');
  const other = await startLaunchedVm(t, site, 'qk-other');
  const before = await fetchStatus(site.cacheSocket);
  t.equal(before.vmcount, 2);

  const killedAt = Date.now();
  process.kill(doomed.qemuPid, 'SIGKILL');
  t.same(await doomed.launcher.exited, { code: 137, signal: null }, 'the launcher ends with 128+9');
  await waitUntil('the sidecar to exit', () => (processAlive(doomed.sidecarPid) ? undefined : true), 10_000);
  await t.rejects(stat(join(site.runtime, 'qk-doomed')), { code: 'ENOENT' }, 'runtime directory removed');
  const after = await waitUntil('the registry to drop the VM', async () => {
    const s = await statusOrUndefined(site.cacheSocket);
    return s !== undefined && s.vmcount === 1 ? s : undefined;
  }, 10_000);
  t.comment(`registry dropped the VM ${Date.now() - killedAt} ms after kill -9 of its QEMU`);
  t.same(after.vms.map((v) => v.vm.name), ['qk-other'], 'only the other VM is left');
  t.equal(after.pid, before.pid, 'the same cache carries on');
  const stopping = (await readLogFile(site.sidecarLog('qk-doomed'))).find((l) => l['event'] === 'stopping');
  t.match(stopping, { reason: /QMP connection closed|QEMU shut down/ }, 'the sidecar says why it stopped');

  t.ok(processAlive(other.sidecarPid) && processAlive(other.qemuPid), 'the other VM and its sidecar are untouched');
  t.same((await readdir(site.runtime)).sort(), ['cache.sock', 'logs', 'qk-other']);
});
