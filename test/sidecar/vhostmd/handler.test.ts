// The vhostmd request path at exact instants: the document and its metrics against the item
// service, the policy deciding which metrics exist, a disabled VM's empty document, the rate limit
// answered at once with the cached reply (one token bucket with the line port), invalid requests.
// xmllint judges every document.

import fc from 'fast-check';
import t from 'tap';
import type { Access } from '../../../policies/access.js';
import { DEFAULT_ALLOWED_ITEMS, ITEM_NAMES, type ItemName } from '../../../policies/items.js';
import { FRESH_LIMITER } from '../../../policies/rate-limiter.js';
import { GuestLineDecoder } from '../../../sidecar/protocol/line-decoder.js';
import { handleGuestFrame, type HeldSample, type VmFacts } from '../../../sidecar/request-handler.js';
import { handleVhostmdRequest, VHOSTMD_NOT_ENABLED, type VhostmdContext } from '../../../sidecar/vhostmd/handler.js';
import { METRICS } from '../../../sidecar/vhostmd/metrics.js';
import { INVALID_REQUEST_REPLY, METRICS_END } from '../../../sidecar/vhostmd/xml.js';
import { metricLines, metricValues, xmllintProblem, xpathString } from './xmllint.js';

const WALL = 1_795_613_704_391;
const NOW = 52_301_007;
const UUID = '5c1d0f6e-8a7b-4c3d-9e2f-0a1b2c3d4e5f';
const GET = { kind: 'get' } as const;

const SAMPLE: HeldSample = {
  receivedAt: NOW - 400,
  values: {
    physcpus: 16, physcores: 8, sockets: 1, cpumodel: 'AMD EPYC 7B13 64-Core Processor', cpumhz: 2450,
    loadavg: [0.52, 0.48, 0.4], cpuusage: { user: 12.5, system: 3.1, iowait: 0.2, steal: 0, idle: 84.2 },
    pressure: { cpu: 1.2, memory: 0, io: 0.35 }, physmem: { total: 16303932, free: 123456, available: 9876543 },
    swap: { total: 2097148, free: 1048572 }, uptime: 123456.78, hostname: 'host01', kernel: '6.1.0-56-cloud-amd64', vmcount: 12,
    pagedin: 48213376, pagedout: 91822040, hostcputime: 1234567.891,
  },
};

const VM: VmFacts = {
  hypervisor: 'QEMU 7.2.22', vcpuDelay: { percent: 2.35, measuredAt: NOW - 900 }, name: 'web1', uuid: UUID, vcpus: 2,
  cpuTime: { value: 1234.5678, measuredAt: NOW - 900 }, vcpuUsage: { value: 37.5, measuredAt: NOW - 900 },
  memory: { value: { total: 262144, balloon: null }, measuredAt: NOW - 900 },
  cpuLimit: { value: 1.5, measuredAt: NOW - 900 }, memLimit: { value: null, measuredAt: NOW - 900 },
};

function served(items: readonly ItemName[] = ITEM_NAMES, burst = 1000, intervalMs = 1000): Access {
  return { served: true, policy: { file: '/p/vm.toml', enabled: true, items, limit: { intervalMs, burst } } };
}

function context(overrides: Partial<VhostmdContext> = {}): VhostmdContext {
  return { access: served(), limiter: FRESH_LIMITER, lastReply: undefined, sample: SAMPLE, vm: VM, maxAgeMs: 5000, now: NOW, wallNow: WALL, ...overrides };
}

t.test('every metric, with every item allowed: the whole document', async (t) => {
  const outcome = handleVhostmdRequest(context(), GET);
  const vm = `context='vm' id='1' uuid='${UUID}'`;
  t.equal(outcome.reply, [
    '<metrics>',
    "<metric type='string' context='host' unit='none'><name>HostName</name><value>host01</value></metric>",
    "<metric type='int64' context='host' unit='s'><name>Time</name><value>1795613704</value></metric>",
    "<metric type='string' context='host' unit='none'><name>VirtualizationVendor</name><value>QEMU</value></metric>",
    "<metric type='string' context='host' unit='none'><name>VirtProductInfo</name><value>7.2.22</value></metric>",
    "<metric type='string' context='host' unit='none'><name>HostSystemInfo</name><value>Linux 6.1.0-56-cloud-amd64</value></metric>",
    "<metric type='uint32' context='host' unit='CPUs'><name>NumberOfPhysicalCPUs</name><value>16</value></metric>",
    "<metric type='uint64' context='host' unit='MiB'><name>MemoryAllocatedToVirtualServers</name><value>6276</value></metric>",
    "<metric type='uint64' context='host' unit='MiB'><name>FreePhysicalMemory</name><value>120</value></metric>",
    "<metric type='uint64' context='host' unit='MiB'><name>FreeVirtualMemory</name><value>1023</value></metric>",
    "<metric type='uint64' context='host' unit='MiB'><name>UsedVirtualMemory</name><value>1024</value></metric>",
    "<metric type='uint64' context='host' unit='MiB'><name>PagedInMemory</name><value>47083</value></metric>",
    "<metric type='uint64' context='host' unit='MiB'><name>PagedOutMemory</name><value>89669</value></metric>",
    "<metric type='real64' context='host' unit='s'><name>TotalCPUTime</name><value>1234567.89</value></metric>",
    `<metric type='real64' ${vm} unit='s'><name>TotalCPUTime</name><value>1234.57</value></metric>`,
    `<metric type='real64' ${vm} unit='CPUs'><name>ResourceProcessorLimit</name><value>1.50</value></metric>`,
    `<metric type='uint64' ${vm} unit='MiB'><name>ResourceMemoryLimit</name><value>256</value></metric>`,
    `<metric type='uint64' ${vm} unit='MiB'><name>PhysicalMemoryAllocatedToVirtualSystem</name><value>256</value></metric>`,
    '</metrics>',
    '',
    '',
  ].join('\n'));
  t.same(outcome.audit, { command: 'vhostmd', status: 200 });
  t.same(outcome.lastReply, { document: outcome.reply, items: ITEM_NAMES }, 'remembered, with the items it was made from');
  t.equal(xmllintProblem(outcome.reply), undefined, 'xmllint: well-formed');
  t.equal(outcome.reply.indexOf('\n\n'), outcome.reply.length - 2, 'the only blank line is the end');
  t.equal(metricLines(outcome.reply).length, METRICS.length, 'every metric of the table');
});

t.test('limits: the tighter of vCPUs and the cgroup; a balloon; the VM\'s uuid only with vmuuid', async (t) => {
  const vm: VmFacts = { ...VM, cpuLimit: { value: null, measuredAt: NOW }, memLimit: { value: 131072, measuredAt: NOW }, memory: { value: { total: 262144, balloon: 196608 }, measuredAt: NOW } };
  const values = metricValues(handleVhostmdRequest(context({ vm }), GET).reply);
  t.equal(values.get('vm:ResourceProcessorLimit'), '2.00', 'no quota: the vCPUs');
  t.equal(values.get('vm:ResourceMemoryLimit'), '128', 'memory.max below the RAM');
  t.equal(values.get('vm:PhysicalMemoryAllocatedToVirtualSystem'), '192', 'what the balloon leaves');
  const without = metricLines(handleVhostmdRequest(context({ access: served(ITEM_NAMES.filter((item) => item !== 'vmuuid')) }), GET).reply);
  t.ok(without.filter((m) => m.context === 'vm').every((m) => m.uuid === '00000000-0000-0000-0000-000000000000' && m.id === '1'), 'the nil uuid when vmuuid is not permitted');
});

t.test('the policy decides which metrics exist', async (t) => {
  const policies: Array<[string, readonly ItemName[]]> = [['default allow', DEFAULT_ALLOWED_ITEMS], ['none', []], ['hostname only', ['hostname']], ['vcpus without cpulimit', ['vcpus', 'vmmem']]];
  for (const [label, items] of policies) {
    const reply = handleVhostmdRequest(context({ access: served(items) }), GET).reply;
    t.equal(xmllintProblem(reply), undefined, `${label}: well-formed`);
    const names = metricLines(reply).map((m) => `${m.context}:${m.name}`);
    const expected = METRICS.filter((m) => m.sources.every((source) => items.includes(source))).map((m) => `${m.context}:${m.name}`);
    t.same(names, expected, `${label}: exactly the metrics whose sources are all permitted`);
  }
  const defaults = metricValues(handleVhostmdRequest(context({ access: served(DEFAULT_ALLOWED_ITEMS) }), GET).reply);
  t.notOk(defaults.has('host:HostName'), 'HostName needs hostname, which is sensitive');
  t.ok(defaults.has('host:NumberOfPhysicalCPUs') && defaults.has('vm:TotalCPUTime'), 'the default policy gets CPU and memory figures');
  t.notMatch(handleVhostmdRequest(context({ access: served(['physcpus']) }), GET).reply, /host01|6\.1\.0|QEMU|5c1d0f6e/, 'nothing of a forbidden item leaks');
});

t.test('a metric whose source has no value now is left out', async (t) => {
  const noSample = metricValues(handleVhostmdRequest(context({ sample: undefined }), GET).reply);
  t.same([...noSample.keys()].filter((key) => key.startsWith('host:')), ['host:Time', 'host:VirtualizationVendor', 'host:VirtProductInfo'], 'without a host sample only what the sidecar knows');
  t.ok(noSample.has('vm:TotalCPUTime'));
  const stale = metricValues(handleVhostmdRequest(context({ vm: { ...VM, cpuTime: { value: 1, measuredAt: NOW - 60_000 } } }), GET).reply);
  t.notOk(stale.has('vm:TotalCPUTime'), 'a stale measurement is not served');
  const noQmp = metricValues(handleVhostmdRequest(context({ vm: { ...VM, memory: { why: 'no QMP' } } }), GET).reply);
  t.notOk(noQmp.has('vm:ResourceMemoryLimit') || noQmp.has('vm:PhysicalMemoryAllocatedToVirtualSystem'), 'no vmmem: neither memory metric');
});

t.test('escaping: markup, quotes, controls, NULs and lone surrogates never break the document', async (t) => {
  const hostname = "a<b>&c'd\"e\n\nf\0g\u0007h\ud800i\u00e9\u{1f600}--";
  const sample: HeldSample = { ...SAMPLE, values: { ...SAMPLE.values, hostname, kernel: '</value></metric></metrics>\n\n' } };
  const reply = handleVhostmdRequest(context({ sample, vm: { ...VM, uuid: "x'/><evil" } }), GET).reply;
  t.equal(xmllintProblem(reply), undefined, 'well-formed');
  t.equal(reply.indexOf('\n\n'), reply.length - 2, 'no blank line before the end');
  t.notOk(reply.includes('\0'), 'no NUL');
  t.equal(xpathString(reply, "//metric[name='HostName']/value"), "a<b>&c'd\"e??f?g?h?i\u00e9\u{1f600}--", 'xmllint reads the value back: markup intact, controls as ?');
  t.equal(xpathString(reply, "//metric[name='HostSystemInfo']/value"), 'Linux </value></metric></metrics>??');
  t.equal(xpathString(reply, "//metric[name='TotalCPUTime']/@uuid"), "x'/><evil", 'an attribute too');
});

t.test('a VM that is not served gets the empty document, no token taken', async (t) => {
  const limiter = { fullAt: NOW + 5 };
  const outcome = handleVhostmdRequest(context({ access: { served: false, reason: 'policy says no' }, limiter }), GET);
  t.equal(outcome.reply, `<metrics>\n<!-- ${VHOSTMD_NOT_ENABLED} -->\n${METRICS_END}`);
  t.equal(xmllintProblem(outcome.reply), undefined);
  t.same(outcome.audit, { command: 'vhostmd', status: 403 });
  t.equal(outcome.limiter, limiter);
  t.equal(outcome.lastReply, undefined);
});

t.test('rate limited: the last document at once, counted as a 429', async (t) => {
  const access = served(ITEM_NAMES, 1, 1000);
  const first = handleVhostmdRequest(context({ access }), GET);
  t.equal(first.audit.status, 200);
  const later = { ...SAMPLE, values: { ...SAMPLE.values, physcpus: 99 } };
  const second = handleVhostmdRequest(context({ access, limiter: first.limiter, lastReply: first.lastReply, sample: later, now: NOW + 10 }), GET);
  t.same(second.audit, { command: 'vhostmd', status: 429 });
  t.equal(second.reply, first.reply, 'the cached reply, byte for byte (not the newer sample)');
  t.same(second.limiter, first.limiter, 'a refused request takes nothing');
  t.equal(second.lastReply, first.lastReply);
  const third = handleVhostmdRequest(context({ access, limiter: second.limiter, lastReply: second.lastReply, sample: later, now: NOW + 1000 }), GET);
  t.equal(third.audit.status, 200, 'one interval later: a fresh document');
  t.equal(metricValues(third.reply).get('host:NumberOfPhysicalCPUs'), '99');

  const none = handleVhostmdRequest(context({ access, limiter: first.limiter, now: NOW + 10 }), GET);
  t.match(none.reply, /^<metrics>\n<!-- rate limited and no earlier reply to repeat: retry after 990 ms -->\n<\/metrics>\n\n$/, 'nothing to repeat: an empty document saying so');
  t.equal(xmllintProblem(none.reply), undefined);
  t.equal(none.audit.status, 429);

  const narrower = served(['physcpus'], 1, 1000);
  const changed = handleVhostmdRequest(context({ access: narrower, limiter: first.limiter, lastReply: first.lastReply, now: NOW + 10 }), GET);
  t.notMatch(changed.reply, /host01/, 'a document made under wider items is not repeated after the policy narrowed');
  t.match(changed.reply, /rate limited/);
});

t.test('one token bucket with the line port', async (t) => {
  const access = served(ITEM_NAMES, 1, 1000);
  const [frame] = new GuestLineDecoder().push(Buffer.from('physcpus\n'));
  const line = handleGuestFrame({ ...context({ access }), version: '0' }, frame!);
  t.match(line.reply, /^1\.0 200 16\n$/);
  const vhostmd = handleVhostmdRequest(context({ access, limiter: line.limiter }), GET);
  t.equal(vhostmd.audit.status, 429, 'the line request took the token');
  const back = handleGuestFrame({ ...context({ access, limiter: vhostmd.limiter }), version: '0' }, frame!);
  t.match(back.reply, /^1\.0 429 /);
});

t.test('an invalid request: vhostmd\'s answer, no token, whoever asks', async (t) => {
  for (const access of [served(ITEM_NAMES, 1, 1000), { served: false as const, reason: 'no' }]) {
    const limiter = { fullAt: NOW + 2000 };
    const outcome = handleVhostmdRequest(context({ access, limiter }), { kind: 'invalid', reason: 'blank line' });
    t.equal(outcome.reply, INVALID_REQUEST_REPLY);
    t.equal(outcome.reply, 'INVALID REQUEST\n\n');
    t.same(outcome.audit, { command: 'vhostmd-invalid', status: 400 });
    t.equal(outcome.limiter, limiter);
  }
});

t.test('fast-check: any host strings, any policy: one reply, well-formed, ending the one way', async (t) => {
  const text = fc.string({ unit: 'binary', minLength: 1, maxLength: 256 });
  let linted = 0;
  const property = fc.property(text, text, text, fc.subarray([...ITEM_NAMES]), fc.boolean(), (hostname, kernel, hypervisor, items, invalid) => {
    const sample: HeldSample = { ...SAMPLE, values: { ...SAMPLE.values, hostname, kernel } };
    const outcome = handleVhostmdRequest(context({ sample, vm: { ...VM, hypervisor, uuid: hostname }, access: served(items) }), invalid ? { kind: 'invalid', reason: 'full' } : GET);
    const reply = outcome.reply;
    if (reply.indexOf('\n\n') !== reply.length - 2) throw new Error(`blank line before the end: ${JSON.stringify(reply)}`);
    if (reply.includes('\0')) throw new Error('NUL in the reply');
    if (!invalid && outcome.audit.status !== 200) throw new Error(`status ${outcome.audit.status}`);
    if (!invalid && linted < 150) {
      linted += 1;
      const problem = xmllintProblem(Buffer.from(reply, 'utf8'));
      if (problem !== undefined) throw new Error(`${problem}\n${JSON.stringify(reply)}`);
    }
  });
  const details = await fc.check(property, { seed: 20261127, numRuns: 2_000 });
  t.notOk(details.failed, details.failed ? `${String(details.errorInstance)}` : 'holds');
  t.ok(linted >= 100, `xmllint judged ${linted} of them`);
});
