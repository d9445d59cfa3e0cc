import t from 'tap';
import { delayPercent } from '../../sidecar/vcpu-delay.js';

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
