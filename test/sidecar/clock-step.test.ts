// Issue 15: an NTP step of the wall clock must change nothing but hosttime. The rate limiter, the
// audit limiter and every age (host sample, vCPU measurement) run on the monotonic clock; the
// host sample's age is counted from its arrival at the sidecar, never from the daemon's takenAt.
// Checked through the pure handler and through a real Sidecar in-process (real QEMU for QMP, a
// fake daemon on the other end of a socket pair, a GuestEnd as the chardev), with injected clocks
// the test steps by an hour back and forth between requests. Each scenario also runs without
// the steps: every reply but hosttime's must be the same.

import { once } from 'node:events';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AccessMessage, CountersMessage } from '../../daemon/messages.js';
import type { Access } from '../../policies/access.js';
import type { ItemName } from '../../policies/items.js';
import { FRESH_LIMITER, type LimiterState } from '../../policies/rate-limiter.js';
import { AUDIT_RATE } from '../../sidecar/audit-log.js';
import { DaemonChannel } from '../../sidecar/daemon-channel.js';
import { GUEST_RECONNECT, pathConnector } from '../../sidecar/guest-port.js';
import { GuestLineDecoder } from '../../sidecar/protocol/line-decoder.js';
import { handleGuestFrame, type HeldSample, type VmFacts } from '../../sidecar/request-handler.js';
import { Sidecar, type SidecarLog } from '../../sidecar/sidecar.js';
import { accessMessage, socketPair } from '../daemon/server-setup.js';
import { tempDir, withTimeout } from '../daemon/helpers.js';
import { startQemu } from '../fixtures/qmp/qemu.js';
import { GuestEnd } from '../helpers/guest-end.js';
import type { Teardown } from '../helpers/logged-process.js';

t.setTimeout(120_000);

const HOUR = 3_600_000;
/** Wall clock at the start, epoch ms. */
const WALL = 1_795_613_704_391;
/** Monotonic clock at the start (performance.now of a sidecar that has run a while). */
const MONO = 52_301_007;
const ITEMS: readonly ItemName[] = ['physcpus', 'loadavg', 'vcpudelay', 'hosttime'];
const LIMIT = { burst: 3, intervalMs: 1000 };
const MAX_AGE_MS = 5000;
const VALUES = { physcpus: 16, loadavg: [0.52, 0.48, 0.4] as const };

/** One request: `at` ms after the start on the monotonic clock, the wall clock `offset` ms off. */
interface Step {
  readonly at: number;
  readonly offset: number;
  readonly line: string;
  readonly expect: string;
}

const hosttime = (wall: number): string => `1.0 200 ${(wall / 1000).toFixed(3)}`;

/**
 * Burst 3, interval 1 s, max_age 5 s; host sample and vCPU measurement taken at 0. The wall clock
 * jumps an hour back or forward before most requests; the replies are those of a clock that
 * never stepped (hosttime aside).
 */
const LIMITER_AND_AGES: readonly Step[] = [
  { at: 0, offset: 0, line: 'physcpus', expect: '1.0 200 16' },
  { at: 0, offset: -HOUR, line: 'loadavg', expect: '1.0 200 0.52 0.48 0.40' },
  { at: 0, offset: +HOUR, line: 'vcpudelay', expect: '1.0 200 2.35' },
  { at: 0, offset: -HOUR, line: 'physcpus', expect: '1.0 429 too many requests; retry after 1000 ms' },
  { at: 999, offset: +HOUR, line: 'physcpus', expect: '1.0 429 too many requests; retry after 1 ms' },
  { at: 1000, offset: -HOUR, line: 'hosttime', expect: hosttime(WALL + 1000 - HOUR) },
  { at: 1000, offset: +HOUR, line: 'physcpus', expect: '1.0 429 too many requests; retry after 1000 ms' },
  // Exactly max_age after the sample, an hour ahead on the wall clock: still fresh.
  { at: 5000, offset: +HOUR, line: 'loadavg', expect: '1.0 200 0.52 0.48 0.40' },
  { at: 5000, offset: -HOUR, line: 'vcpudelay', expect: '1.0 200 2.35' },
  // One ms past max_age, an hour behind on the wall clock: stale, not served.
  { at: 5001, offset: -HOUR, line: 'loadavg', expect: '1.0 503 host statistics unavailable: newest sample is 5.0 s old' },
  { at: 5001, offset: +HOUR, line: 'physcpus', expect: '1.0 429 too many requests; retry after 999 ms' },
  { at: 6000, offset: -HOUR, line: 'vcpudelay', expect: '1.0 503 host statistics unavailable: newest sample is 6.0 s old' },
  { at: 6000, offset: 0, line: 'hosttime', expect: '1.0 429 too many requests; retry after 1000 ms' },
];

const withoutSteps = (steps: readonly Step[]): Step[] =>
  steps.map((step) => ({ ...step, offset: 0, expect: step.line === 'hosttime' && step.expect.startsWith('1.0 200 ') ? hosttime(WALL + step.at) : step.expect }));

t.test('pure handler: wall steps move hosttime and nothing else', async (t) => {
  const access: Access = { served: true, policy: { file: '/p/vm.toml', enabled: true, items: ITEMS, limit: LIMIT } };
  const sample: HeldSample = { values: VALUES, receivedAt: MONO };
  const vm: VmFacts = { hypervisor: 'QEMU 7.2.22', vcpuDelay: { percent: 2.3456, measuredAt: MONO } };
  const run = (steps: readonly Step[]): string[] => {
    let limiter: LimiterState = FRESH_LIMITER;
    return steps.map((step) => {
      const [frame] = new GuestLineDecoder().push(Buffer.from(`${step.line}\n`));
      const outcome = handleGuestFrame({ access, limiter, sample, vm, maxAgeMs: MAX_AGE_MS, now: MONO + step.at, wallNow: WALL + step.at + step.offset, version: '0.1.0' }, frame!);
      limiter = outcome.limiter;
      return (outcome.reply ?? '').replace(/\n$/, '');
    });
  };
  t.same(run(LIMITER_AND_AGES), LIMITER_AND_AGES.map((step) => step.expect), 'with the wall clock stepping ±1 h');
  t.same(run(withoutSteps(LIMITER_AND_AGES)), withoutSteps(LIMITER_AND_AGES).map((step) => step.expect), 'without any step');
});

// ---- A real Sidecar -------------------------------------------------------------------------

interface Clock {
  mono: number;
  wall: number;
}

interface FakeDaemon {
  send(message: object): void;
  readonly counters: CountersMessage[];
  readonly closed: Promise<unknown>;
}

/** The daemon's end of the pair: an http server that never listens, as hostinfod does it. */
function fakeDaemon(t: Teardown, daemonEnd: Socket, access: AccessMessage): Promise<FakeDaemon> {
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  t.teardown(() => void wss.close());
  const daemon = new Promise<FakeDaemon>((resolve) => {
    wss.once('connection', (ws: WebSocket) => {
      const counters: CountersMessage[] = [];
      ws.on('message', (data) => {
        const message = JSON.parse(data.toString()) as { type: string };
        if (message.type === 'counters') counters.push(message as CountersMessage);
      });
      const closed = once(ws, 'close');
      ws.send(JSON.stringify(access));
      resolve({ send: (message) => ws.send(JSON.stringify(message)), counters, closed });
    });
  });
  http.emit('connection', daemonEnd);
  return daemon;
}

interface Phase {
  /** The daemon sends a sample first, at this monotonic instant, the wall clock `sampleOffset` off. */
  readonly sampleAt?: number;
  readonly sampleOffset?: number;
  readonly steps: readonly Step[];
}

interface SidecarRun {
  readonly replies: string[];
  /** Audit lines written after each request, in all. */
  readonly audited: number[];
  readonly suppressedReported: number[];
  readonly lastCounters: CountersMessage | undefined;
  readonly lastWall: number;
}

/**
 * Runs `phases` against one real Sidecar. Each phase may first have the daemon send a sample
 * (stamped with the daemon's wall clock, kept from going back as daemon/sampler.ts does), then
 * asks its steps in order.
 */
async function runSidecar(t: Teardown, phases: readonly Phase[]): Promise<SidecarRun> {
  const clock: Clock = { mono: MONO, wall: WALL };
  const qemu = await startQemu(t, ['-name', 'clockvm', '-smp', '1']);
  const access: AccessMessage = {
    ...accessMessage(ITEMS, { name: 'clockvm' }),
    vm: { name: 'clockvm', uuid: '11111111-2222-3333-4444-555555555555', pid: qemu.pid },
    limit: LIMIT,
    maxAgeMs: MAX_AGE_MS,
    // No second vCPU reading during the test: vcpudelay is the pure test's.
    sampleIntervalMs: 600_000,
    guest: { linesPerSecond: 100_000, bytesPerSecond: 1_000_000 },
  };
  const [daemonEnd, sidecarEnd] = await socketPair(t);
  const connected = fakeDaemon(t, daemonEnd, access);
  const monotonic = (): number => clock.mono;
  const channel = new DaemonChannel(sidecarEnd, { monotonic });
  const guestPath = join(tempDir(t), 'guest.sock');
  const guest = await GuestEnd.listen(t, guestPath);
  const logged: Record<string, unknown>[] = [];
  const capture = (fields: object): void => void logged.push(fields as Record<string, unknown>);
  const log: SidecarLog = { info: capture, warn: capture, error: capture };
  const sidecar = new Sidecar({
    channel,
    qmp: qemu.socketPath,
    guest: { connect: pathConnector(guestPath), reconnect: GUEST_RECONNECT },
    qemuPid: qemu.pid,
    log,
    clock: { monotonic, wall: () => clock.wall },
  });
  t.teardown(() => sidecar.stop('test over'));
  await withTimeout(sidecar.start(), 'the sidecar to start');
  await guest.connected();
  const daemon = await withTimeout(connected, 'the sidecar channel');

  const audits = (): Record<string, unknown>[] => logged.filter((line) => line['event'] === 'request');
  const replies: string[] = [];
  const audited: number[] = [];
  let lastTakenAt = 0;
  let seq = 0;
  for (const phase of phases) {
    if (phase.sampleAt !== undefined) {
      clock.mono = MONO + phase.sampleAt;
      clock.wall = WALL + phase.sampleAt + (phase.sampleOffset ?? 0);
      lastTakenAt = Math.max(clock.wall, lastTakenAt);
      seq += 1;
      const arrived = withTimeout(once(channel, 'sample'), `sample ${seq}`);
      daemon.send({ v: 2, type: 'sample', seq, takenAt: lastTakenAt, values: VALUES });
      await arrived;
    }
    for (const step of phase.steps) {
      // Time passes on both clocks alike; the wall clock alone is stepped by `offset`.
      clock.mono = MONO + step.at;
      clock.wall = WALL + step.at + step.offset;
      replies.push(await guest.ask(step.line));
      audited.push(audits().length);
    }
  }
  const lastWall = clock.wall;
  await sidecar.stop('scenario done');
  await withTimeout(daemon.closed, 'the channel to close');
  const suppressedReported = audits().flatMap((line) => (typeof line['suppressed'] === 'number' ? [line['suppressed']] : []));
  return { replies, audited, suppressedReported, lastCounters: daemon.counters.at(-1), lastWall };
}

/** 25 requests at one instant, the wall clock flipping an hour each time, then one 100 ms later. */
function auditFlood(at: number): Step[] {
  const flood: Step[] = [];
  for (let i = 0; i < 25; i += 1) {
    flood.push({ at, offset: i % 2 === 0 ? -HOUR : +HOUR, line: 'PING', expect: i < 3 ? '1.0 200 pong' : '1.0 429 too many requests; retry after 1000 ms' });
  }
  flood.push({ at: at + AUDIT_RATE.intervalMs, offset: -HOUR, line: 'PING', expect: '1.0 429 too many requests; retry after 900 ms' });
  return flood;
}

/** A sample taken before a step, asked about after it. */
const SAMPLE_ACROSS_STEPS = {
  forward: { at: 21_000, offset: +HOUR, line: 'loadavg', expect: '1.0 200 0.52 0.48 0.40' },
  backward: { at: 25_001, offset: -HOUR, line: 'loadavg', expect: '1.0 503 host statistics unavailable: newest sample is 5.0 s old' },
  renewed: { at: 25_001, offset: -HOUR, line: 'loadavg', expect: '1.0 200 0.52 0.48 0.40' },
  time: { at: 25_001, offset: -HOUR, line: 'hosttime', expect: hosttime(WALL + 25_001 - HOUR) },
} as const;

function sidecarPhases(steps: boolean): Phase[] {
  const fix = (list: readonly Step[]): Step[] => (steps ? [...list] : withoutSteps(list));
  // vcpudelay has no measurement here (one reading, a long interval; the pure test has it): those
  // requests PING instead (which needs no sample), each one allowed by the limiter.
  const limiter = LIMITER_AND_AGES.map((step) => (step.line === 'vcpudelay' ? { ...step, line: 'PING', expect: '1.0 200 pong' } : step));
  return [
    { sampleAt: 0, steps: fix(limiter) },
    { steps: fix(auditFlood(10_000)) },
    // Taken at the true time; asked about an hour ahead (fresh), then an hour behind (stale).
    { sampleAt: 20_000, steps: fix([SAMPLE_ACROSS_STEPS.forward, SAMPLE_ACROSS_STEPS.backward]) },
    // The daemon's next sample, after the step back: its takenAt held back by the daemon, fresh on arrival.
    { sampleAt: 25_001, sampleOffset: steps ? -HOUR : 0, steps: fix([SAMPLE_ACROSS_STEPS.renewed, SAMPLE_ACROSS_STEPS.time]) },
  ];
}

t.test('a real Sidecar: limiter, audit limiter and sample ages ignore ±1 h wall steps', async (t) => {
  const phases = sidecarPhases(true);
  const stepped = await runSidecar(t, phases);
  const expected = phases.flatMap((phase) => phase.steps.map((step) => step.expect));
  t.same(stepped.replies, expected, 'every reply as on a clock that never stepped; hosttime follows the wall clock');

  const flat = phases.flatMap((phase) => phase.steps);
  const floodStart = phases[0]!.steps.length;
  const floodEnd = floodStart + phases[1]!.steps.length;
  const auditedBefore = stepped.audited[floodStart - 1] ?? 0;
  t.equal(auditedBefore, floodStart, 'every request before the flood is audited');
  t.equal((stepped.audited[floodEnd - 2] ?? 0) - auditedBefore, AUDIT_RATE.burst, 'of 25 requests at one instant, the audit burst is logged, whatever the wall clock does');
  t.equal((stepped.audited[floodEnd - 1] ?? 0) - auditedBefore, AUDIT_RATE.burst + 1, 'one audit interval later the next one is, an hour back on the wall clock or not');
  t.same(stepped.suppressedReported, [25 - AUDIT_RATE.burst], 'with the count of those left out');
  t.equal(stepped.audited.at(-1), flat.length - (25 - AUDIT_RATE.burst), 'every later request is audited too');

  t.match(stepped.lastCounters, { requests: flat.length, rateLimited: expected.filter((reply) => reply.startsWith('1.0 429')).length }, 'counters count every request');
  t.equal(stepped.lastCounters?.lastRequestAt, stepped.lastWall, 'lastRequestAt stays wall-clock epoch ms, for people');

  const steady = await runSidecar(t, sidecarPhases(false));
  const hosttimeAt = flat.flatMap((step, index) => (step.line === 'hosttime' && step.expect.startsWith('1.0 200 ') ? [index] : []));
  const masked = (replies: readonly string[]): string[] => replies.map((reply, index) => (hosttimeAt.includes(index) ? 'hosttime' : reply));
  t.same(masked(stepped.replies), masked(steady.replies), 'the same replies as a run without steps, hosttime aside');
  t.same(stepped.audited, steady.audited, 'the same audit lines as a run without steps');
  t.not(stepped.replies[hosttimeAt[0]!], steady.replies[hosttimeAt[0]!], 'hosttime differs by the step');
});

t.test('the channel stamps a sample with its arrival on the monotonic clock, once per seq', async (t) => {
  let mono = MONO;
  const [daemonEnd, sidecarEnd] = await socketPair(t);
  const daemon = fakeDaemon(t, daemonEnd, accessMessage(['physcpus']));
  const channel = new DaemonChannel(sidecarEnd, { monotonic: () => mono });
  t.teardown(() => channel.close());
  const { send } = await withTimeout(daemon, 'the channel');
  const sample = async (seq: number, takenAt: number): Promise<void> => {
    const arrived = withTimeout(once(channel, 'sample'), `sample ${seq}`);
    send({ v: 2, type: 'sample', seq, takenAt, values: { physcpus: 16 } });
    await arrived;
  };
  t.equal(channel.latestReceivedAt, undefined, 'nothing before the first sample');
  await sample(1, WALL + HOUR);
  t.equal(channel.latestReceivedAt, MONO, 'takenAt (the daemon\'s wall clock) plays no part');
  mono += 4000;
  await sample(1, WALL + HOUR);
  t.equal(channel.latestReceivedAt, MONO, 'the same sample re-sent (refiltered for a new decision) is no younger');
  mono += 2000;
  await sample(2, WALL - HOUR);
  t.equal(channel.latestReceivedAt, MONO + 6000, 'a new sample is stamped when it arrives');
  t.equal(channel.latest?.seq, 2);
});
