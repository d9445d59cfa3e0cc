import type { Socket } from 'node:net';
import t from 'tap';
import type { SidecarLink } from '../../daemon/subscriber.js';
import { HOST_ITEM_NAMES } from '../../policies/items.js';
import { type TestClient, withTimeout } from './helpers.js';
import { TestLink, accessMessage, attachTestSidecar, fullSnapshot, startServer } from './server-setup.js';

const MAX_BUFFERED = 16 * 1024;
const STALL_TIMEOUT = 5_000;
/** Far more than the kernel's socket buffers can hold in ~1 KiB frames. */
const MAX_PUBLISHES = 50_000;

const rawSocket = (client: TestClient): Socket => (client.ws as unknown as { _socket: Socket })._socket;

async function setup(t: Parameters<typeof startServer>[0]) {
  const s = await startServer(t, { maxBufferedBytes: MAX_BUFFERED, stallTimeoutMs: STALL_TIMEOUT });
  const healthyLink = new TestLink('healthy', accessMessage(['uptime']));
  const slowLink = new TestLink('stalled', accessMessage(HOST_ITEM_NAMES, { name: 'stalled' }));
  const healthy = await attachTestSidecar(t, s, healthyLink);
  const slow = await attachTestSidecar(t, s, slowLink);
  await healthy.nextOf('access');
  await slow.nextOf('access');
  const stalled: SidecarLink[] = [];
  const dropped: SidecarLink[] = [];
  const disconnected: SidecarLink[] = [];
  s.server.on('stalled', (link) => stalled.push(link));
  s.server.on('dropped', (link) => dropped.push(link));
  s.server.on('disconnected', (link) => disconnected.push(link));
  // The slow client stops reading: the kernel buffers fill and then the daemon's side backs up.
  rawSocket(slow).pause();
  // Publish one sample at a time and wait for the healthy subscriber to have it, until the slow
  // one is over the bound. Every sample must reach the healthy one, in order, without gaps.
  let received = 0;
  let seq = 0;
  while (stalled.length === 0 && seq < MAX_PUBLISHES) {
    seq = s.server.publish(fullSnapshot(s.clock));
    const sample = await healthy.nextOf('sample');
    if (sample['seq'] === seq) received++;
  }
  return { s, healthy, slow, slowLink, stalled, dropped, disconnected, received, seq };
}

t.test('a subscriber that never reads does not delay others and is dropped at the bound', async (t) => {
  const { s, healthy, slow, slowLink, stalled, dropped, disconnected, received, seq } = await setup(t);
  t.same(stalled, [slowLink], 'the slow subscriber went over the buffered bound');
  t.equal(received, seq, 'the healthy subscriber got every sample up to then, each before the next was published');

  // Still within the stall timeout: the slow one is skipped, not dropped, and the healthy one is served.
  s.clock += STALL_TIMEOUT - 1;
  t.equal((await publishAndReceive(s, healthy)), true);
  t.same(dropped, []);

  s.clock += 1;
  const closed = slow.closed;
  t.equal((await publishAndReceive(s, healthy)), true);
  t.same(dropped, stalled, 'dropped once it stayed over the bound for the stall timeout');
  rawSocket(slow).resume();
  t.equal((await withTimeout(closed, 'the slow client to see the close')).code, 1006, 'cut off, not a close handshake');
  await withTimeout((async () => {
    while (slowLink.closes === 0) await new Promise((resolve) => setImmediate(resolve));
  })(), 'the link to learn of the drop');
  t.same(disconnected, [slowLink], 'only the slow one is disconnected');
  t.equal(await publishAndReceive(s, healthy), true, 'the healthy one carries on');
});

t.test('a subscriber that catches up gets the newest sample, not the backlog', async (t) => {
  const { s, slow, stalled, seq } = await setup(t);
  t.equal(stalled.length, 1);
  // Five more samples while it is not reading: only the last of them is owed.
  let newest = seq;
  for (let i = 0; i < 5; i++) newest = s.server.publish(fullSnapshot(++s.clock));
  const seen: number[] = [];
  rawSocket(slow).resume();
  for (;;) {
    const sample = await slow.nextOf('sample');
    seen.push(sample['seq'] as number);
    if (sample['seq'] === newest) break;
  }
  t.ok(seen.length < newest, `fewer samples (${seen.length}) than were published (${newest}): older unsent ones were dropped`);
  t.ok(seen.every((value, i) => i === 0 || value > (seen[i - 1] as number)), 'still in order');
  t.notOk(seen.includes(newest - 1), 'the sample before the newest was never sent');
});

async function publishAndReceive(s: Awaited<ReturnType<typeof startServer>>, client: TestClient): Promise<boolean> {
  const seq = s.server.publish(fullSnapshot(s.clock));
  return (await client.nextOf('sample'))['seq'] === seq;
}
