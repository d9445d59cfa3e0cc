// The protocol-neutral item service: every item's typed value, and each way to have none
// (forbidden, not known yet, unknown to this host, stale, a meter that says why).

import t from 'tap';
import type { Access } from '../../policies/access.js';
import { ITEM_NAMES, type ItemName } from '../../policies/items.js';
import { answerItem, answerPermitted, type HeldSample, type ItemAnswer, type ItemContext } from '../../sidecar/items/item-service.js';
import type { ItemValues, VmFacts } from '../../sidecar/items/vm-values.js';

const NOW = 52_301_007;
const WALL = 1_795_613_704_391;

const SAMPLE: HeldSample = {
  receivedAt: NOW - 400,
  values: {
    physcpus: 16, physcores: 8, sockets: 1, cpumodel: 'AMD EPYC', cpumhz: 2450, loadavg: [0.5, 0.4, 0.3],
    cpuusage: { user: 1, system: 2, iowait: 3, steal: 4, idle: 90 }, pressure: { cpu: 1, memory: 2, io: 3 },
    physmem: { total: 100, free: 10, available: 50 }, swap: { total: 0, free: 0 }, uptime: 99.5, hostname: 'host01', kernel: '6.1', vmcount: 3,
    pagedin: 4821, pagedout: 9182, hostcputime: 1234.56,
  },
};

const VM: VmFacts = {
  hypervisor: 'QEMU 7.2.22',
  vcpuDelay: { percent: 2.5, measuredAt: NOW - 100 },
  name: 'web1',
  uuid: '5c1d0f6e-8a7b-4c3d-9e2f-0a1b2c3d4e5f',
  vcpus: 2,
  cpuTime: { value: 12.34, measuredAt: NOW - 100 },
  vcpuUsage: { value: 50, measuredAt: NOW - 100 },
  memory: { value: { total: 262144, balloon: 131072 }, measuredAt: NOW - 100 },
  cpuLimit: { value: null, measuredAt: NOW - 100 },
  memLimit: { value: 1048576, measuredAt: NOW - 100 },
  session: { value: '3f9a1c0e5b7d2a64' },
};

const served = (items: readonly ItemName[] = ITEM_NAMES): Access => ({ served: true, policy: { file: '/p', enabled: true, items, limit: { intervalMs: 1000, burst: 1 } } });

function context(overrides: Partial<ItemContext> = {}): ItemContext {
  return { access: served(), sample: SAMPLE, vm: VM, maxAgeMs: 5000, now: NOW, wallNow: WALL, ...overrides };
}

t.test('every item\'s typed value', async (t) => {
  const expected: ItemValues = {
    ...(SAMPLE.values as Required<typeof SAMPLE.values>),
    hosttime: WALL, hypervisor: 'QEMU 7.2.22', vcpudelay: 2.5, vmcputime: 12.34, vmcpuusage: 50, vcpus: 2,
    vmmem: { total: 262144, balloon: 131072 }, cpulimit: null, memlimit: 1048576, vmname: 'web1', vmuuid: '5c1d0f6e-8a7b-4c3d-9e2f-0a1b2c3d4e5f',
    vmsession: '3f9a1c0e5b7d2a64',
  };
  for (const item of ITEM_NAMES) t.same(answerItem(context(), item), { kind: 'value', item, value: expected[item] }, item);
});

t.test('forbidden: outside the policy, or the VM not served at all', async (t) => {
  t.same(answerItem(context({ access: served(['physcpus']) }), 'vmname'), { kind: 'forbidden', item: 'vmname' });
  t.same(answerItem(context({ access: { served: false, reason: 'off' } }), 'physcpus'), { kind: 'forbidden', item: 'physcpus' });
  t.same(answerPermitted(context({ access: { served: false, reason: 'off' } })), []);
});

t.test('unavailable, with why', async (t) => {
  const why = (ctx: ItemContext, item: ItemName): string | undefined => {
    const answer: ItemAnswer = answerItem(ctx, item);
    return answer.kind === 'unavailable' ? answer.why : `not unavailable: ${answer.kind}`;
  };
  const nothing = context({ sample: undefined, vm: { hypervisor: undefined, vcpuDelay: undefined } });
  t.equal(why(nothing, 'physcpus'), 'no sample from the host cache yet');
  t.equal(why(context({ sample: { receivedAt: NOW, values: {} } }), 'pressure'), 'pressure is not available on this host');
  t.equal(why(context({ sample: { ...SAMPLE, receivedAt: NOW - 5001 } }), 'physcpus'), 'newest sample is 5.0 s old');
  t.equal(why(nothing, 'hypervisor'), 'hypervisor version not known (no QMP socket for this VM)');
  t.equal(why(nothing, 'vcpudelay'), 'no vCPU measurement yet');
  t.equal(why(nothing, 'vmcputime'), 'no CPU time measurement yet');
  t.equal(why(nothing, 'vmcpuusage'), 'no vCPU measurement yet');
  t.equal(why(nothing, 'vcpus'), 'vCPU threads not known');
  t.equal(why(nothing, 'vmmem'), 'no memory size from QMP yet');
  t.equal(why(nothing, 'cpulimit'), 'no cgroup reading yet');
  t.equal(why(nothing, 'memlimit'), 'no cgroup reading yet');
  t.equal(why(nothing, 'vmname'), 'this VM has no name (QEMU was started without -name)');
  t.equal(why(nothing, 'vmuuid'), 'this VM has no UUID (QEMU was started without -uuid)');
  t.equal(why(nothing, 'vmsession'), 'QEMU process not identified yet');
  t.equal(why(context({ sample: { receivedAt: NOW, values: {} } }), 'pagedin'), 'pagedin is not available on this host');
  t.equal(why(context({ sample: { ...SAMPLE, receivedAt: NOW - 5001 } }), 'hostcputime'), 'newest sample is 5.0 s old', 'host counters age like every sample');
  t.same(answerItem(nothing, 'hosttime'), { kind: 'value', item: 'hosttime', value: WALL }, 'hosttime needs nothing');

  const said = context({ vm: { ...VM, memory: { why: 'no QMP socket for this VM' }, cpuLimit: { why: 'no cgroup hierarchy with the cpu controller under /x' } } });
  t.equal(why(said, 'vmmem'), 'no QMP socket for this VM', 'a meter\'s own reason is passed on');
  t.equal(why(said, 'cpulimit'), 'no cgroup hierarchy with the cpu controller under /x');
  const old = context({ vm: { ...VM, cpuTime: { value: 1, measuredAt: NOW - 6000 }, vcpuUsage: { value: 1, measuredAt: NOW - 5000 } } });
  t.equal(why(old, 'vmcputime'), 'newest sample is 6.0 s old', 'meters age like host samples');
  t.same(answerItem(old, 'vmcpuusage'), { kind: 'value', item: 'vmcpuusage', value: 1 }, 'exactly max_age is still fresh');
  t.same(answerItem(old, 'vmsession'), { kind: 'value', item: 'vmsession', value: '3f9a1c0e5b7d2a64' }, 'the session does not age: it is a fact of the process');
  t.equal(why(context({ vm: { ...VM, session: { why: '/proc/123/stat has no start time (process ended)' } } }), 'vmsession'), '/proc/123/stat has no start time (process ended)');
});

t.test('answerPermitted: every permitted item in catalogue order, whatever order the policy lists', async (t) => {
  const ctx = context({ access: served(['vmuuid', 'physcpus', 'pressure']), sample: { receivedAt: NOW, values: { physcpus: 4 } } });
  t.same(answerPermitted(ctx), [
    { kind: 'value', item: 'physcpus', value: 4 },
    { kind: 'unavailable', item: 'pressure', why: 'pressure is not available on this host' },
    { kind: 'value', item: 'vmuuid', value: '5c1d0f6e-8a7b-4c3d-9e2f-0a1b2c3d4e5f' },
  ]);
});
