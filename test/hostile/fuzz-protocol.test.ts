// Fuzz of the pure guest side: GuestLineDecoder + handleGuestFrame, fed generated hostile byte
// streams in generated chunkings, as the sidecar feeds them. Over a million request lines per run
// with a fixed seed (HOSTINFO_FUZZ_SEED replays or explores another); the seed is printed first
// and again with any failure. ALL requests are mixed in: their replies must read back, with the
// README's grammar, as exactly the VM's permitted items, each with its single-item text.
// The vhostmd port's decoder and handler get the same treatment (the second test): one reply per
// request as an independent oracle counts them, every reply framed as vm-dump-metrics needs.

import fc from 'fast-check';
import t from 'tap';
import { decideAccess, type Access } from '../../policies/access.js';
import { ITEM_NAMES, isHostItemName, isItemName, type ItemName } from '../../policies/items.js';
import { FRESH_LIMITER, type LimiterState } from '../../policies/rate-limiter.js';
import { parseVmPolicy } from '../../policies/vm-policy.js';
import { GuestLineDecoder } from '../../sidecar/protocol/line-decoder.js';
import { handleGuestFrame, NOT_ENABLED_TEXT, type HeldSample, type VmFacts } from '../../sidecar/request-handler.js';
import { handleVhostmdRequest, VHOSTMD_NOT_ENABLED, type CachedDocument } from '../../sidecar/vhostmd/handler.js';
import { MAX_VHOSTMD_REQUEST_BYTES, VhostmdRequestDecoder } from '../../sidecar/vhostmd/request-decoder.js';
import { emptyDocument, INVALID_REQUEST_REPLY } from '../../sidecar/vhostmd/xml.js';
import { parseAllReply } from '../sidecar/all-parser.js';
import { xmllintProblem } from '../sidecar/vhostmd/xmllint.js';
import { chunking, cut, fuzzSeed, piece } from './arbitraries.js';
import { malformed, requestedItem, SENSITIVE_ITEMS, splitLines, statusOf } from './oracle.js';

const SEED = fuzzSeed(20261125);
/** Sessions per run; each is up to 80 pieces. Chosen so that one run feeds well over 1e6 lines. */
const RUNS = Number(process.env['HOSTINFO_FUZZ_RUNS'] ?? 34_000);
const MIN_LINES = Number(process.env['HOSTINFO_FUZZ_MIN_LINES'] ?? 1_000_000);
/** The session's start on the monotonic clock; the wall clock (hosttime) moves with it here. */
const NOW = 1_795_613_704_391;

const SNAPSHOT: HeldSample = {
  receivedAt: NOW,
  values: {
    physcpus: 16, physcores: 8, sockets: 1, cpumodel: 'AMD EPYC 7B13 64-Core Processor', cpumhz: 2450,
    loadavg: [0.52, 0.48, 0.4], cpuusage: { user: 12.5, system: 3.1, iowait: 0.2, steal: 0, idle: 84.2 },
    pressure: { cpu: 1.2, memory: 0, io: 0.35 }, physmem: { total: 16303932, free: 123456, available: 9876543 },
    swap: { total: 0, free: 0 }, uptime: 123456, hostname: 'SECRET-HOSTNAME', kernel: 'SECRET-KERNEL', vmcount: 987654321,
    pagedin: 48213376, pagedout: 91822040, hostcputime: 1234567.89,
  },
};
/** Host data as the sidecar may hold it: fresh, none yet, stale, or with items the host cannot measure. */
const HOST_DATA: Record<string, HeldSample | undefined> = {
  fresh: SNAPSHOT,
  none: undefined,
  stale: { ...SNAPSHOT, receivedAt: NOW - 60_000 },
  partial: { receivedAt: NOW, values: { physcpus: 16, hostname: 'SECRET-HOSTNAME', vmcount: 987654321 } },
};
const VM: VmFacts = {
  hypervisor: 'QEMU 7.2.22', vcpuDelay: { percent: 2.35, measuredAt: NOW }, name: 'web "1" \\ x', uuid: '5c1d0f6e-8a7b-4c3d-9e2f-0a1b2c3d4e5f', vcpus: 2,
  cpuTime: { value: 1234.5, measuredAt: NOW }, vcpuUsage: { value: 37.5, measuredAt: NOW }, memory: { value: { total: 262144, balloon: 131072 }, measuredAt: NOW },
  cpuLimit: { value: 1.5, measuredAt: NOW }, memLimit: { value: null, measuredAt: NOW }, session: { value: '3f9a1c0e5b7d2a64' },
};

/** What a 200 for each item must say, given SNAPSHOT and VM (hosttime depends on the clock). */
const ITEM_TEXT: Record<Exclude<ItemName, 'hosttime'>, string> = {
  physcpus: '16', physcores: '8', sockets: '1', cpumodel: 'AMD EPYC 7B13 64-Core Processor', cpumhz: '2450',
  loadavg: '0.52 0.48 0.40', cpuusage: 'user=12.5 system=3.1 iowait=0.2 steal=0.0 idle=84.2',
  pressure: 'cpu=1.20 memory=0.00 io=0.35', physmem: 'total=16303932 free=123456 available=9876543',
  swap: 'total=0 free=0', uptime: '123456', hostname: 'SECRET-HOSTNAME', kernel: 'SECRET-KERNEL',
  hypervisor: 'QEMU 7.2.22', vcpudelay: '2.35', vmcount: '987654321', vmcputime: '1234.50', vmcpuusage: '37.50', vcpus: '2',
  vmmem: 'total=262144 balloon=131072', cpulimit: '1.50', memlimit: 'none', vmname: 'web "1" \\ x', vmuuid: '5c1d0f6e-8a7b-4c3d-9e2f-0a1b2c3d4e5f',
  pagedin: '48213376', pagedout: '91822040', hostcputime: '1234567.89', vmsession: '3f9a1c0e5b7d2a64',
};

/** ALL in any letter case, sometimes with arguments (a 400) or a CR, mixed into the hostile pieces. */
const allLine = fc
  .tuple(fc.constantFrom('ALL', 'all', 'All', 'aLl'), fc.constantFrom('', '', '', ' x', ' "a b"'), fc.constantFrom('\n', '\r\n', ' \n'))
  .map(([command, args, end]) => Buffer.from(`${command}${args}${end}`, 'latin1'));
const pieceOrAll = fc.oneof({ weight: 12, arbitrary: piece }, { weight: 1, arbitrary: allLine });

/** What is wrong with a 200 reply to ALL, given the policy's items and the host data's name. */
function allProblem(reply: string, allowed: readonly ItemName[], dataName: string): string | undefined {
  let words;
  try {
    words = parseAllReply(reply);
  } catch (error) {
    return `ALL reply does not parse (${(error as Error).message}): ${JSON.stringify(reply)}`;
  }
  const names = words.map((word) => word.name);
  if (names.join(' ') !== allowed.join(' ')) return `ALL listed ${names.join(' ')}; the policy allows ${allowed.join(' ')}`;
  for (const { name, value, quoted } of words) {
    if (!isItemName(name) || name === 'hosttime') continue;
    const marker = value === 'unavailable' && !quoted;
    if (!marker && value !== ITEM_TEXT[name]) return `ALL gave ${name}=${JSON.stringify(value)}, its item text is ${JSON.stringify(ITEM_TEXT[name])}`;
    const held = HOST_DATA[dataName];
    if (!marker && isHostItemName(name) && (held === undefined || dataName === 'stale' || held.values[name] === undefined)) {
      return `ALL gave host item ${name} without fresh host data for it (${dataName})`;
    }
  }
  return undefined;
}

function access(toml: string): Access {
  return decideAccess({ enabled: true, file: '/etc/hostinfo/hostinfo.toml' }, { kind: 'found', policy: parseVmPolicy(toml, '/p/vm.toml') });
}

const POLICIES: Record<string, Access> = {
  disabled: access('enabled = false\n'),
  minimal: access('enabled = true\nallow = ["physcpus"]\nburst = 1000000000\ninterval = 0.001\n'),
  default: access('enabled = true\nburst = 1000000000\n'),
  'default-rate': access('enabled = true\n'),
  generous: access(`enabled = true\nallow = [${ITEM_NAMES.filter((n) => n !== 'vmcount').map((n) => `"${n}"`).join(', ')}]\nburst = 1000000000\ninterval = 0.001\n`),
};

const allowedItems = (a: Access): readonly ItemName[] => (a.served ? a.policy.items : []);

t.test('decoder + handler hold every invariant on generated hostile input', async (t) => {
  t.comment(`fuzz seed ${SEED} (replay with HOSTINFO_FUZZ_SEED=${SEED}), ${RUNS} sessions`);
  t.ok(POLICIES['generous']?.served && !allowedItems(POLICIES['generous']).includes('vmcount'), 'generous policy leaves one sensitive item out');
  let lines = 0;
  let chunks = 0;
  let bytes = 0;
  let replies = 0;
  let allReplies = 0;
  const statuses = new Map<number, number>();
  const started = process.hrtime.bigint();

  const property = fc.property(
    fc.constantFrom(...Object.keys(POLICIES)),
    fc.constantFrom(...Object.keys(HOST_DATA)),
    fc.array(pieceOrAll, { minLength: 1, maxLength: 80, size: 'max' }),
    chunking,
    fc.array(fc.integer({ min: 0, max: 1500 }), { minLength: 1, maxLength: 5 }),
    (policyName, dataName, pieces, how, clockSteps) => {
      const snapshot = HOST_DATA[dataName];
      const policy = POLICIES[policyName] as Access;
      const stream = Buffer.concat(pieces);
      const expected = splitLines(stream).lines;
      const decoder = new GuestLineDecoder();
      let limiter: LimiterState = FRESH_LIMITER;
      let now = NOW;
      const got: string[] = [];
      const parts = cut(stream, how);
      parts.forEach((chunk, index) => {
        for (const frame of decoder.push(chunk)) {
          const outcome = handleGuestFrame({ access: policy, limiter, sample: snapshot, vm: VM, maxAgeMs: 10_000, now, wallNow: now, version: '0.1.0' }, frame);
          limiter = outcome.limiter;
          if (outcome.reply !== undefined) got.push(outcome.reply);
        }
        if (decoder.bufferedBytes >= 256) throw new Error(`decoder holds ${decoder.bufferedBytes} bytes`);
        now += clockSteps[index % clockSteps.length] ?? 0;
      });
      lines += expected.length;
      chunks += parts.length;
      bytes += stream.length;
      replies += got.length;

      const answered = expected.filter((line) => line.answered);
      if (got.length !== answered.length) {
        throw new Error(`${got.length} replies for ${answered.length} lines that need one (${expected.length} lines in all)`);
      }
      got.forEach((reply, index) => {
        const problem = malformed(reply);
        if (problem !== undefined) throw new Error(problem);
        const status = statusOf(reply);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status === 500) throw new Error(`500 (a bug) for ${JSON.stringify(answered[index]?.raw.toString('latin1'))}`);
        if (!policy.served && reply !== `1.0 403 ${NOT_ENABLED_TEXT}\n`) throw new Error(`disabled VM answered ${JSON.stringify(reply)}`);
        for (const secret of SENSITIVE_ITEMS.filter((name) => !allowedItems(policy).includes(name)).map((name) => ITEM_TEXT[name as 'hostname'])) {
          if (reply.includes(secret) && !(answered[index]?.raw.toString('latin1').includes(secret) ?? false)) {
            throw new Error(`sensitive value ${secret} leaked under ${policyName}: ${JSON.stringify(reply)}`);
          }
        }
        const raw = answered[index]?.raw ?? Buffer.alloc(0);
        if (status === 200 && /^ *all\r?$/i.test(raw.toString('latin1'))) {
          allReplies += 1;
          const problem = allProblem(reply, allowedItems(policy), dataName);
          if (problem !== undefined) throw new Error(`${problem} (policy ${policyName})`);
        }
        const item = requestedItem(raw);
        if (status === 200 && item !== undefined) {
          if (!allowedItems(policy).includes(item)) throw new Error(`200 for ${item} outside policy ${policyName}`);
          if (dataName === 'fresh' && item !== 'hosttime' && reply !== `1.0 200 ${ITEM_TEXT[item]}\n`) throw new Error(`${item} answered ${JSON.stringify(reply)}`);
        }
        if (status === 200 && item !== undefined && SENSITIVE_ITEMS.includes(item) && !allowedItems(policy).includes(item)) {
          throw new Error(`sensitive ${item} served`);
        }
      });
    },
  );

  const details = await fc.check(property, { seed: SEED, numRuns: RUNS });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  t.comment(`${lines} request lines, ${chunks} chunks, ${bytes} bytes, ${replies} replies in ${seconds.toFixed(1)} s`);
  t.comment(`statuses: ${[...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ')}; ${allReplies} ALL replies read back`);
  if (details.failed) {
    t.fail(`fuzz failure, seed ${details.seed}, path "${details.counterexamplePath ?? ''}": ${String(details.errorInstance)}\n${fc.defaultReportMessage(details) ?? ''}`.slice(0, 20_000));
  } else {
    t.pass(`${details.numRuns} sessions passed (seed ${details.seed})`);
  }
  if (!details.failed) t.ok(lines >= MIN_LINES, `at least ${MIN_LINES} request lines fed (${lines})`);
  if (!details.failed && RUNS >= 10_000) t.ok(allReplies > 1000, `ALL was answered 200 and read back (${allReplies} times)`);
  for (const status of [200, 400, 403, 404, 429, 503]) {
    if (!details.failed && RUNS >= 10_000) t.ok((statuses.get(status) ?? 0) > 0, `status ${status} was produced`);
  }
});

/** vhostmd 1.2's request rules, written again byte by byte on a string: the oracle for the decoder. */
function vhostmdOracle(stream: Buffer): Array<'get' | 'invalid'> {
  const verdicts: Array<'get' | 'invalid'> = [];
  let held = '';
  for (const byte of stream) {
    held += String.fromCharCode(byte);
    if (held === 'GET /metrics/XML\n\n' || held === 'GET /metrics/XML\r\n\r\n') verdicts.push('get');
    else if (held.endsWith('\n\n') || held.endsWith('\r\n\r\n') || held.length === MAX_VHOSTMD_REQUEST_BYTES) verdicts.push('invalid');
    else continue;
    held = '';
  }
  return verdicts;
}

const vhostmdPiece = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('GET /metrics/XML\n\n', 'GET /metrics/XML\r\n\r\n').map((text) => Buffer.from(text, 'latin1')) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom('GET /metrics/XML\n\n', 'GET /metrics/XML\r\n\r\n'), fc.nat(), fc.integer({ min: 0, max: 255 }))
    .map(([text, at, byte]) => { const bytes = Buffer.from(text, 'latin1'); bytes[at % bytes.length] = byte; return bytes; }) },
  { weight: 2, arbitrary: fc.constantFrom('GET /met', '\n', '\r\n', '\n\n', '\0', 'GET /metrics/XML\n', 'x'.repeat(510)).map((text) => Buffer.from(text, 'latin1')) },
  { weight: 2, arbitrary: piece },
);

t.test('vhostmd decoder + handler: one framed reply per request, on generated hostile input', async (t) => {
  const runs = Math.max(200, Math.round(RUNS / 10));
  t.comment(`fuzz seed ${SEED}, ${runs} vhostmd sessions`);
  let requests = 0;
  let bytes = 0;
  const documents = new Set<string>();
  const statuses = new Map<number, number>();
  const property = fc.property(
    fc.constantFrom(...Object.keys(POLICIES)),
    fc.constantFrom(...Object.keys(HOST_DATA)),
    fc.array(vhostmdPiece, { minLength: 1, maxLength: 40, size: 'max' }),
    chunking,
    fc.array(fc.integer({ min: 0, max: 1500 }), { minLength: 1, maxLength: 5 }),
    (policyName, dataName, pieces, how, clockSteps) => {
      const policy = POLICIES[policyName] as Access;
      const stream = Buffer.concat(pieces);
      const expected = vhostmdOracle(stream);
      const decoder = new VhostmdRequestDecoder();
      let limiter: LimiterState = FRESH_LIMITER;
      let lastReply: CachedDocument | undefined;
      let now = NOW;
      const got: string[] = [];
      cut(stream, how).forEach((chunk, index) => {
        for (const request of decoder.push(chunk)) {
          const outcome = handleVhostmdRequest({ access: policy, limiter, lastReply, sample: HOST_DATA[dataName], vm: VM, maxAgeMs: 10_000, now, wallNow: now }, request);
          const sentBefore = lastReply?.document;
          limiter = outcome.limiter;
          lastReply = outcome.lastReply;
          statuses.set(outcome.audit.status, (statuses.get(outcome.audit.status) ?? 0) + 1);
          if (outcome.audit.status === 500) throw new Error('500 (a bug)');
          if (outcome.audit.status === 429 && outcome.reply !== sentBefore && !outcome.reply.includes('rate limited')) throw new Error('a 429 that is neither the last document nor says so');
          got.push(outcome.reply);
        }
        if (decoder.bufferedBytes >= MAX_VHOSTMD_REQUEST_BYTES) throw new Error(`decoder holds ${decoder.bufferedBytes} bytes`);
        now += clockSteps[index % clockSteps.length] ?? 0;
      });
      requests += got.length;
      bytes += stream.length;
      if (got.length !== expected.length) throw new Error(`${got.length} replies for ${expected.length} requests`);
      got.forEach((reply, index) => {
        if (expected[index] === 'invalid') {
          if (reply !== INVALID_REQUEST_REPLY) throw new Error(`invalid request answered ${JSON.stringify(reply.slice(0, 80))}`);
          return;
        }
        if (!reply.startsWith('<metrics>\n') || reply.indexOf('\n\n') !== reply.length - 2 || !reply.endsWith('</metrics>\n\n') || reply.includes('\0')) {
          throw new Error(`not framed as vm-dump-metrics needs: ${JSON.stringify(reply)}`);
        }
        if (!policy.served && reply !== emptyDocument(VHOSTMD_NOT_ENABLED)) throw new Error(`disabled VM answered ${JSON.stringify(reply)}`);
        for (const [item, secret] of [['hostname', 'SECRET-HOSTNAME'], ['kernel', 'SECRET-KERNEL']] as const) {
          if (reply.includes(secret) && !allowedItems(policy).includes(item)) throw new Error(`${item} leaked under ${policyName}`);
        }
        if (documents.size < 40) documents.add(reply);
      });
    },
  );
  const details = await fc.check(property, { seed: SEED, numRuns: runs });
  t.comment(`${requests} vhostmd requests in ${bytes} bytes; statuses ${[...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ')}`);
  if (details.failed) t.fail(`vhostmd fuzz failure, seed ${details.seed}, path "${details.counterexamplePath ?? ''}": ${String(details.errorInstance)}`.slice(0, 20_000));
  else t.pass(`${details.numRuns} sessions passed`);
  for (const status of [200, 400, 403, 429]) if (!details.failed) t.ok((statuses.get(status) ?? 0) > 0, `status ${status} was produced`);
  const problems = [...documents].map((document) => xmllintProblem(document)).filter((problem) => problem !== undefined);
  t.same(problems, [], `xmllint: ${documents.size} distinct documents well-formed`);
});
