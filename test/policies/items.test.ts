import t from 'tap';
import { DEFAULT_ALLOWED_ITEMS, HOST_ITEM_NAMES, ITEMS, ITEM_NAMES, isHostItemName, isItemName } from '../../policies/items.js';

t.test('the default allow list is exactly the one the policy format documents', async (t) => {
  t.same([...DEFAULT_ALLOWED_ITEMS].sort(), [
    'cpulimit', 'cpuusage', 'hostcputime', 'loadavg', 'memlimit', 'physcores', 'physcpus', 'physmem', 'pressure', 'sockets', 'uptime', 'vcpudelay', 'vcpus', 'vmcputime', 'vmcpuusage', 'vmmem', 'vmsession',
  ]);
});

t.test('sensitive items are never allowed by default', async (t) => {
  const sensitive = ITEM_NAMES.filter((name) => ITEMS[name].sensitive);
  t.same(sensitive, ['hostname', 'kernel', 'vmcount']);
  for (const name of sensitive) t.notOk(DEFAULT_ALLOWED_ITEMS.includes(name), name);
});

t.test('per-VM items are not sampled by the host cache', async (t) => {
  const perVm = ['hosttime', 'hypervisor', 'vcpudelay', 'vmcputime', 'vmcpuusage', 'vcpus', 'vmmem', 'cpulimit', 'memlimit', 'vmname', 'vmuuid', 'vmsession'];
  t.same(ITEM_NAMES.filter((name) => !isHostItemName(name)), perVm);
  t.equal(HOST_ITEM_NAMES.length + perVm.length, ITEM_NAMES.length);
});

t.test('items added after the first release come last: what guests parse keeps its place', async (t) => {
  t.same(ITEM_NAMES.slice(17, 25), ['vmcputime', 'vmcpuusage', 'vcpus', 'vmmem', 'cpulimit', 'memlimit', 'vmname', 'vmuuid'], 'the per-VM items of issue 11');
  t.same(ITEM_NAMES.slice(25), ['pagedin', 'pagedout', 'hostcputime', 'vmsession'], 'then the rest of the SAP set and vmsession');
  t.same(ITEM_NAMES.slice(0, 17), [
    'physcpus', 'physcores', 'sockets', 'cpumodel', 'cpumhz', 'loadavg', 'cpuusage', 'pressure', 'physmem', 'swap', 'uptime',
    'hosttime', 'hostname', 'kernel', 'hypervisor', 'vcpudelay', 'vmcount',
  ]);
});

t.test('item names are recognised exactly, not through the prototype chain', async (t) => {
  t.ok(isItemName('physcpus'));
  t.notOk(isItemName('PHYSCPUS'));
  t.notOk(isItemName('toString'));
  t.notOk(isItemName('__proto__'));
  t.notOk(isHostItemName('constructor'));
});
