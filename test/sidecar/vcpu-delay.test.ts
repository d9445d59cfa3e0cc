import { readdir } from 'node:fs/promises';
import t from 'tap';
import { delayPercent, parseRunDelayNs, readRunDelays } from '../../sidecar/vcpu-delay.js';

t.test('schedstat parsing takes the second field', async (t) => {
  t.equal(parseRunDelayNs('149102965 10241641 353\n'), 10241641);
  t.equal(parseRunDelayNs('0 0 1'), 0);
  t.equal(parseRunDelayNs(''), undefined);
  t.equal(parseRunDelayNs('12'), undefined);
  t.equal(parseRunDelayNs('1 -5 2'), undefined);
  t.equal(parseRunDelayNs('1 x 2'), undefined);
});

t.test('percent of vCPU count x interval spent waiting', async (t) => {
  const before = { atNs: 0n, delays: new Map([[10, 1_000], [11, 5_000]]) };
  const after = { atNs: 1_000_000_000n, delays: new Map([[10, 1_000 + 30_000_000], [11, 5_000 + 10_000_000]]) };
  t.equal(delayPercent(before, after), 2, '40 ms waited over 2 vCPUs x 1 s');
});

t.test('threads seen in only one reading, or going backwards, are left out', async (t) => {
  const before = { atNs: 0n, delays: new Map([[10, 0], [12, 500]]) };
  const after = { atNs: 100n, delays: new Map([[10, 50], [11, 99], [12, 100]]) };
  t.equal(delayPercent(before, after), 50);
  t.equal(delayPercent(before, { atNs: 100n, delays: new Map([[99, 1]]) }), undefined, 'no common thread');
  t.equal(delayPercent(before, { atNs: 0n, delays: after.delays }), undefined, 'no elapsed time');
  t.equal(delayPercent({ atNs: 0n, delays: new Map([[1, 0]]) }, { atNs: 10n, delays: new Map([[1, 1000]]) }), 100, 'capped at 100');
});

t.test('reads real schedstat files of real threads', async (t) => {
  const tids = (await readdir(`/proc/${process.pid}/task`)).map(Number);
  const reading = await readRunDelays(process.pid, [...tids, 2 ** 22 + 7]);
  t.same([...reading.delays.keys()].sort((a, b) => a - b), [...tids].sort((a, b) => a - b), 'a vanished thread has no reading');
  for (const delay of reading.delays.values()) t.ok(Number.isSafeInteger(delay) && delay >= 0);
});
