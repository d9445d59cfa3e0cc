import { hostname, release } from 'node:os';
import t from 'tap';
import { inventoryFrom, loadStaticInventory } from '../../daemon/static-inventory.js';

t.test('systeminformation facts map to items', async (t) => {
  t.same(inventoryFrom({ manufacturer: 'AMD', brand: 'EPYC 7B13 64-Core Processor', speed: 2.45, physicalCores: 64, processors: 2 }, 'host01', '6.1.0-56-cloud-amd64'), {
    physcores: 64, sockets: 2, cpumodel: 'AMD EPYC 7B13 64-Core Processor', cpumhz: 2450, hostname: 'host01', kernel: '6.1.0-56-cloud-amd64',
  });
});

t.test('unknowns are left out, never zero', async (t) => {
  t.same(inventoryFrom({ manufacturer: '', brand: '', speed: 0, physicalCores: 0, processors: Number.NaN }, '', ''), {});
});

t.test('the vendor is not doubled, and text is printable ASCII', async (t) => {
  t.equal(inventoryFrom({ manufacturer: 'Intel', brand: 'Intel® Xeon®  Gold\t6338' }, 'h', 'k').cpumodel, 'Intel Xeon Gold 6338');
  t.equal(inventoryFrom({ manufacturer: 'ARM' }, 'h', 'k').cpumodel, 'ARM');
});

t.test('a failing systeminformation loses only the CPU items', async (t) => {
  const values = await loadStaticInventory({ cpu: () => Promise.reject(new Error('no lscpu')), hostname: () => 'h', release: () => 'r' });
  t.same(values, { hostname: 'h', kernel: 'r' });
});

t.test('the real machine', async (t) => {
  const values = await loadStaticInventory();
  t.equal(values.hostname, hostname());
  t.equal(values.kernel, release());
  t.ok(values.physcores === undefined || values.physcores >= 1);
  t.ok(values.sockets === undefined || values.sockets >= 1);
});
