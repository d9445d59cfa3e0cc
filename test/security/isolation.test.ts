// What crosses between VMs. Two directly-run sidecars with different policies share one cache:
// each is subscribed to, and receives, only its own allowed items; raw subscribers get only what
// they asked for; and a fuzz of guest requests (fixed seed) never gets a reply carrying the other
// VM's name or uuid, while vmcount is a bare count.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { CacheClient } from '../../cache/client.js';
import type { ReceivedSample } from '../../cache/client.js';
import { ITEM_NAMES } from '../../policies/items.js';
import { withTimeout, type Teardown } from '../helpers/logged-process.js';
import { makeBench, startDirectVm, type DirectVm } from '../faults/helpers.js';

const SEED = 20261125;
const REQUESTS_PER_GUEST = 400;

interface Tenant {
  readonly name: string;
  readonly uuid: string;
  readonly allow: readonly string[];
}

const ALPHA: Tenant = { name: 'tenant-alpha-q7', uuid: 'a1a1a1a1-0000-4000-8000-00000000a1a1', allow: ['physcpus', 'loadavg', 'hostname', 'vmcount'] };
const BRAVO: Tenant = { name: 'tenant-bravo-z3', uuid: 'b2b2b2b2-0000-4000-8000-00000000b2b2', allow: ['physmem', 'uptime', 'kernel', 'vmcount', 'hypervisor'] };
const HOST_ITEMS = new Set(['physcpus', 'physcores', 'sockets', 'cpumodel', 'cpumhz', 'loadavg', 'cpuusage', 'pressure', 'physmem', 'swap', 'uptime', 'hostname', 'kernel', 'vmcount']);

t.setTimeout(90_000);

const policyText = (tenant: Tenant): string => `enabled = true\nallow = ${JSON.stringify(tenant.allow)}\nburst = 10000\ninterval = 0.001\n`;

async function startTenants(t: Teardown): Promise<{ bench: Awaited<ReturnType<typeof makeBench>>; vms: [DirectVm, DirectVm] }> {
  const bench = await makeBench(t, 'enabled = false\n');
  for (const tenant of [ALPHA, BRAVO]) await writeFile(join(bench.policies, `${tenant.uuid}.toml`), policyText(tenant));
  const vms: [DirectVm, DirectVm] = [await startDirectVm(t, bench, ALPHA.name, ALPHA.uuid), await startDirectVm(t, bench, BRAVO.name, BRAVO.uuid)];
  return { bench, vms };
}

t.test('each sidecar is subscribed to, and receives, only its own allowed items', async (t) => {
  const { vms } = await startTenants(t);
  for (const [vm, tenant] of [[vms[0], ALPHA], [vms[1], BRAVO]] as const) {
    const own = tenant.allow.filter((item) => HOST_ITEMS.has(item)).sort();
    const subscribed = await vm.sidecar.waitFor('cache-subscribed');
    t.same([...(subscribed['items'] as string[])].sort(), own, `${tenant.name}: subscribed to its host items only`);
    const data = await vm.sidecar.waitFor('cache-data');
    const received = data['items'] as string[];
    t.ok(received.every((item) => own.includes(item)), `${tenant.name}: received ${received.join(',')} ⊆ ${own.join(',')}`);
  }
});

t.test('raw subscribers: samples carry exactly the granted items', async (t) => {
  const bench = await makeBench(t);
  const asks: Record<string, readonly string[]> = {
    narrow: ['loadavg'],
    wide: ['hostname', 'physmem', 'kernel'],
    junk: ['nonsense', '../../etc/passwd', 'loadavg', 'PING', 'vcpudelay', 'hypervisor'],
    guestonly: ['vcpudelay', 'hypervisor', 'hosttime', 'loadavg'],
    nothing: [],
  };
  const clients = Object.entries(asks).map(([label, items], i) => {
    const client = new CacheClient({ socketPath: bench.cacheSocket, vm: { name: `raw-${label}`, uuid: `00000000-0000-4000-8000-00000000000${i}`, pid: 1 }, items, reconnect: false });
    const samples: ReceivedSample[] = [];
    let refused = '';
    // Three samples, or the daemon refusing the hello (and closing), whichever comes first.
    const settled = new Promise<void>((resolve) => {
      client.on('sample', (sample) => {
        samples.push(sample);
        if (samples.length >= 3) resolve();
      });
      client.on('refused', (error) => { refused = `${error.code}: ${error.message}`; });
      client.on('disconnected', () => resolve());
    });
    client.connect();
    t.teardown(() => client.close());
    return { label, items, samples, settled, refused: () => refused };
  });
  await withTimeout(Promise.all(clients.map((c) => c.settled)), 'three samples or a refusal for every raw subscriber', 10_000);
  for (const { label, items, samples, refused } of clients) {
    const granted = items.filter((item) => HOST_ITEMS.has(item));
    if (refused() !== '') {
      t.equal(samples.length, 0, `${label}: hello refused (${refused()}) and nothing sent`);
      continue;
    }
    t.ok(samples.length >= 3, `${label}: ${samples.length} samples`);
    for (const sample of samples) {
      const keys = Object.keys(sample.snapshot.values);
      t.ok(keys.every((key) => granted.includes(key)), `${label}: sample ${sample.seq} has ${keys.join(',') || 'no items'} ⊆ ${granted.join(',') || 'nothing'}`);
    }
  }
  t.equal(clients.filter((c) => c.refused() === '').length >= 2, true, 'the well-formed subscriptions were served');
});

t.test('fuzzed guest requests never reveal the other VM; vmcount is a bare count', async (t) => {
  const { vms } = await startTenants(t);
  const command = fc.oneof(
    fc.constantFrom(...ITEM_NAMES, 'ping', 'help', 'version', 'HELP', 'VmCount', 'PING'),
    fc.stringMatching(/^[A-Za-z][A-Za-z0-9_-]{0,20}$/),
  );
  const arg = fc.oneof(fc.stringMatching(/^[!-~]{1,12}$/).filter((s) => !s.includes('"')), fc.constantFrom('tenant', 'alpha', 'bravo', 'uuid', '*', '..'));
  const request = fc.tuple(command, fc.array(arg, { maxLength: 3 })).map(([c, args]) => [c, ...args].join(' '));
  const secretsOf = (tenant: Tenant): string[] => [tenant.name, tenant.uuid, tenant.name.split('-')[1] ?? tenant.name, tenant.uuid.slice(0, 8)];
  for (const [index, [vm, other]] of [[vms[0], BRAVO], [vms[1], ALPHA]].entries() as IterableIterator<[number, [DirectVm, Tenant]]>) {
    const requests = fc.sample(request, { seed: SEED + index, numRuns: REQUESTS_PER_GUEST });
    const leaks: string[] = [];
    const malformed: string[] = [];
    for (const req of requests) {
      const reply = await vm.guest.ask(req);
      if (!/^1\.0 \d{3} [ -~]*$/.test(reply)) malformed.push(`${req} -> ${reply}`);
      for (const secret of secretsOf(other)) {
        if (reply.toLowerCase().includes(secret.toLowerCase()) && !req.toLowerCase().includes(secret.toLowerCase())) leaks.push(`${req} -> ${reply}`);
      }
    }
    t.same(leaks, [], `${vm.name}: ${requests.length} requests (seed ${SEED + index}), no reply names ${other.name} or its uuid`);
    t.same(malformed, [], `${vm.name}: every reply one well-formed line`);
    t.equal(await vm.guest.ask('vmcount'), '1.0 200 2', `${vm.name}: vmcount is a bare count`);
    t.equal(await vm.guest.ask('help'), `1.0 200 ping help version ${ITEM_NAMES.filter((item) => (vm.name === ALPHA.name ? ALPHA : BRAVO).allow.includes(item)).join(' ')}`, `${vm.name}: HELP lists only its own items`);
  }
  // Items the other tenant may read are refused here, whatever the other policy says.
  t.equal(await vms[0].guest.ask('kernel'), '1.0 403 kernel is not permitted for this VM');
  t.equal(await vms[1].guest.ask('hostname'), '1.0 403 hostname is not permitted for this VM');
  // And each sidecar's audit lines speak of its own VM only.
  for (const [vm, other] of [[vms[0], BRAVO], [vms[1], ALPHA]] as const) {
    const foreign = vm.sidecar.lines.filter((l) => l['event'] === 'request' && l['vm'] !== vm.name);
    t.equal(foreign.length, 0, `${vm.name}: audit lines name only its own VM`);
    t.notOk(vm.sidecar.stderr.includes(other.uuid), `${vm.name}: its log never mentions ${other.name}'s uuid`);
  }
});
