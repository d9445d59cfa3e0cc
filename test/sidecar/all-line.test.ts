// ALL: ordering, quoting, the 1024-byte bound with the longest real values, the fallback for
// longer ones, a property that a reader of the README's grammar gets every value back, and the
// README's awk reader run by real shells.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import t from 'tap';
import type { HostValues } from '../../daemon/sample.js';
import { ITEM_NAMES, type ItemName } from '../../policies/items.js';
import { FRESH_LIMITER } from '../../policies/rate-limiter.js';
import { ALL_TEXT_ROOM, allText, encodeValue, UNAVAILABLE_WORD } from '../../sidecar/items/all-line.js';
import type { VmFacts } from '../../sidecar/items/vm-values.js';
import { GuestLineDecoder } from '../../sidecar/protocol/line-decoder.js';
import { MAX_REPLY_BYTES } from '../../sidecar/protocol/limits.js';
import { handleGuestFrame, type HeldSample, type RequestContext } from '../../sidecar/request-handler.js';
import { parseAllReply, parseAllText } from './all-parser.js';

const NOW = 1_000_000;

function context(values: Partial<HostValues>, vm: VmFacts, items: readonly ItemName[] = ITEM_NAMES, wallNow = 1_795_613_704_391): RequestContext {
  const sample: HeldSample = { values, receivedAt: NOW };
  return {
    access: { served: true, policy: { file: '/p', enabled: true, items, limit: { intervalMs: 1, burst: 1_000_000 } } },
    limiter: FRESH_LIMITER, sample, vm, maxAgeMs: 5000, now: NOW, wallNow, version: '0.1.0',
  };
}

function ask(ctx: RequestContext, line: string): string {
  const [frame] = new GuestLineDecoder().push(Buffer.from(`${line}\n`, 'latin1'));
  return handleGuestFrame(ctx, frame!).reply ?? '';
}

/** Each item's own 200 text, asked alone. */
const single = (ctx: RequestContext, item: ItemName): string => ask(ctx, item).replace(/^1\.0 200 /, '').replace(/\n$/, '');

const measured = <V>(value: V) => ({ value, measuredAt: NOW });

t.test('encodeValue: bare when it can be, else quoted with the request grammar\'s escapes', async (t) => {
  t.equal(encodeValue('16'), '16');
  t.equal(encodeValue('a\\b=c'), 'a\\b=c', 'a backslash alone needs no quotes: bare words may hold one');
  t.equal(encodeValue('0.52 0.48 0.40'), '"0.52 0.48 0.40"');
  t.equal(encodeValue('say "hi" \\o/'), '"say \\"hi\\" \\\\o/"');
  t.equal(encodeValue(''), '""');
  t.equal(encodeValue(UNAVAILABLE_WORD), '"unavailable"', 'the marker word as a value is quoted');
  t.equal(encodeValue('caf\u00e9\ttab'), 'caf?\u003ftab', 'non-printable characters become ?, one byte each');
});

t.test('allText: order kept, the marker for an unavailable item, one space between', async (t) => {
  t.equal(allText([{ item: 'physcpus', text: '16' }, { item: 'pressure', text: undefined }, { item: 'loadavg', text: '1 2 3' }]), 'physcpus=16 pressure=unavailable loadavg="1 2 3"');
  t.equal(allText([]), '');
});

t.test('every catalogue item as name=unavailable fits with room to spare', async (t) => {
  const text = allText(ITEM_NAMES.map((item) => ({ item, text: undefined })));
  // Two thirds: room for a dozen more items before the fallback itself could run out.
  t.ok(text.length <= (ALL_TEXT_ROOM * 2) / 3, `${text.length} characters of ${ALL_TEXT_ROOM}`);
});

// The longest values real hosts and VMs have, with where each bound comes from.
const KB_13_DIGITS = 4_398_046_511_104; // 4 PiB in kB: x86-64's 52-bit physical address space
const LONGEST_HOST: HostValues = {
  physcpus: 8192, // CONFIG_NR_CPUS's maximum on x86-64 (MAXSMP)
  physcores: 8192,
  sockets: 8192,
  // The CPUID brand string is 48 bytes with its NUL; systeminformation may put the vendor before it.
  cpumodel: `${'V'.repeat(12)} ${'Brand '.repeat(8).slice(0, 47)}`,
  cpumhz: 99_999,
  loadavg: [9999.99, 9999.99, 9999.99],
  cpuusage: { user: 100, system: 100, iowait: 100, steal: 100, idle: 100 },
  pressure: { cpu: 100, memory: 100, io: 100 },
  physmem: { total: KB_13_DIGITS, free: KB_13_DIGITS, available: KB_13_DIGITS },
  swap: { total: KB_13_DIGITS, free: KB_13_DIGITS },
  uptime: 3_155_760_000, // a century
  hostname: 'h'.repeat(64), // HOST_NAME_MAX
  kernel: 'k'.repeat(64), // __NEW_UTS_LEN
  vmcount: 99_999,
  // Kilobytes since boot: a u64 in the kernel, but a sample carries safe integers only (16 digits).
  pagedin: Number.MAX_SAFE_INTEGER,
  pagedout: Number.MAX_SAFE_INTEGER,
  hostcputime: 8192 * 3_155_760_000, // every CPU busy for a century
};
const LONGEST_VM: VmFacts = {
  hypervisor: 'QEMU 10.100.100',
  vcpuDelay: { percent: 100, measuredAt: NOW },
  // The longest name a policy file can be named after (README, Per-VM policy), with spaces.
  name: `${'web server '.repeat(12)}12345678`.slice(0, 128),
  uuid: '5c1d0f6e-8a7b-4c3d-9e2f-0a1b2c3d4e5f',
  vcpus: 4096, // QEMU's x86 maximum
  cpuTime: measured(4096 * 3_155_760_000), // every vCPU busy for a century
  vcpuUsage: measured(100),
  memory: measured({ total: KB_13_DIGITS, balloon: KB_13_DIGITS }),
  cpuLimit: measured(8192),
  memLimit: measured(KB_13_DIGITS),
  session: { value: 'ffffffffffffffff' }, // always 16 hex digits
};

t.test('the worst real case: every item allowed, every value at its real bound: the VM name gives way alone', async (t) => {
  const ctx = context(LONGEST_HOST, LONGEST_VM, ITEM_NAMES, 9_999_999_999_999);
  const reply = ask(ctx, 'ALL');
  t.ok(reply.length <= MAX_REPLY_BYTES, `${reply.length} bytes`);
  const words = parseAllReply(reply);
  t.same(words.map((word) => word.name), ITEM_NAMES, 'every item, in catalogue order');
  const gaveWay = words.filter((word) => word.value === UNAVAILABLE_WORD && !word.quoted).map((word) => word.name);
  t.same(gaveWay, ['vmname'], 'only the longest value, the 128-character VM name, gives way');
  for (const word of words.filter((w) => w.name !== 'vmname')) t.equal(word.value, single(ctx, word.name as ItemName), `${word.name}: its own reply text, not cut`);
  // What the line would need whole, and the longest VM name (spaces and all) that keeps it whole.
  const whole = reply.length - `vmname=${UNAVAILABLE_WORD}`.length + `vmname=${encodeValue(LONGEST_VM.name ?? '')}`.length;
  let fits = (LONGEST_VM.name ?? '').length;
  const fitsWhole = (length: number): boolean => !parseAllReply(ask(context(LONGEST_HOST, { ...LONGEST_VM, name: LONGEST_VM.name?.slice(0, length) }, ITEM_NAMES, 9_999_999_999_999), 'ALL')).some((word) => word.value === UNAVAILABLE_WORD && !word.quoted);
  while (fits > 0 && !fitsWhole(fits)) fits -= 1;
  t.comment(`ALL with every item at its longest real value: ${whole} bytes whole (limit ${MAX_REPLY_BYTES}); whole with a VM name of up to ${fits} characters`);
  t.ok(fits >= 32, `a ${fits}-character VM name still fits with everything else at its longest`);
  // What the README states.
  const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
  t.match(readme, new RegExp(`would be\\s+${whole} bytes`), 'the README states the whole length');
  t.match(readme, new RegExp(`VM name of up to\\s+${fits}\\s+characters`), 'and the VM name that still fits');
});

t.test('longer than real: the longest values give way as unavailable, the line stays whole', async (t) => {
  const huge = { ...LONGEST_HOST, hostname: 'H'.repeat(256), kernel: 'K'.repeat(200), cpumodel: `"${'M '.repeat(127)}` };
  const vm = { ...LONGEST_VM, name: '"'.repeat(200) };
  const ctx = context(huge, vm);
  const reply = ask(ctx, 'ALL');
  t.ok(reply.length <= MAX_REPLY_BYTES, `${reply.length} bytes`);
  const words = parseAllReply(reply);
  t.same(words.map((word) => word.name), ITEM_NAMES, 'every item still there, in order');
  const gaveWay = words.filter((word) => word.value === UNAVAILABLE_WORD && !word.quoted).map((word) => word.name);
  // vmname (402 characters quoted), cpumodel (256), then hostname (256); after those three the
  // 200-character kernel fits.
  t.same(gaveWay, ['cpumodel', 'hostname', 'vmname'], 'only as many outliers as needed, longest first');
  t.equal(words.find((word) => word.name === 'kernel')?.value, 'K'.repeat(200), 'the one that fits is kept');
  for (const word of words.filter((w) => !gaveWay.includes(w.name))) t.equal(word.value, single(ctx, word.name as ItemName), word.name);
});

// Arbitrary values of every type the items have, texts full of quotes, backslashes and spaces.
const text = fc.string({ unit: fc.constantFrom('a', 'Z', '"', '\\', ' ', ' ', '=', '\t', '\u00e9', 'u'), maxLength: 300 });
const count = fc.oneof(fc.nat(100_000), fc.maxSafeNat());
const amount = fc.oneof(fc.double({ min: 0, max: 1e6, noNaN: true }), fc.double({ min: 0, max: 1e25, noNaN: true }));
const hostValues = fc.record<HostValues>({
  physcpus: count, physcores: count, sockets: count, cpumodel: text, cpumhz: amount,
  loadavg: fc.tuple(amount, amount, amount), cpuusage: fc.record({ user: amount, system: amount, iowait: amount, steal: amount, idle: amount }),
  pressure: fc.record({ cpu: amount, memory: amount, io: amount }), physmem: fc.record({ total: count, free: count, available: count }),
  swap: fc.record({ total: count, free: count }), uptime: amount, hostname: text, kernel: text, vmcount: count,
  pagedin: count, pagedout: count, hostcputime: amount,
});
const vmFacts: fc.Arbitrary<VmFacts> = fc.record({
  hypervisor: text, vcpuDelay: amount.map((percent) => ({ percent, measuredAt: NOW })), name: text, uuid: text, vcpus: count,
  cpuTime: amount.map(measured), vcpuUsage: amount.map(measured),
  memory: fc.record({ total: count, balloon: fc.option(count, { nil: null }) }).map(measured),
  cpuLimit: fc.option(amount, { nil: null }).map(measured), memLimit: fc.option(count, { nil: null }).map(measured),
  session: fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 16, maxLength: 16 }).map((value) => ({ value })),
});

t.test('property: a reader of the README grammar reads back every permitted item\'s own text', async (t) => {
  fc.assert(fc.property(hostValues, vmFacts, fc.subarray([...ITEM_NAMES]), (values, vm, items) => {
    const ctx = context(values, vm, items);
    const reply = ask(ctx, 'ALL');
    if (reply.length > MAX_REPLY_BYTES) throw new Error(`${reply.length} bytes`);
    const words = parseAllReply(reply);
    if (words.map((w) => w.name).join(' ') !== items.join(' ')) throw new Error(`items ${words.map((w) => w.name).join(' ')}`);
    const textLength = reply.length - '1.0 200 \n'.length;
    for (const word of words) {
      const own = single(ctx, word.name as ItemName);
      if (word.value === own && (word.quoted || own !== UNAVAILABLE_WORD)) continue;
      // Only a value that could not fit may give way, and only as the bare marker.
      const room = textLength - `${word.name}=${UNAVAILABLE_WORD}`.length + `${word.name}=${encodeValue(own)}`.length;
      if (word.quoted || word.value !== UNAVAILABLE_WORD || room <= ALL_TEXT_ROOM) throw new Error(`${word.name}: ${JSON.stringify(word.value)} for ${JSON.stringify(own)}`);
    }
  }), { seed: 20261201, numRuns: 2000 });
  t.pass('2000 random value sets read back');
});

/** The README's allvalue function, run by `sh` with the awk given. */
function readmeAllvalue(awk: string, line: string, item: string): string {
  const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
  const block = /```sh\n(# allvalue ITEM[\s\S]*?\n\})\n/.exec(readme)?.[1];
  if (block === undefined) throw new Error('no allvalue function in the README');
  const script = `${block.replace(/^( *)awk /m, `$1${awk} `)}\nprintf '%s\\n' "$LINE" | allvalue "$ITEM"`;
  const run = spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LINE: line, ITEM: item } });
  if (run.status !== 0) throw new Error(`sh exited ${run.status}: ${run.stderr}`);
  return run.stdout.replace(/\n$/, '');
}

const awks = ['awk', 'busybox awk'].filter((awk) => spawnSync('sh', ['-c', `${awk} 'BEGIN { exit 0 }'`]).status === 0);

t.test('the README\'s eval-free awk reader gets the values back', async (t) => {
  const vm = { ...LONGEST_VM, name: 'web "1" \\ loadavg=x' };
  const ctx = context({ ...LONGEST_HOST, cpumodel: 'AMD EPYC 7B13 64-Core Processor' }, vm);
  const reply = ask(ctx, 'ALL').replace(/\n$/, '');
  const words = parseAllText(reply.replace(/^1\.0 200 /, ''));
  t.ok(awks.length > 0, `awks found: ${awks.join(', ')}`);
  for (const awk of awks) {
    for (const name of ['physcpus', 'cpumodel', 'loadavg', 'vmname', 'vmmem', 'vmuuid']) {
      t.equal(readmeAllvalue(awk, reply, name), words.find((w) => w.name === name)?.value, `${awk}: ${name}`);
    }
    t.equal(readmeAllvalue(awk, reply, 'nosuchitem'), '', `${awk}: an item not in the line prints nothing`);
    t.equal(readmeAllvalue(awk, '1.0 429 too many requests; retry after 5 ms', 'physcpus'), '', `${awk}: a non-200 line prints nothing`);
    t.equal(readmeAllvalue(awk, '1.0 200 a="open', 'a'), 'open', `${awk}: a cut line ends the loop`);
  }
});
