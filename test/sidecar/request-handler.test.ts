import t from 'tap';
import type { Access } from '../../policies/access.js';
import { ITEM_NAMES, type ItemName } from '../../policies/items.js';
import { FRESH_LIMITER, type LimiterState } from '../../policies/rate-limiter.js';
import { GuestLineDecoder } from '../../sidecar/protocol/line-decoder.js';
import { handleGuestFrame, type HeldSample, type RequestContext, type RequestOutcome, type VmFacts } from '../../sidecar/request-handler.js';

/** Wall clock, epoch ms: hosttime only. */
const WALL = 1_795_613_704_391;
/** Monotonic ms (performance.now): the limiter's and every age's clock. */
const NOW = 52_301_007;

const SAMPLE: HeldSample = {
  receivedAt: NOW - 400,
  values: {
    physcpus: 16,
    physcores: 8,
    sockets: 1,
    cpumodel: '  AMD EPYC 7B13   64-Core Processor ',
    cpumhz: 2450.0004,
    loadavg: [0.52, 0.479, 0.4],
    cpuusage: { user: 12.54, system: 3.1, iowait: 0.2, steal: 0, idle: 84.16 },
    pressure: { cpu: 1.2, memory: 0, io: 0.345 },
    physmem: { total: 16303932, free: 123456, available: 9876543 },
    swap: { total: 0, free: 0 },
    uptime: 123456.78,
    hostname: 'host01',
    kernel: '6.1.0-56-cloud-amd64',
    vmcount: 12,
    pagedin: 48213376,
    pagedout: 91822040,
    hostcputime: 1234567.891,
  },
};

const VM: VmFacts = {
  hypervisor: 'QEMU 7.2.22',
  vcpuDelay: { percent: 2.3456, measuredAt: NOW - 900 },
  name: 'web1',
  uuid: '5c1d0f6e-8a7b-4c3d-9e2f-0a1b2c3d4e5f',
  vcpus: 2,
  cpuTime: { value: 1234.5678, measuredAt: NOW - 900 },
  vcpuUsage: { value: 37.505, measuredAt: NOW - 900 },
  memory: { value: { total: 262144, balloon: null }, measuredAt: NOW - 900 },
  cpuLimit: { value: 1.5, measuredAt: NOW - 900 },
  memLimit: { value: null, measuredAt: NOW - 900 },
  session: { value: '3f9a1c0e5b7d2a64' },
};

function served(items: readonly ItemName[] = ITEM_NAMES, burst = 1000, intervalMs = 1000): Access {
  return { served: true, policy: { file: '/p/vm.toml', enabled: true, items, limit: { intervalMs, burst } } };
}

function context(overrides: Partial<RequestContext> = {}): RequestContext {
  return { access: served(), limiter: FRESH_LIMITER, sample: SAMPLE, vm: VM, maxAgeMs: 5000, now: NOW, wallNow: WALL, version: '0.1.0', ...overrides };
}

/**
 * A decoder past the stream's first line, as for a guest already talking to this sidecar (the first
 * line of a connection is answered only when it starts with a known word: tested on its own below).
 */
function connected(): GuestLineDecoder {
  const decoder = new GuestLineDecoder();
  decoder.push(Buffer.from('\n'));
  return decoder;
}

/** Sends one request line through decoder and handler, as the sidecar does. */
function ask(line: string, ctx: RequestContext = context()): string | undefined {
  const frames = connected().push(Buffer.from(`${line}\n`, 'latin1'));
  t.equal(frames.length, 1);
  return handleGuestFrame(ctx, frames[0]!).reply;
}

t.test('every item reads as the protocol table shows', async (t) => {
  const expected: Record<ItemName, string> = {
    physcpus: '16',
    physcores: '8',
    sockets: '1',
    cpumodel: 'AMD EPYC 7B13 64-Core Processor',
    cpumhz: '2450',
    loadavg: '0.52 0.48 0.40',
    cpuusage: 'user=12.5 system=3.1 iowait=0.2 steal=0.0 idle=84.2',
    pressure: 'cpu=1.20 memory=0.00 io=0.34',
    physmem: 'total=16303932 free=123456 available=9876543',
    swap: 'total=0 free=0',
    uptime: '123456',
    hosttime: '1795613704.391',
    hostname: 'host01',
    kernel: '6.1.0-56-cloud-amd64',
    hypervisor: 'QEMU 7.2.22',
    vcpudelay: '2.35',
    vmcount: '12',
    vmcputime: '1234.57',
    vmcpuusage: '37.51',
    vcpus: '2',
    vmmem: 'total=262144 balloon=none',
    cpulimit: '1.50',
    memlimit: 'none',
    vmname: 'web1',
    vmuuid: '5c1d0f6e-8a7b-4c3d-9e2f-0a1b2c3d4e5f',
    pagedin: '48213376',
    pagedout: '91822040',
    hostcputime: '1234567.89',
    vmsession: '3f9a1c0e5b7d2a64',
  };
  for (const item of ITEM_NAMES) t.equal(ask(item), `1.0 200 ${expected[item]}\n`, item);
});

t.test('fields come in the documented order whatever order the sample had', async (t) => {
  const shuffled: HeldSample = { ...SAMPLE, values: { cpuusage: { idle: 1, steal: 2, iowait: 3, system: 4, user: 5 } } };
  t.equal(ask('cpuusage', context({ sample: shuffled })), '1.0 200 user=5.0 system=4.0 iowait=3.0 steal=2.0 idle=1.0\n');
});

t.test('PING, HELP and VERSION', async (t) => {
  t.equal(ask('PING "hello"'), '1.0 200 hello\n');
  t.equal(ask('ping'), '1.0 200 pong\n');
  t.equal(ask('PING "say \\"hi\\""'), '1.0 200 say "hi"\n');
  t.equal(ask('VERSION'), '1.0 200 hostinfo-qemu 0.1.0 protocol 1.0\n');
  t.equal(ask('help', context({ access: served(['physcpus', 'loadavg']) })), '1.0 200 ping help version physcpus loadavg\n');
  t.equal(ask('HELP', context({ access: served([]) })), '1.0 200 ping help version\n');
});

t.test('400 for syntax, arity, binary and oversize input', async (t) => {
  t.equal(ask('PING "open'), '1.0 400 bad request: unterminated quoted string starting at column 6\n');
  t.equal(ask('PING a b'), '1.0 400 bad request: ping takes at most one argument\n');
  t.equal(ask('physcpus now'), '1.0 400 bad request: physcpus takes no arguments\n');
  t.equal(ask('help me'), '1.0 400 bad request: help takes no arguments\n');
  t.equal(ask('version 2'), '1.0 400 bad request: version takes no arguments\n');
  t.equal(ask('PING \xff'), '1.0 400 bad request: byte 0xff at column 6 is not printable ASCII\n');
  const [oversize] = connected().push(Buffer.from(`${'a'.repeat(300)}\n`));
  t.equal(handleGuestFrame(context(), oversize!).reply, '1.0 400 bad request: line longer than 256 bytes\n');
});

t.test('404 for unknown commands, echoing at most 32 characters', async (t) => {
  t.equal(ask('FROBNICATE'), '1.0 404 unknown command: frobnicate\n');
  t.equal(ask('toString'), '1.0 404 unknown command: tostring\n', 'no prototype lookups');
  t.equal(ask('a'.repeat(100)), `1.0 404 unknown command: ${'a'.repeat(32)}\n`);
});

t.test('403 for items outside the policy, sensitive ones included', async (t) => {
  const minimal = context({ access: served(['physcpus']) });
  t.equal(ask('physcpus', minimal), '1.0 200 16\n');
  for (const item of ['hostname', 'kernel', 'vmcount', 'loadavg'] as const) {
    t.equal(ask(item, minimal), `1.0 403 ${item} is not permitted for this VM\n`, item);
  }
  t.equal(ask('hostname a', minimal), '1.0 403 hostname is not permitted for this VM\n', 'policy checked before arity');
});

t.test('a VM that is not served gets the same 403 to everything, PING included', async (t) => {
  const off = context({ access: { served: false, reason: 'no policy' } });
  for (const line of ['PING', 'help', 'VERSION', 'physcpus', 'nonsense', 'PING "open', '\x01']) {
    t.equal(ask(line, off), '1.0 403 hostinfo is not enabled for this VM\n', JSON.stringify(line));
  }
});

t.test('503 when the host data is missing, stale or not collected', async (t) => {
  t.equal(ask('loadavg', context({ sample: undefined })), '1.0 503 host statistics unavailable: no sample from the host cache yet\n');
  t.equal(ask('loadavg', context({ sample: { ...SAMPLE, receivedAt: NOW - 5000 } })), '1.0 200 0.52 0.48 0.40\n', 'exactly max_age is fresh');
  t.equal(ask('loadavg', context({ sample: { ...SAMPLE, receivedAt: NOW - 5001 } })), '1.0 503 host statistics unavailable: newest sample is 5.0 s old\n');
  t.equal(ask('pressure', context({ sample: { receivedAt: NOW, values: { loadavg: [1, 1, 1] } } })), '1.0 503 host statistics unavailable: pressure is not available on this host\n');
  t.equal(ask('hypervisor', context({ vm: { hypervisor: undefined, vcpuDelay: undefined } })), '1.0 503 host statistics unavailable: hypervisor version not known (no QMP socket for this VM)\n');
  t.equal(ask('vcpudelay', context({ vm: { hypervisor: undefined, vcpuDelay: undefined } })), '1.0 503 host statistics unavailable: no vCPU measurement yet\n');
  t.equal(ask('vcpudelay', context({ vm: { hypervisor: undefined, vcpuDelay: { percent: 1, measuredAt: NOW - 7000 } } })), '1.0 503 host statistics unavailable: newest sample is 7.0 s old\n');
});

t.test('PING, HELP, VERSION and hosttime answer without host data', async (t) => {
  const noData = context({ sample: undefined, vm: { hypervisor: undefined, vcpuDelay: undefined } });
  t.equal(ask('PING', noData), '1.0 200 pong\n');
  t.match(ask('HELP', noData), /^1\.0 200 ping help version /);
  t.match(ask('VERSION', noData), /^1\.0 200 hostinfo-qemu /);
  t.equal(ask('hosttime', noData), '1.0 200 1795613704.391\n');
});

t.test('blank lines and echoed replies get nothing and take no token', async (t) => {
  const ctx = context({ access: served(ITEM_NAMES, 1) });
  for (const line of ['', '   ', '1.0 200 16', '1.0 429 too many requests; retry after 1000 ms']) {
    const frames = connected().push(Buffer.from(`${line}\r\n`));
    const outcome = handleGuestFrame(ctx, frames[0]!);
    t.equal(outcome.reply, undefined, JSON.stringify(line));
    t.equal(outcome.limiter, ctx.limiter, 'limiter untouched');
    t.equal(outcome.audit, undefined);
  }
  const [longEcho] = connected().push(Buffer.from(`1.0 200 ${'x'.repeat(600)}\n`));
  t.equal(handleGuestFrame(ctx, longEcho!).reply, undefined, 'an oversize echo is still an echo');
});

t.test('every non-empty request takes a token, whatever its outcome', async (t) => {
  let limiter: LimiterState = FRESH_LIMITER;
  const replies: string[] = [];
  for (const line of ['nonsense', 'PING "open', 'hostname', 'physcpus']) {
    const frames = connected().push(Buffer.from(`${line}\n`));
    const outcome = handleGuestFrame(context({ access: served(['physcpus'], 3), limiter }), frames[0]!);
    limiter = outcome.limiter;
    replies.push(outcome.reply ?? '');
  }
  t.same(replies.map((reply) => reply.slice(0, 7)), ['1.0 404', '1.0 400', '1.0 403', '1.0 429']);
  t.equal(replies[3], '1.0 429 too many requests; retry after 1000 ms\n');
});

t.test('burst 3 interval 1 s at exact instants', async (t) => {
  let limiter: LimiterState = FRESH_LIMITER;
  const at = (now: number): string => {
    const frames = connected().push(Buffer.from('physcpus\n'));
    const outcome = handleGuestFrame(context({ access: served(['physcpus'], 3, 1000), limiter, now, sample: { ...SAMPLE, receivedAt: now } }), frames[0]!);
    limiter = outcome.limiter;
    return outcome.reply ?? '';
  };
  t.equal(at(NOW), '1.0 200 16\n');
  t.equal(at(NOW), '1.0 200 16\n');
  t.equal(at(NOW), '1.0 200 16\n');
  t.equal(at(NOW), '1.0 429 too many requests; retry after 1000 ms\n');
  t.equal(at(NOW + 999), '1.0 429 too many requests; retry after 1 ms\n');
  t.equal(at(NOW + 1000), '1.0 200 16\n');
  t.equal(at(NOW + 1000), '1.0 429 too many requests; retry after 1000 ms\n');
});

t.test('the audit record names the command and status', async (t) => {
  const frames = connected().push(Buffer.from('PhysCpus\nxyz\n"q"\n'));
  t.same(frames.map((frame) => handleGuestFrame(context(), frame).audit), [
    { command: 'physcpus', status: 200 },
    { command: 'xyz', status: 404 },
    { command: '-', status: 400 },
  ]);
});

t.test('a fault inside the handler costs one request: 500, not a crash', async (t) => {
  const broken = context({ sample: { receivedAt: NOW, values: { loadavg: 'not a tuple' as unknown as [number, number, number] } } });
  t.equal(ask('loadavg', broken), '1.0 500 internal error\n');
  t.equal(ask('PING', broken), '1.0 200 pong\n');
});

t.test('ALL: every permitted item on one line, one token', async (t) => {
  const ctx = context({ access: served(['physcpus', 'cpumodel', 'loadavg', 'hostname', 'vcpus', 'vmmem', 'memlimit'], 1) });
  const outcome = handleGuestFrame(ctx, connected().push(Buffer.from('ALL\n'))[0]!);
  t.equal(outcome.reply, '1.0 200 physcpus=16 cpumodel="AMD EPYC 7B13 64-Core Processor" loadavg="0.52 0.48 0.40" hostname=host01 vcpus=2 vmmem="total=262144 balloon=none" memlimit=none\n');
  t.same(outcome.audit, { command: 'all', status: 200 });
  const again = handleGuestFrame({ ...ctx, limiter: outcome.limiter }, connected().push(Buffer.from('all\n'))[0]!);
  t.equal(again.reply, '1.0 429 too many requests; retry after 1000 ms\n', 'ALL took exactly the one token of burst 1');
});

t.test('ALL: unavailable items in place, forbidden ones absent, arguments refused', async (t) => {
  const items: ItemName[] = ['physcpus', 'pressure', 'hosttime', 'hypervisor', 'vcpudelay', 'vmcputime'];
  const ctx = context({ access: served(items), sample: { receivedAt: NOW, values: { physcpus: 4 } }, vm: { hypervisor: undefined, vcpuDelay: undefined } });
  t.equal(ask('ALL', ctx), '1.0 200 physcpus=4 pressure=unavailable hosttime=1795613704.391 hypervisor=unavailable vcpudelay=unavailable vmcputime=unavailable\n');
  t.equal(ask('ALL', context({ sample: undefined, access: served(['loadavg', 'hosttime']) })), '1.0 200 loadavg=unavailable hosttime=1795613704.391\n', 'no host sample');
  t.equal(ask('ALL', context({ access: served([]) })), '1.0 200 \n', 'a VM allowed no item gets an empty list');
  t.equal(ask('ALL now'), '1.0 400 bad request: all takes no arguments\n');
  t.equal(ask('ALL', context({ access: { served: false, reason: 'off' } })), '1.0 403 hostinfo is not enabled for this VM\n');
});

t.test('the new per-VM items: 503 with the reason when not known', async (t) => {
  const unknown = context({ vm: { hypervisor: undefined, vcpuDelay: undefined } });
  t.equal(ask('vmcputime', unknown), '1.0 503 host statistics unavailable: no CPU time measurement yet\n');
  t.equal(ask('vcpus', unknown), '1.0 503 host statistics unavailable: vCPU threads not known\n');
  t.equal(ask('vmname', unknown), '1.0 503 host statistics unavailable: this VM has no name (QEMU was started without -name)\n');
  t.equal(ask('vmmem', context({ vm: { ...VM, memory: { why: 'no QMP socket for this VM' } } })), '1.0 503 host statistics unavailable: no QMP socket for this VM\n');
  t.equal(ask('cpulimit', context({ vm: { ...VM, cpuLimit: { value: 2, measuredAt: NOW - 5001 } } })), '1.0 503 host statistics unavailable: newest sample is 5.0 s old\n');
  t.equal(ask('vmname', context({ access: served(['physcpus']) })), '1.0 403 vmname is not permitted for this VM\n');
  t.equal(ask('vmmem', context({ vm: { ...VM, memory: { value: { total: 4194304, balloon: 3145728 }, measuredAt: NOW } } })), '1.0 200 total=4194304 balloon=3145728\n');
});

t.test('the first line of a connection is answered only when it starts with a command or item name', async (t) => {
  // The tail of a reply's echo, cut by a live migration's switch-over: "…77a1344c" went to the
  // source's sidecar, "d0a9\n" to the destination's. A 404 to it would answer the guest's next request.
  const first = (text: string, ctx = context()): RequestOutcome => handleGuestFrame(ctx, new GuestLineDecoder().push(Buffer.from(text, 'latin1'))[0]!);
  for (const tail of ['d0a9', '77a1344c', '0 200 16', '"physcpus"', '\x01']) {
    t.same(first(`${tail}\n`), { reply: undefined, limiter: FRESH_LIMITER, audit: undefined }, `${JSON.stringify(tail)}: no reply, no token, no audit line`);
  }
  t.equal(first('PhysCpus\r\n').reply, '1.0 200 16\n', 'a request in any letter case');
  t.match(first('  help x\n').reply, /^1\.0 400 /, 'a known word with bad arguments: its 400');
  t.match(first('hostname\n', context({ access: served(['physcpus']) })).reply, /^1\.0 403 /, 'an item outside the policy: its 403');
  const decoder = new GuestLineDecoder();
  const [tail, next] = decoder.push(Buffer.from('d0a9\nd0a9\n'));
  t.equal(handleGuestFrame(context(), tail!).reply, undefined);
  t.match(handleGuestFrame(context(), next!).reply, /^1\.0 404 unknown command: d0a9/, 'from the second line on, an unknown command is a 404');
});
