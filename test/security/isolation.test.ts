// What crosses between VMs. Two staged VMs with different policies on one hostinfod: each
// sidecar receives only its own allowed host items (the daemon filters; the sidecar never sees
// the rest), the sidecar's user reaches neither the other VM nor the daemon, and a fuzz of guest
// requests (fixed seed) never gets a reply carrying the other VM's name or uuid, while vmcount is
// a bare count. (What a non-sidecar client of the control socket gets: daemon-attacks.test.ts.)

import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { findAccount } from '../../daemon/passwd.js';
import { ITEM_NAMES } from '../../policies/items.js';
import { connectAs, needsRootAndSetpriv, openAs, type As } from '../helpers/as-user.js';
import { readLogFile } from '../helpers/log-file.js';
import type { Teardown } from '../helpers/logged-process.js';
import { makeSite, stageVm, startBareDaemon, waitForSidecar, waitForSidecarLine, WIDE_GUEST_BUDGET, writePolicy, type Site, type StagedVm } from '../helpers/served-vm.js';

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

/** Asks until the reply matches (a state that arrives with the next sample), for at most 5 s. */
async function askUntil(vm: StagedVm, request: string, pattern: RegExp): Promise<string> {
  for (const deadline = Date.now() + 5_000; ;) {
    const reply = await vm.guest.ask(request);
    if (pattern.test(reply) || Date.now() > deadline) return reply;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const policyText = (tenant: Tenant): string => `enabled = true\nallow = ${JSON.stringify(tenant.allow)}\nburst = 10000\ninterval = 0.001\n`;

async function startTenants(t: Teardown): Promise<{ site: Site; vms: [StagedVm, StagedVm] }> {
  // The fuzz asks hundreds of times a second, one request at a time: past the default flood budget.
  const site = await makeSite(t, { policy: 'enabled = false\n', extraConfig: WIDE_GUEST_BUDGET });
  for (const tenant of [ALPHA, BRAVO]) await writePolicy(site, tenant.uuid, policyText(tenant));
  await startBareDaemon(t, site);
  const vms: [StagedVm, StagedVm] = [await stageVm(t, site, ALPHA.name, { uuid: ALPHA.uuid }), await stageVm(t, site, BRAVO.name, { uuid: BRAVO.uuid })];
  return { site, vms };
}

t.test('each sidecar is granted, and receives, only its own allowed items', async (t) => {
  const { site } = await startTenants(t);
  for (const tenant of [ALPHA, BRAVO]) {
    const own = tenant.allow.filter((item) => HOST_ITEMS.has(item)).sort();
    const entry = await waitForSidecar(site, tenant.name);
    t.same([...entry.items].sort(), [...tenant.allow].sort(), `${tenant.name}: status shows its own policy's items`);
    const access = await waitForSidecarLine(site, tenant.name, (line) => line['event'] === 'policy');
    t.same([...(access['items'] as string[])].sort(), [...tenant.allow].sort(), `${tenant.name}: the daemon's decision names its own items`);
    const data = await waitForSidecarLine(site, tenant.name, (line) => line['event'] === 'host-data');
    const received = [...(data['items'] as string[])].sort();
    t.same(received, own, `${tenant.name}: samples carry ${received.join(',')}: its host items, nothing else`);
  }
});

t.test('the sidecar user reaches neither the daemon nor any VM\'s sockets or logs', { skip: needsRootAndSetpriv }, async (t) => {
  const { site } = await startTenants(t);
  const entry = await waitForSidecar(site, ALPHA.name);
  const account = findAccount('hostinfo');
  t.equal(entry.sidecar.uid, account?.uid, 'sidecars run as the hostinfo user');
  // What a sidecar compromised through its guest could try: the same uid, no groups.
  const sidecarUser: As = { user: 'hostinfo', group: 'hostinfo', groups: 'none' };
  t.equal(connectAs(site.control, sidecarUser), 'EACCES', 'not the control socket');
  for (const tenant of [ALPHA, BRAVO]) {
    for (const socket of ['qmp.sock', 'guest.sock']) t.equal(connectAs(join(site.vms, tenant.name, socket), sidecarUser), 'EACCES', `not ${tenant.name}'s ${socket}`);
    t.equal(openAs(site.sidecarLog(tenant.name), sidecarUser), 'EACCES', `not ${tenant.name}'s log`);
  }
});

t.test('fuzzed guest requests never reveal the other VM; vmcount is a bare count', async (t) => {
  const { site, vms } = await startTenants(t);
  const command = fc.oneof(
    fc.constantFrom(...ITEM_NAMES, 'ping', 'help', 'version', 'HELP', 'VmCount', 'PING'),
    fc.stringMatching(/^[A-Za-z][A-Za-z0-9_-]{0,20}$/),
  );
  const arg = fc.oneof(fc.stringMatching(/^[!-~]{1,12}$/).filter((s) => !s.includes('"')), fc.constantFrom('tenant', 'alpha', 'bravo', 'uuid', '*', '..'));
  const request = fc.tuple(command, fc.array(arg, { maxLength: 3 })).map(([c, args]) => [c, ...args].join(' '));
  const secretsOf = (tenant: Tenant): string[] => [tenant.name, tenant.uuid, tenant.name.split('-')[1] ?? tenant.name, tenant.uuid.slice(0, 8)];
  const pairs: [StagedVm, Tenant, Tenant][] = [[vms[0], ALPHA, BRAVO], [vms[1], BRAVO, ALPHA]];
  for (const [index, [vm, own, other]] of pairs.entries()) {
    const requests = fc.sample(request, { seed: SEED + index, numRuns: REQUESTS_PER_GUEST });
    // A connection's first line is only answered when it starts with a known word (README): the
    // fuzzed ones come after it.
    t.equal(await vm.guest.ask('PING "first"'), '1.0 200 first');
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
    // Counted in the daemon's samples: the second VM is in the count from the sample after its adoption.
    t.equal(await askUntil(vm, 'vmcount', /^1\.0 200 2$/), '1.0 200 2', `${vm.name}: vmcount is a bare count`);
    t.equal(await vm.guest.ask('help'), `1.0 200 ping help version ${ITEM_NAMES.filter((item) => own.allow.includes(item)).join(' ')}`, `${vm.name}: HELP lists only its own items`);
  }
  // Items the other tenant may read are refused here, whatever the other policy says.
  t.equal(await vms[0].guest.ask('kernel'), '1.0 403 kernel is not permitted for this VM');
  t.equal(await vms[1].guest.ask('hostname'), '1.0 403 hostname is not permitted for this VM');
  // And each sidecar's audit lines (written, rate-bounded, before each reply) speak of its own VM only.
  for (const [vm, , other] of pairs) {
    const lines = await readLogFile(site.sidecarLog(vm.name));
    const audit = lines.filter((l) => l['event'] === 'request');
    t.ok(audit.length >= 20, `${vm.name}: ${audit.length} audit lines`);
    t.same(audit.filter((l) => l['vm'] !== vm.name), [], `${vm.name}: audit lines name only its own VM`);
    t.notOk(JSON.stringify(lines).includes(other.uuid), `${vm.name}: its log never mentions ${other.name}'s uuid`);
  }
});
