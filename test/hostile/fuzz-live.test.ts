// Fuzz of the LIVE sidecar: one real hostinfo-sidecar process, run by a real hostinfod (real
// paused QEMU for QMP), fed a large generated hostile stream through its chardev socket, in random
// chunk sizes, then a slow one-byte-at-a-time drip, first under a policy with a huge burst (so the
// content paths run) and then under the default rate (so 429s run). The per-guest flood budget is
// lifted (WIDE_GUEST_BUDGET): this is about what the request path does with every line. Every
// reply is checked against an independent split of the input; the sidecar must survive, its peak
// RSS stay bounded, and PING must still be answered afterwards.

import fc from 'fast-check';
import t from 'tap';
import { ITEM_NAMES, type ItemName } from '../../policies/items.js';
import { chunking, cut, fuzzSeed, piece } from './arbitraries.js';
import { changePolicy, memoryKb, sameSidecar, sidecarLines, startHost, startVm } from './live.js';
import { malformed, requestedItem, splitLines, statusOf, type ExpectedLine } from './oracle.js';

const SEED = fuzzSeed(20261125);
/** Generated sessions in the huge-burst phase; about 30 lines each. */
const SESSIONS = Number(process.env['HOSTINFO_FUZZ_LIVE_SESSIONS'] ?? 10_000);
/**
 * Peak RSS bound. A bare Node 20 process with pino and ws loaded sits around 50-60 MB; by design
 * the sidecar holds at most one unfinished line (256 bytes), the frames of one socket chunk
 * (64 KiB, so at most 64 Ki frames) and a write queue that stops reading once it passes the
 * socket's high-water mark. 150 MB leaves room for V8's heap growth under a burst of garbage but
 * would catch anything that keeps per-request state or buffers a guest's unread replies.
 */
const RSS_BOUND_KB = 150 * 1024;
// Allowed: every item but the sensitive vmcount (and kernel), so a leak would show as a 200.
const ALLOWED: readonly ItemName[] = ITEM_NAMES.filter((name) => name !== 'vmcount' && name !== 'kernel');
const HUGE_BURST = `enabled = true\nallow = [${ALLOWED.map((n) => `"${n}"`).join(', ')}]\nburst = 1000000000\ninterval = 0.000001\n`;
// (A 1 µs interval keeps the limiter's debt from phase 1 tiny: see limiter-policy-change.test.ts.)

interface Check { replies: number; statuses: Map<number, number>; problems: string[] }

/** Pairs replies, in order, with the lines that need one, and checks each. */
function checker(expected: readonly ExpectedLine[], allowed: readonly ItemName[]): { onLine: (line: string) => void; check: Check } {
  const answered = expected.filter((line) => line.answered);
  const check: Check = { replies: 0, statuses: new Map(), problems: [] };
  const problem = (text: string): void => { if (check.problems.length < 10) check.problems.push(text); };
  return {
    check,
    onLine: (reply) => {
      const request = answered[check.replies];
      check.replies += 1;
      const bad = malformed(reply);
      if (bad !== undefined) return problem(bad);
      const status = statusOf(reply);
      check.statuses.set(status, (check.statuses.get(status) ?? 0) + 1);
      if (request === undefined) return problem(`reply ${check.replies} has no request line: ${JSON.stringify(reply)}`);
      if (status === 500) problem(`500 for ${JSON.stringify(request.raw.toString('latin1'))}`);
      const item = requestedItem(request.raw);
      if (status === 200 && item !== undefined && !allowed.includes(item)) problem(`200 for ${item} outside the policy: ${JSON.stringify(reply)}`);
      return undefined;
    },
  };
}

const histogram = (statuses: Map<number, number>): string => [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ');

t.test('a live sidecar under generated hostile input', async (t) => {
  t.setTimeout(170_000);
  t.comment(`fuzz seed ${SEED} (replay with HOSTINFO_FUZZ_SEED=${SEED})`);
  const host = await startHost(t, { budget: 'wide' });
  const vm = await startVm(t, host, 'hostile1', HUGE_BURST);
  const pid = vm.sidecarPid;
  t.equal(await vm.guest.ask('PING "before"'), '1.0 200 before');

  // Phase 1: the huge-burst policy, a large stream in generated chunk sizes, written as fast as
  // the socket takes it. A final marker line flushes any unterminated tail and ends the phase.
  const sessions = fc.sample(fc.tuple(fc.array(piece, { minLength: 1, maxLength: 60, size: 'max' }), chunking), { seed: SEED, numRuns: SESSIONS });
  const stream = Buffer.concat([...sessions.flatMap(([pieces]) => pieces), Buffer.from('\nPING "end of phase 1"\n')]);
  const phase1 = splitLines(stream, { connectionStart: false }).lines;
  const one = checker(phase1, ALLOWED);
  vm.guest.onLine = one.onLine;
  const start1 = vm.guest.lines;
  let at = 0;
  let chunks = 0;
  for (const [, how] of sessions) {
    // Each session's chunking applied to a 4 KiB slice (one-byte chunking to 64 bytes of it).
    const slice = stream.subarray(at, at + (how.kind === 'bytes' ? 64 : 4096));
    for (const chunk of cut(slice, how)) { await vm.guest.send(chunk); chunks += 1; }
    at += slice.length;
    if (at >= stream.length) break;
  }
  if (at < stream.length) { await vm.guest.send(stream.subarray(at)); chunks += 1; }
  const needed = phase1.filter((line) => line.answered).length;
  await vm.guest.untilLines(start1 + needed, 'every reply of phase 1', 120_000);
  t.comment(`phase 1: ${phase1.length} lines (${needed} to answer), ${stream.length} bytes in ${chunks} writes; ${histogram(one.check.statuses)}`);
  t.equal(one.check.replies, needed, 'exactly one reply per non-empty, non-echo line');
  t.same(one.check.problems, [], 'every reply well-formed, none outside the policy, no 500');
  t.ok(await sameSidecar(host, vm), 'the sidecar is still running');

  // Slow drip: one byte per write, each after the previous has been handed to the kernel and a
  // timer tick has passed, so the sidecar sees them as separate reads. Includes a line without
  // LF that only ends later, an overlong line and NULs.
  const drip = Buffer.from('physcpus\nPING "drip"\r\nhostname\nph\x00ys\nkernel\nvmcount\nVERSION\n' + 'z'.repeat(300) + '\nPING "unterminated', 'latin1');
  const dripLines = splitLines(Buffer.concat([drip, Buffer.from('\n')]), { connectionStart: false }).lines;
  const dripCheck = checker(dripLines, ALLOWED);
  const dripReplies: string[] = [];
  vm.guest.onLine = (line) => { dripReplies.push(line); dripCheck.onLine(line); };
  const startDrip = vm.guest.lines;
  for (const byte of drip) {
    await vm.guest.send(Buffer.from([byte]));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await vm.guest.send('\n');
  await vm.guest.untilLines(startDrip + dripLines.filter((l) => l.answered).length, 'the drip replies');
  t.same(dripCheck.check.problems, [], 'drip replies well-formed and within the policy');
  t.match(dripReplies.join(''), /^1\.0 200 \d+\n1\.0 200 drip\n1\.0 200 \S+\n1\.0 400 bad request: byte 0x00 at column 3 is not printable ASCII\n1\.0 403 kernel is not permitted for this VM\n1\.0 403 vmcount is not permitted for this VM\n1\.0 200 hostinfo-qemu \S+ protocol 1\.0\n1\.0 400 bad request: line longer than 256 bytes\n1\.0 400 bad request: unterminated quoted string starting at column 6\n$/, 'drip answered as if sent at once');

  // Phase 2: the default rate (burst 1, one per second): the same kind of input now gets 429s.
  await changePolicy(host, vm, 'enabled = true\n');
  const started2 = Date.now();
  const sessions2 = fc.sample(fc.array(piece, { minLength: 1, maxLength: 60, size: 'max' }), { seed: SEED + 1, numRuns: Math.ceil(SESSIONS / 4) });
  const stream2 = Buffer.concat([...sessions2.flat(), Buffer.from('\nPING "end of phase 2"\n')]);
  const phase2 = splitLines(stream2, { connectionStart: false }).lines;
  const defaults = ITEM_NAMES.filter((n) => ['physcpus', 'physcores', 'sockets', 'loadavg', 'cpuusage', 'pressure', 'physmem', 'uptime', 'vcpudelay',
    'vmcputime', 'vmcpuusage', 'vcpus', 'vmmem', 'cpulimit', 'memlimit', 'hostcputime', 'vmsession'].includes(n));
  const two = checker(phase2, defaults);
  vm.guest.onLine = two.onLine;
  const start2 = vm.guest.lines;
  for (let from = 0; from < stream2.length; from += 1500) await vm.guest.send(stream2.subarray(from, from + 1500));
  const needed2 = phase2.filter((line) => line.answered).length;
  await vm.guest.untilLines(start2 + needed2, 'every reply of phase 2', 60_000);
  const elapsed2 = (Date.now() - started2) / 1000;
  t.comment(`phase 2: ${phase2.length} lines (${needed2} to answer), ${stream2.length} bytes in ${elapsed2.toFixed(1)} s; ${histogram(two.check.statuses)}`);
  t.equal(two.check.replies, needed2, 'exactly one reply per non-empty, non-echo line');
  t.same(two.check.problems, [], 'every reply well-formed, none outside the policy, no 500');
  const notLimited = needed2 - (two.check.statuses.get(429) ?? 0);
  t.ok(notLimited <= 1 + Math.ceil(elapsed2) + 1, `${notLimited} requests got past the limiter in ${elapsed2.toFixed(1)} s (burst 1, 1 per s)`);

  // PING still answered: wait out the announced retry-after if the limiter says so.
  vm.guest.onLine = () => {};
  let reply = await vm.guest.ask('PING "after"');
  const retry = /^1\.0 429 too many requests; retry after (\d+) ms$/.exec(reply)?.[1];
  if (retry !== undefined) {
    t.ok(Number(retry) <= 1000, `retry after ${retry} ms is within one interval`);
    if (Number(retry) > 1000) return;
    await new Promise((resolve) => setTimeout(resolve, Number(retry)));
    reply = await vm.guest.ask('PING "after"');
  }
  t.equal(reply, '1.0 200 after', 'PING still answered afterwards');
  t.ok(await sameSidecar(host, vm), 'the sidecar never crashed nor was replaced');

  const peakKb = memoryKb(pid, 'VmHWM');
  t.comment(`sidecar peak RSS (VmHWM) ${(peakKb / 1024).toFixed(1)} MB, RSS now ${(memoryKb(pid, 'VmRSS') / 1024).toFixed(1)} MB`);
  t.ok(peakKb < RSS_BOUND_KB, `peak RSS ${(peakKb / 1024).toFixed(1)} MB < ${RSS_BOUND_KB / 1024} MB`);
  const crashes = (await sidecarLines(host, vm)).filter((line) => line['level'] !== undefined && Number(line['level']) >= 50);
  t.same(crashes, [], 'no error or fatal log lines');
});
