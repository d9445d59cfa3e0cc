// The sidecar's channel (sidecar/daemon-channel.ts) against the real DaemonServer, over a real
// connected unix socket pair, and once over an fd inherited by a child process as the sidecar gets it.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { WebSocketServer } from 'ws';
import { DaemonChannel } from '../../sidecar/daemon-channel.js';
import { withTimeout } from './helpers.js';
import { TestLink, accessMessage, fullSnapshot, socketPair, startServer, type ServerUnderTest } from './server-setup.js';

const PEER = fileURLToPath(new URL('../../../test/fixtures/programs/channel-peer.mjs', import.meta.url));
const CHANNEL_MODULE = new URL('../../sidecar/daemon-channel.js', import.meta.url).href;
const COUNTERS = { requests: 3, ok: 2, denied: 1, rateLimited: 0, errors: 0, droppedBytes: 5, droppedLines: 1, lastRequestAt: 1795600000000 };

type Teardown = Parameters<typeof startServer>[0];

function next<T extends unknown[]>(emitter: DaemonChannel, event: 'open' | 'access' | 'sample' | 'refused' | 'invalid' | 'closed'): Promise<T> {
  return withTimeout(once(emitter, event) as Promise<T>, event);
}

async function until(what: string, done: () => boolean): Promise<void> {
  await withTimeout((async () => {
    while (!done()) await new Promise((resolve) => setImmediate(resolve));
  })(), what);
}

async function attachChannel(t: Teardown, s: ServerUnderTest, link: TestLink): Promise<DaemonChannel> {
  const [daemonEnd, sidecarEnd] = await socketPair(t);
  s.server.attachSidecar(daemonEnd, link);
  const channel = new DaemonChannel(sidecarEnd);
  t.teardown(() => channel.close());
  return channel;
}

t.test('access, samples, hello and counters over the pair', async (t) => {
  const s = await startServer(t);
  s.server.publish(fullSnapshot(1000));
  const link = new TestLink('vm1', accessMessage(['physcpus', 'uptime', 'vcpudelay']));
  const channel = await attachChannel(t, s, link);
  const access = next<[unknown]>(channel, 'access');
  const first = next(channel, 'sample');
  // Sent before the upgrade is complete: held until the channel is open.
  channel.hello({ name: 'vm1', uuid: null, version: '8.2.2' });
  t.same((await access)[0], link.current);
  t.same(channel.access, link.current);
  await first;
  t.same(channel.latest, { seq: 1, snapshot: { takenAt: 1000, values: { physcpus: 16, uptime: 123456.78 } } });

  const sample = next(channel, 'sample');
  const seq = s.server.publish(fullSnapshot(2000));
  await sample;
  t.equal(channel.latest?.seq, seq);
  t.equal(channel.latest?.snapshot.takenAt, 2000);

  channel.reportCounters(COUNTERS);
  await until('the counters', () => link.reports.length === 1);
  t.same(link.hellos, [{ v: 2, type: 'hello', qmp: { name: 'vm1', uuid: null, version: '8.2.2' }, features: ['query'] }], 'the daemon hears what this sidecar understands');
  t.same(link.reports, [{ v: 2, type: 'counters', ...COUNTERS }]);
});

t.test('a policy change arrives as a new access, and the newest sample again under it', async (t) => {
  const s = await startServer(t);
  s.server.publish(fullSnapshot(1000));
  const link = new TestLink('vm1', accessMessage(['physcpus', 'hostname']));
  const channel = await attachChannel(t, s, link);
  await next(channel, 'sample');
  const access = next<[{ served: boolean }]>(channel, 'access');
  const resent = next(channel, 'sample');
  link.current = accessMessage(['physcpus'], { served: false });
  s.server.refreshAccess(link);
  t.equal((await access)[0].served, false);
  await resent;
  t.same(channel.latest, { seq: 1, snapshot: { takenAt: 1000, values: {} } }, 'the same seq, refiltered, is accepted');
});

t.test('something the daemon refuses: refused, then closed', async (t) => {
  const s = await startServer(t);
  const link = new TestLink('vm1', accessMessage([]));
  const channel = await attachChannel(t, s, link);
  await next(channel, 'access');
  const refused = next<[{ code: string }]>(channel, 'refused');
  const closed = next<[number, string]>(channel, 'closed');
  channel.hello({ name: 'x'.repeat(1000), uuid: null, version: '' });
  t.equal((await refused)[0].code, 'INVALID_MESSAGE');
  t.same(await closed, [1008, 'INVALID_MESSAGE']);
  await until('the link to see it', () => link.closes === 1);
});

t.test('either side closing ends the channel for both', async (t) => {
  const s = await startServer(t);
  const a = new TestLink('a', accessMessage([]));
  const b = new TestLink('b', accessMessage([]));
  const channelA = await attachChannel(t, s, a);
  const channelB = await attachChannel(t, s, b);
  await Promise.all([next(channelA, 'access'), next(channelB, 'access')]);
  const gone = withTimeout(once(s.server, 'disconnected'), 'disconnected');
  await channelA.close();
  t.same(await gone, [a], 'the sidecar closed: its link is told');
  t.equal(a.closes, 1);
  const closed = next<[number, string]>(channelB, 'closed');
  await s.server.close();
  t.same(await closed, [1001, 'hostinfod shutting down'], 'the daemon stopped: a going-away close');
  await channelB.close();
});

/** A stand-in daemon on the other end of a pair that sends exactly `frames`. */
async function fakeDaemon(t: Teardown, frames: (string | Buffer)[]): Promise<DaemonChannel> {
  const [daemonEnd, sidecarEnd] = await socketPair(t);
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  wss.on('connection', (ws) => frames.forEach((frame) => ws.send(frame)));
  http.emit('connection', daemonEnd);
  t.teardown(() => void wss.close());
  const channel = new DaemonChannel(sidecarEnd);
  t.teardown(() => channel.close());
  return channel;
}

t.test('a daemon that sends something invalid is dropped', async (t) => {
  const sample = (seq: number, takenAt: number, values: object = { uptime: takenAt }): string => JSON.stringify({ v: 2, type: 'sample', seq, takenAt, values });
  const channel = await fakeDaemon(t, [sample(5, 1), sample(5, 2), sample(4, 3)]);
  const invalid = next<[string]>(channel, 'invalid');
  const closed = next<[number]>(channel, 'closed');
  t.match((await invalid)[0], /sample seq 4 after 5/);
  t.equal((await closed)[0], 1006, 'terminated, no close handshake');
  t.same(channel.latest, { seq: 5, snapshot: { takenAt: 2, values: { uptime: 2 } } }, 'the older seq was not taken');

  const cases: [string, string | Buffer, RegExp][] = [
    ['a sidecar item', sample(1, 1, { vcpudelay: 1 }), /vcpudelay: unknown item/],
    ['a binary frame', Buffer.from(sample(1, 1)), /binary frame/],
    ['a v1 frame', '{"v":1,"type":"subscribed","items":[]}', /^no common protocol version: hostinfo-sidecar speaks 2, hostinfod speaks 1$/],
    ['a daemon with no common version', JSON.stringify({ ...accessMessage([]), v: 4, range: { min: 4, max: 5 } }), /^no common protocol version: hostinfo-sidecar speaks 2, hostinfod speaks 4\.\.5$/],
  ];
  for (const [name, frame, reason] of cases) {
    const bad = await fakeDaemon(t, [frame]);
    const rejected = next<[string]>(bad, 'invalid');
    t.match((await rejected)[0], reason, name);
    t.equal(bad.latest, undefined);
    t.equal(bad.access, undefined);
  }
});

/** A stand-in daemon that answers what the channel sends with `reply`; returns what it received. */
async function scriptedDaemon(t: Teardown, first: string[], reply: (frame: Record<string, unknown>) => string[]): Promise<{ channel: DaemonChannel; received: Record<string, unknown>[] }> {
  const [daemonEnd, sidecarEnd] = await socketPair(t);
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  const received: Record<string, unknown>[] = [];
  wss.on('connection', (ws) => {
    first.forEach((frame) => ws.send(frame));
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Record<string, unknown>;
      received.push(frame);
      reply(frame).forEach((out) => ws.send(out));
    });
  });
  http.emit('connection', daemonEnd);
  t.teardown(() => void wss.close());
  const channel = new DaemonChannel(sidecarEnd);
  t.teardown(() => channel.close());
  return { channel, received };
}

t.test('an older daemon (v2, no range, keys this side does not know): served, and answered in its own shape', async (t) => {
  const access = { ...accessMessage(['physcpus']), future: { x: 1 } };
  const sample = { v: 2, type: 'sample', seq: 1, takenAt: 5, values: { physcpus: 3 }, origin: 'later' };
  const { channel, received } = await scriptedDaemon(t, [JSON.stringify(access), JSON.stringify(sample)], () => []);
  channel.hello({ name: 'vm', uuid: null, version: '8.2.2' });
  const [got] = await next<[unknown]>(channel, 'access');
  t.same(got, accessMessage(['physcpus']), 'the known keys, nothing else');
  await until('the sample', () => channel.latest !== undefined);
  t.same(channel.latest, { seq: 1, snapshot: { takenAt: 5, values: { physcpus: 3 } } });
  t.equal(channel.version, 2);
  await until('the hello', () => received.length === 1);
  t.same(received[0], { v: 2, type: 'hello', qmp: { name: 'vm', uuid: null, version: '8.2.2' } }, 'no range key: that daemon would refuse it');
});

t.test('a newer daemon (2..5, writing 5 until it has the hello): agreed on 2, its v5 frames skipped until it writes 2', async (t) => {
  const v5 = (message: object): string => JSON.stringify({ ...message, v: 5, range: { min: 2, max: 5 }, shiny: true });
  const first = [v5(accessMessage(['physcpus'])), v5({ type: 'sample', seq: 1, takenAt: 5, values: { physcpus: 3 } })];
  const { channel, received } = await scriptedDaemon(t, first, (frame) => (frame['type'] === 'hello'
    ? [JSON.stringify({ ...accessMessage(['uptime']), range: { min: 2, max: 5 } }), JSON.stringify({ v: 2, type: 'sample', seq: 1, takenAt: 5, values: { uptime: 9 } })]
    : []));
  channel.hello({ name: 'vm', uuid: null, version: '8.2.2' });
  const [got] = await next<[{ items: string[] }]>(channel, 'access');
  t.same(got.items, ['uptime'], 'the first access this side can read is the one re-sent in v2');
  await until('the sample', () => channel.latest !== undefined);
  t.same(channel.latest?.snapshot.values, { uptime: 9 });
  t.same(received[0], { v: 2, range: { min: 2, max: 2 }, features: ['query'], type: 'hello', qmp: { name: 'vm', uuid: null, version: '8.2.2' } }, 'a range-aware daemon hears our range and features');
});

t.test('a daemon with no version in common: one error frame naming both ranges, then the channel closes', async (t) => {
  const { channel, received } = await scriptedDaemon(t, [JSON.stringify({ ...accessMessage([]), v: 4, range: { min: 4, max: 5 } })], () => []);
  channel.hello({ name: 'vm', uuid: null, version: '8.2.2' });
  const invalid = next<[string]>(channel, 'invalid');
  const closed = next<[number, string]>(channel, 'closed');
  t.equal((await invalid)[0], 'no common protocol version: hostinfo-sidecar speaks 2, hostinfod speaks 4..5');
  t.same(await closed, [1008, 'BAD_VERSION']);
  t.same(received, [{ v: 4, type: 'error', code: 'BAD_VERSION', message: 'no common protocol version: hostinfo-sidecar speaks 2, hostinfod speaks 4..5' }], 'no hello was sent');
  t.equal(channel.access, undefined);
});

t.test('over an fd inherited by a child process, as the sidecar gets it', async (t) => {
  const s = await startServer(t);
  s.server.publish(fullSnapshot(1000));
  const child = spawn(process.execPath, [PEER, CHANNEL_MODULE], { stdio: ['ignore', 'pipe', 'inherit', 'pipe'] });
  const exited = once(child, 'close');
  t.teardown(() => void child.kill('SIGKILL'));
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString();
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    for (const part of parts) lines.push(JSON.parse(part) as Record<string, unknown>);
  });
  const link = new TestLink('child', accessMessage(['physcpus']));
  s.server.attachSidecar(child.stdio[3] as Socket, link);
  await until('the child to say hello', () => link.hellos.length === 1);
  t.same(link.hellos[0]?.qmp, { name: 'child', uuid: null, version: String(child.pid) });
  await until('the child to report seq 1', () => link.reports.some((r) => r.requests === 1));
  s.server.publish(fullSnapshot(2000));
  await until('the child to report seq 2', () => link.reports.some((r) => r.requests === 2));
  await s.server.close();
  t.same((await withTimeout(exited, 'the child to exit')), [0, null]);
  t.same(lines, [
    { event: 'access', served: true, items: ['physcpus'] },
    { event: 'sample', seq: 1, values: { physcpus: 16 } },
    { event: 'sample', seq: 2, values: { physcpus: 16 } },
    { event: 'closed', code: 1001 },
  ]);
});
