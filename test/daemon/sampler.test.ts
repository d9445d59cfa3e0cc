import t from 'tap';
import { HOST_ITEM_NAMES } from '../../policies/items.js';
import { HostSampler } from '../../daemon/sampler.js';

t.test('a snapshot merges inventory, hot counters and vmcount, in catalogue order', async (t) => {
  let vms = 3;
  const sampler = new HostSampler({ hot: { collect: () => ({ uptime: 5, physcpus: 2 }) }, vmCount: () => vms, now: () => 1000 });
  sampler.setInventory({ kernel: '6.1.0', physcores: 1 });
  const snapshot = sampler.sample();
  t.same(snapshot, { takenAt: 1000, values: { physcpus: 2, physcores: 1, uptime: 5, kernel: '6.1.0', vmcount: 3 } });
  t.same(Object.keys(snapshot.values), HOST_ITEM_NAMES.filter((name) => name in snapshot.values));
  vms = 0;
  t.equal(sampler.sample().values.vmcount, 0, 'zero VMs is a true count, not an absence');
});

t.test('takenAt never goes backwards when the wall clock is stepped back', async (t) => {
  const times = [1000, 2000, 1500, 2500];
  const sampler = new HostSampler({ hot: { collect: () => ({}) }, vmCount: () => 0, now: () => times.shift() ?? 0 });
  t.same([1, 2, 3, 4].map(() => sampler.sample().takenAt), [1000, 2000, 2000, 2500]);
});
