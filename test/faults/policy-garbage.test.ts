// A VM's policy file replaced by garbage while the VM runs: the sidecar fails closed (403 "not
// enabled" to everything, PING included), logs an error naming the file, narrows its cache
// subscription to nothing, and serves again once the file is fixed: all in one sidecar process.

import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { DATA_POLICY, makeBench, startDirectVm, uuidFor, waitUntil } from './helpers.js';

t.setTimeout(60_000);

const GARBAGE = [
  Buffer.from([0x00, 0xff, 0xfe, 0x7b, 0x0a, 0x5b, 0x5b, 0x22, 0x0a, 0x80, 0x81]),
  'enabled = true\nallow = [\n',
  'enabled = "yes"\n',
  'enabled = true\nallow = ["physcpus", "cpuspeed"]\n',
  '', // an empty file is valid TOML: a policy that does not enable anything
];

t.test('garbage policy: fail closed, error names the file, fixed file served again, no restart', async (t) => {
  const bench = await makeBench(t, 'enabled = false\n');
  const policyFile = join(bench.policies, 'pg-vm.toml');
  await writeFile(policyFile, DATA_POLICY);
  const vm = await startDirectVm(t, bench, 'pg-vm', uuidFor(7));
  const pid = vm.sidecar.child.pid;
  t.match(await vm.guest.ask('loadavg'), /^1\.0 200 /);

  for (const [i, garbage] of GARBAGE.entries()) {
    const viaRename = i % 2 === 1;
    let from = vm.sidecar.lines.length;
    if (viaRename) {
      // An editor's or config manager's atomic replace.
      const temp = join(bench.dir, `garbage-${i}.toml`);
      await writeFile(temp, garbage);
      await rename(temp, policyFile);
    } else {
      await writeFile(policyFile, garbage);
    }
    const failed = await vm.sidecar.waitFor((l) => l['event'] === 'policy' && l['served'] === false, from);
    t.match(failed, { level: 40 }, `garbage #${i}: logged as a warning`);
    t.ok(String(failed['reason']).includes(policyFile), `garbage #${i}: the reason names the file: ${String(failed['reason'])}`);
    await vm.sidecar.waitFor((l) => l['event'] === 'cache-subscribed' && JSON.stringify(l['items']) === '[]', from);
    t.equal(await vm.guest.ask('loadavg'), '1.0 403 hostinfo is not enabled for this VM', `garbage #${i}: data refused`);
    t.equal(await vm.guest.ask('PING'), '1.0 403 hostinfo is not enabled for this VM', `garbage #${i}: PING refused`);

    from = vm.sidecar.lines.length;
    await writeFile(policyFile, DATA_POLICY);
    await vm.sidecar.waitFor((l) => l['event'] === 'policy' && l['served'] === true, from);
    await vm.sidecar.waitFor((l) => l['event'] === 'cache-subscribed' && JSON.stringify(l['items']) !== '[]', from);
    t.equal(await vm.guest.ask('PING'), '1.0 200 pong', `garbage #${i} fixed: served again`);
    // The cache re-sends its newest sample right after the subscription is acknowledged; the
    // guest's request travels another socket, so it may overtake that sample by a moment.
    const data = await waitUntil('loadavg served again', async () => {
      const reply = await vm.guest.ask('loadavg');
      return reply.startsWith('1.0 200 ') ? reply : undefined;
    }, 2_000);
    t.match(data, /^1\.0 200 \d/, `garbage #${i} fixed: data again`);
  }
  t.ok(vm.sidecar.running, 'the sidecar never stopped');
  t.equal(vm.sidecar.child.pid, pid, 'one sidecar process throughout');
  t.equal(vm.guest.connections, 1, 'the guest port was never reconnected');
  t.notOk(vm.sidecar.lines.some((l) => l['event'] === 'stopping'), 'no stop logged');
});
