// A policy change must not carry the old policy's rate-limit debt into the new one. Under burst B
// and interval I a guest can never be told to wait more than I (README: "with none left the reply
// is 429 with the exact wait"; a bucket of B tokens refills one per interval). The sidecar keeps
// its limiter state across policy reloads unchanged, so a guest that used a generous policy is
// locked out for the whole debt it ran up there, in the OLD policy's units, once the policy is
// tightened: here ~20 s after 20,000 requests at interval 1 ms, and up to burst x interval of the
// old policy in general (days for burst = 1e9).

import t from 'tap';
import { changePolicy, startHost, startVm } from './live.js';

t.test('tightening a policy: the first 429 asks for at most one new interval', async (t) => {
  // 20,000 lines in one write: past the default flood budget, which is not what this is about.
  const host = await startHost(t, { budget: 'wide' });
  const vm = await startVm(t, host, 'tighten1', 'enabled = true\nburst = 1000000\ninterval = 0.001\n');
  const requests = 20_000;
  const target = vm.guest.lines + requests;
  let ok = 0;
  vm.guest.onLine = (line) => { if (line.startsWith('1.0 200 ')) ok += 1; };
  await vm.guest.send('PING\n'.repeat(requests));
  await vm.guest.untilLines(target, 'the replies under the generous policy');
  t.equal(ok, requests, 'all answered under burst 1000000');
  vm.guest.onLine = () => {};

  await changePolicy(host, vm, 'enabled = true\nburst = 1\ninterval = 1\n');
  const first = await vm.guest.ask('PING');
  const retry = /^1\.0 429 too many requests; retry after (\d+) ms$/.exec(first)?.[1];
  t.comment(`first reply under burst 1, interval 1 s: ${first}`);
  t.ok(retry === undefined || Number(retry) <= 1000, `the wait is at most one interval of the new policy (got ${JSON.stringify(first)})`);
});
