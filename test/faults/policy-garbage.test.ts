// A VM's policy file replaced by garbage while the VM runs: hostinfod fails closed for that VM
// (403 "not enabled" to everything, PING included), logs a warning naming the file, sends the
// sidecar a refusal and host samples with no items, and serves again once the file is fixed; the
// sidecar keeps running throughout (one process, one guest connection). Another VM under its own
// policy is not affected.

import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { readLogFile } from '../helpers/log-file.js';
import { DATA_POLICY, makeSite, sidecarLogMark, stageVm, startBareDaemon, waitForSidecar, waitForSidecarLine, writePolicy } from '../helpers/served-vm.js';
import { uuidFor, waitUntil } from './helpers.js';

t.setTimeout(90_000);

const GARBAGE = [
  Buffer.from([0x00, 0xff, 0xfe, 0x7b, 0x0a, 0x5b, 0x5b, 0x22, 0x0a, 0x80, 0x81]),
  'enabled = true\nallow = [\n',
  'enabled = "yes"\n',
  'enabled = true\nallow = ["physcpus", "cpuspeed"]\n',
  '', // an empty file is valid TOML: a policy that does not enable anything
];
const NOT_ENABLED = '1.0 403 hostinfo is not enabled for this VM';

t.test('garbage policy: fail closed, warning names the file, fixed file served again, no sidecar restart', async (t) => {
  const site = await makeSite(t, { policy: 'enabled = false\n' });
  const policyFile = await writePolicy(site, 'pg-vm', DATA_POLICY);
  await writePolicy(site, 'pg-other', DATA_POLICY);
  const daemon = await startBareDaemon(t, site);
  const vm = await stageVm(t, site, 'pg-vm', { uuid: uuidFor(7) });
  const other = await stageVm(t, site, 'pg-other', { uuid: uuidFor(8) });
  const pid = (await waitForSidecar(site, 'pg-vm')).sidecar.pid;
  t.match(await vm.guest.ask('loadavg'), /^1\.0 200 /);

  for (const [i, garbage] of GARBAGE.entries()) {
    const viaRename = i % 2 === 1;
    let from = daemon.lines.length;
    let mark = await sidecarLogMark(site, 'pg-vm');
    if (viaRename) {
      // An editor's or config manager's atomic replace.
      const temp = join(site.dir, `garbage-${i}.toml`);
      await writeFile(temp, garbage);
      await rename(temp, policyFile);
    } else {
      await writeFile(policyFile, garbage);
    }
    const failed = await daemon.waitFor((l) => l['event'] === 'policy' && l['vm'] === 'pg-vm' && l['served'] === false, from);
    t.match(failed, { level: 40 }, `garbage #${i}: the daemon logs a warning`);
    t.ok(String(failed['reason']).includes(policyFile), `garbage #${i}: the reason names the file: ${String(failed['reason'])}`);
    t.match(await waitForSidecarLine(site, 'pg-vm', (l) => l['event'] === 'policy', mark), { served: false, reason: failed['reason'] }, `garbage #${i}: the sidecar is told why`);
    // The daemon's newest sample follows the refusal, filtered to nothing.
    const empty = await waitForSidecarLine(site, 'pg-vm', (l) => l['event'] === 'host-data', mark);
    t.same(empty['items'], [], `garbage #${i}: no host item reaches the sidecar`);
    t.equal(await vm.guest.ask('loadavg'), NOT_ENABLED, `garbage #${i}: data refused`);
    t.equal(await vm.guest.ask('PING'), NOT_ENABLED, `garbage #${i}: PING refused`);
    t.equal(await other.guest.ask('PING'), '1.0 200 pong', `garbage #${i}: the other VM is still served`);

    from = daemon.lines.length;
    mark = await sidecarLogMark(site, 'pg-vm');
    await writeFile(policyFile, DATA_POLICY);
    await daemon.waitFor((l) => l['event'] === 'policy' && l['vm'] === 'pg-vm' && l['served'] === true, from);
    const data = await waitForSidecarLine(site, 'pg-vm', (l) => l['event'] === 'host-data' && JSON.stringify(l['items']) !== '[]', mark);
    t.same(data['items'], ['physcpus', 'loadavg', 'physmem', 'uptime'], `garbage #${i} fixed: the policy's host items arrive again`);
    t.equal(await vm.guest.ask('PING'), '1.0 200 pong', `garbage #${i} fixed: served again`);
    // The sample is logged as it arrives; the guest's request travels another socket and may
    // overtake the decision by a moment.
    const reply = await waitUntil('loadavg served again', async () => {
      const answer = await vm.guest.ask('loadavg');
      return answer.startsWith('1.0 200 ') ? answer : undefined;
    }, 2_000);
    t.match(reply, /^1\.0 200 \d/, `garbage #${i} fixed: data again`);
  }
  const served = await waitForSidecar(site, 'pg-vm');
  t.equal(served.sidecar.pid, pid, 'one sidecar process throughout');
  t.equal(served.sidecar.restarts, 0, 'never restarted');
  t.equal(vm.guest.connections, 1, 'the guest port was never reconnected');
  t.notOk((await readLogFile(site.sidecarLog('pg-vm'))).some((l) => l['event'] === 'stopping'), 'no stop logged');
});
