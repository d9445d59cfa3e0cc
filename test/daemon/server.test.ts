import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { HOST_ITEM_NAMES, ITEM_NAMES } from '../../policies/items.js';
import { DAEMON_PROTOCOL, MAX_CLIENT_MESSAGE_BYTES, MAX_CLIENT_PAYLOAD_BYTES } from '../../daemon/messages.js';
import { MAX_CONTROL_CONNECTIONS } from '../../daemon/server.js';
import { TestClient, withTimeout } from './helpers.js';
import { EMPTY_STATUS, TestLink, accessMessage, attachTestSidecar, fullSnapshot, startServer } from './server-setup.js';

const COUNTERS = { requests: 10, ok: 7, denied: 1, rateLimited: 2, errors: 0, droppedBytes: 0, droppedLines: 0, lastRequestAt: 1795600000000 };

t.test('a sidecar gets its access first, then only the host items its policy allows', async (t) => {
  const s = await startServer(t);
  const narrowLink = new TestLink('narrow', accessMessage(['physcpus', 'loadavg', 'hosttime', 'vcpudelay']));
  const wideLink = new TestLink('wide', accessMessage(ITEM_NAMES));
  const narrow = await attachTestSidecar(t, s, narrowLink);
  const wide = await attachTestSidecar(t, s, wideLink);
  t.same(await narrow.next(), { ...narrowLink.current, range: DAEMON_PROTOCOL }, 'the access decision is the first frame, with the daemon\'s version range');
  t.same(await wide.next(), { ...wideLink.current, range: DAEMON_PROTOCOL });
  for (let i = 0; i < 3; i++) s.server.publish(fullSnapshot(s.clock + i));
  for (let i = 0; i < 3; i++) {
    t.same(Object.keys((await narrow.next())['values'] as object), ['physcpus', 'loadavg']);
    t.same(Object.keys((await wide.next())['values'] as object), HOST_ITEM_NAMES);
  }
});

t.test('a VM that is not served gets its refusal and samples without values', async (t) => {
  const s = await startServer(t);
  const link = new TestLink('off', accessMessage(['physcpus'], { served: false }));
  const client = await attachTestSidecar(t, s, link);
  t.match(await client.next(), { type: 'access', served: false, items: [], reason: 'no policy for this VM' });
  s.server.publish(fullSnapshot(s.clock));
  t.same((await client.next())['values'], {});
});

t.test('an item absent from the sample is absent for the sidecar too', async (t) => {
  const s = await startServer(t);
  const client = await attachTestSidecar(t, s, new TestLink('a', accessMessage(['pressure', 'physcpus'])));
  await client.nextOf('access');
  s.server.publish({ takenAt: s.clock, values: { physcpus: 2 } });
  t.same((await client.nextOf('sample'))['values'], { physcpus: 2 });
});

t.test('sequence numbers increase and sample times never decrease', async (t) => {
  const s = await startServer(t);
  const client = await attachTestSidecar(t, s, new TestLink('a', accessMessage(['uptime'])));
  await client.nextOf('access');
  const published: number[] = [];
  for (let i = 0; i < 10; i++) published.push(s.server.publish(fullSnapshot(s.clock + i * 100)));
  let lastSeq = 0;
  let lastTime = 0;
  for (let i = 0; i < 10; i++) {
    const sample = await client.nextOf('sample');
    const seq = sample['seq'] as number;
    const takenAt = sample['takenAt'] as number;
    t.ok(seq > lastSeq && takenAt >= lastTime, `seq ${seq} after ${lastSeq}, time ${takenAt} after ${lastTime}`);
    t.equal(seq, published[i]);
    lastSeq = seq;
    lastTime = takenAt;
  }
  t.equal(s.server.lastSeq, published.at(-1));
});

t.test('a new sidecar gets the newest sample at once; a policy change resends access, then the sample refiltered', async (t) => {
  const s = await startServer(t);
  s.server.publish(fullSnapshot(s.clock));
  const link = new TestLink('a', accessMessage(['physcpus', 'hostname']));
  const client = await attachTestSidecar(t, s, link);
  await client.nextOf('access');
  const first = await client.next();
  t.same([first['type'], first['seq'], first['values']], ['sample', 1, { physcpus: 16, hostname: 'host01' }]);

  link.current = accessMessage(['physcpus']);
  s.server.refreshAccess(link);
  t.same(await client.next(), { ...link.current, range: DAEMON_PROTOCOL }, 'the new decision comes before any sample under it');
  t.same(await client.next(), { v: 2, type: 'sample', seq: 1, takenAt: s.clock, values: { physcpus: 16 } });
  s.server.publish(fullSnapshot(s.clock + 1000));
  t.same((await client.next())['values'], { physcpus: 16 });

  link.current = accessMessage(['physcpus'], { served: false });
  s.server.refreshAccess(link);
  t.match(await client.next(), { type: 'access', served: false });
  t.same((await client.next())['values'], {}, 'disabled: nothing more of the host');
  s.server.refreshAccess(new TestLink('a', link.current));
  s.server.publish(fullSnapshot(s.clock + 2000));
  t.equal((await client.next())['type'], 'sample', 'a refresh for another link object sends this one nothing');
});

t.test('hello and counters reach the link; nothing the sidecar says changes what it gets', async (t) => {
  const s = await startServer(t);
  const link = new TestLink('a', accessMessage(['uptime']));
  const client = await attachTestSidecar(t, s, link);
  await client.nextOf('access');
  const qmp = { name: 'other', uuid: null, version: '8.2.2' };
  client.send({ v: 2, type: 'hello', qmp });
  client.send({ v: 2, type: 'counters', ...COUNTERS });
  client.send({ v: 2, type: 'counters', ...COUNTERS, requests: 11 });
  await withTimeout((async () => {
    while (link.reports.length < 2) await new Promise((resolve) => setImmediate(resolve));
  })(), 'the counters');
  t.same(link.hellos, [{ v: 2, type: 'hello', qmp, features: [] }]);
  t.same(link.reports.map((r) => r.requests), [10, 11]);
  s.server.publish(fullSnapshot(s.clock));
  t.same((await client.next())['values'], { uptime: 123456.78 });
});

t.test('malformed frames: an error frame, then close; other sidecars carry on', async (t) => {
  const s = await startServer(t);
  const healthy = await attachTestSidecar(t, s, new TestLink('healthy', accessMessage(['uptime'])));
  await healthy.nextOf('access');
  const cases: { name: string; frame: string | Buffer; code: string; close: number }[] = [
    { name: 'not JSON', frame: '{"v":2,', code: 'MALFORMED_JSON', close: 1008 },
    { name: 'wrong version', frame: '{"v":1,"type":"hello","qmp":{"name":null,"uuid":null,"version":""}}', code: 'BAD_VERSION', close: 1008 },
    { name: 'status on the channel', frame: '{"v":2,"type":"status"}', code: 'UNKNOWN_TYPE', close: 1008 },
    { name: 'unknown type', frame: '{"v":2,"type":"subscribe"}', code: 'UNKNOWN_TYPE', close: 1008 },
    { name: 'invalid hello', frame: JSON.stringify({ v: 2, type: 'hello', qmp: { name: 5 } }), code: 'INVALID_MESSAGE', close: 1008 },
    { name: 'binary frame', frame: Buffer.from('{"v":2,"type":"status"}'), code: 'BINARY_FRAME', close: 1003 },
    { name: 'over the message limit', frame: JSON.stringify({ v: 2, type: 'hello', pad: 'x'.repeat(MAX_CLIENT_MESSAGE_BYTES) }), code: 'TOO_LARGE', close: 1009 },
  ];
  const errors: string[] = [];
  s.server.on('protocolError', (link, error) => errors.push(`${link?.id}:${error.code}`));
  for (const c of cases) {
    const link = new TestLink('bad', accessMessage(['physcpus']));
    const bad = await attachTestSidecar(t, s, link);
    await bad.nextOf('access');
    const gone = once(s.server, 'disconnected');
    bad.ws.send(c.frame);
    const error = await bad.nextOf('error');
    t.equal(error['code'], c.code, c.name);
    t.type(error['message'], 'string');
    t.equal((await bad.closed).code, c.close, `${c.name}: close code`);
    await withTimeout(gone, 'disconnected');
    t.equal(link.closes, 1, `${c.name}: the link learns its sidecar is gone`);
    const published = s.server.publish(fullSnapshot(s.clock));
    t.equal((await healthy.nextOf('sample'))['seq'], published, `${c.name}: the healthy sidecar still gets every sample`);
  }
  t.same(errors, cases.map((c) => `bad:${c.code}`));
});

t.test('version negotiation: an old-shaped sidecar and a newer one are served, one with no common version is refused', async (t) => {
  const s = await startServer(t);
  const qmp = { name: 'vm', uuid: null, version: '8.2.2' };
  const served = async (name: string, hello: object, counters: object): Promise<void> => {
    const link = new TestLink(name, accessMessage(['uptime']));
    const client = await attachTestSidecar(t, s, link);
    t.match(await client.nextOf('access'), { v: 2, range: DAEMON_PROTOCOL }, `${name}: the daemon announces its range`);
    client.send(hello);
    client.send(counters);
    await withTimeout((async () => {
      while (link.reports.length < 1) await new Promise((resolve) => setImmediate(resolve));
    })(), `${name}: the counters`);
    t.same(link.hellos, [{ v: 2, type: 'hello', qmp, features: [] }], `${name}: the hello, without the keys the daemon does not know`);
    t.same(link.reports, [{ v: 2, type: 'counters', ...COUNTERS }], `${name}: counters in the agreed version`);
    s.server.publish(fullSnapshot(s.clock));
    t.match(await client.nextOf('sample'), { v: 2, values: { uptime: 123456.78 } }, `${name}: samples in the agreed version`);
    t.equal(link.closes, 0, `${name}: still connected`);
  };
  // A sidecar of today's shape (no range), with a key from some later minor change.
  await served('old', { v: 2, type: 'hello', qmp: { ...qmp, arch: 'x86_64' }, later: true }, { v: 2, type: 'counters', ...COUNTERS, extra: 1 });
  // A newer sidecar that speaks 2..5 and has more to say; it writes in 2 once it has read the access.
  await served('future', { v: 2, range: { min: 2, max: 5 }, type: 'hello', qmp, capabilities: ['x'] }, { v: 2, type: 'counters', ...COUNTERS, histogram: [1, 2] });

  const link = new TestLink('too-new', accessMessage(['uptime']));
  const client = await attachTestSidecar(t, s, link);
  await client.nextOf('access');
  const gone = once(s.server, 'disconnected');
  client.send({ v: 4, range: { min: 4, max: 5 }, type: 'hello', qmp });
  const error = await client.nextOf('error');
  t.equal(error['code'], 'BAD_VERSION');
  t.equal(error['message'], 'no common protocol version: hostinfod speaks 2, the sidecar speaks 4..5', 'the message names both ranges');
  t.equal((await client.closed).code, 1008);
  await withTimeout(gone, 'disconnected');
  t.same(link.hellos, []);
});

t.test('before its hello a sidecar must write in a version the daemon speaks; after it, in the agreed one', async (t) => {
  const s = await startServer(t);
  const early = await attachTestSidecar(t, s, new TestLink('early', accessMessage([])));
  await early.nextOf('access');
  early.send({ v: 3, type: 'counters', ...COUNTERS });
  t.match(await early.nextOf('error'), { code: 'BAD_VERSION', message: /version 3; expected 2/ });
  const late = await attachTestSidecar(t, s, new TestLink('late', accessMessage([])));
  await late.nextOf('access');
  late.send({ v: 2, range: { min: 2, max: 3 }, type: 'hello', qmp: { name: null, uuid: null, version: '' } });
  late.send({ v: 3, type: 'counters', ...COUNTERS });
  t.match(await late.nextOf('error'), { code: 'BAD_VERSION', message: /version 3; expected 2, as negotiated/ });
});

t.test('a sidecar that refuses the daemon says why, and the daemon closes the channel', async (t) => {
  const s = await startServer(t);
  const link = new TestLink('refuser', accessMessage([]));
  const client = await attachTestSidecar(t, s, link);
  await client.nextOf('access');
  const gone = once(s.server, 'disconnected');
  client.send({ v: 2, type: 'error', code: 'BAD_VERSION', message: 'no common protocol version', future: 1 });
  t.equal((await client.closed).code, 1008);
  await withTimeout(gone, 'disconnected');
});

t.test('the control socket: a status request of any shape that shares a version', async (t) => {
  const s = await startServer(t);
  const ask = async (request: object): Promise<Record<string, unknown>> => {
    const admin = await TestClient.open(s.controlPath);
    admin.send(request);
    return admin.next();
  };
  t.same(await ask({ v: 2, type: 'status' }), EMPTY_STATUS);
  t.same(await ask({ v: 2, type: 'status', verbose: true }), EMPTY_STATUS, 'an unknown key is ignored');
  t.same(await ask({ v: 5, range: { min: 2, max: 5 }, type: 'status' }), EMPTY_STATUS, 'a newer client: answered in 2');
  t.match(await ask({ v: 4, range: { min: 4, max: 5 }, type: 'status' }), { type: 'error', code: 'BAD_VERSION', message: 'no common protocol version: hostinfod speaks 2, this client speaks 4..5' });
});

t.test('a frame over maxPayload is cut off by ws itself (1009)', async (t) => {
  const s = await startServer(t);
  const bad = await attachTestSidecar(t, s, new TestLink('a', accessMessage([])));
  bad.ws.send('x'.repeat(MAX_CLIENT_PAYLOAD_BYTES + 1));
  t.equal((await bad.closed).code, 1009);
});

t.test('close(): sidecars see a going-away close', async (t) => {
  const s = await startServer(t);
  const client = await attachTestSidecar(t, s, new TestLink('a', accessMessage([])));
  await client.nextOf('access');
  await s.server.close();
  t.equal((await client.closed).code, 1001);
});

t.test('the control socket answers one status per connection, then closes', async (t) => {
  let asked = 0;
  const s = await startServer(t, { control: async () => ({ ...EMPTY_STATUS, seq: ++asked }) });
  const admin = await TestClient.open(s.controlPath);
  admin.send({ v: 2, type: 'status' });
  admin.send({ v: 2, type: 'status' });
  t.same(await admin.next(), { ...EMPTY_STATUS, seq: 1 });
  t.equal((await admin.closed).code, 1000);
  t.equal(asked, 1, 'the second request on the connection was never read');
  const again = await TestClient.open(s.controlPath);
  again.send({ v: 2, type: 'status' });
  t.equal((await again.next())['seq'], 2, 'a new connection gets a new answer');
});

t.test('the control socket refuses everything but status', async (t) => {
  const s = await startServer(t);
  const frames: [string, string][] = [
    [JSON.stringify({ v: 2, type: 'hello', qmp: { name: null, uuid: null, version: '' } }), 'NOT_ALLOWED'],
    ['{"v":2,"type":"counters"}', 'NOT_ALLOWED'],
    ['{"v":1,"type":"status"}', 'BAD_VERSION'],
    ['not json', 'MALFORMED_JSON'],
  ];
  for (const [frame, code] of frames) {
    const admin = await TestClient.open(s.controlPath);
    admin.send(frame);
    t.match(await admin.next(), { v: 2, type: 'error', code });
    t.equal((await admin.closed).code, 1008, code);
  }
});

t.test('an idle control connection is dropped', async (t) => {
  const s = await startServer(t, { controlIdleMs: 50 });
  const admin = await TestClient.open(s.controlPath);
  t.match(await admin.next(), { type: 'error', code: 'IDLE' });
  t.equal((await admin.closed).code, 1008);
});

t.test('plain HTTP on the control socket gets 426, never data', async (t) => {
  const s = await startServer(t);
  const { request } = await import('node:http');
  const req = request({ socketPath: s.controlPath, path: '/' });
  req.end();
  const [response] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  t.equal(response.statusCode, 426);
  response.resume();
});

t.test(`at most ${MAX_CONTROL_CONNECTIONS} control connections at once`, async (t) => {
  const s = await startServer(t);
  const held: Socket[] = [];
  t.teardown(() => held.forEach((socket) => socket.destroy()));
  for (let i = 0; i < MAX_CONTROL_CONNECTIONS; i++) {
    const socket = connect(s.controlPath);
    held.push(socket);
    await withTimeout(once(socket, 'connect'), 'a control connection');
  }
  const count = (): Promise<number> => new Promise((resolve) => s.server.control.getConnections((_e, n) => resolve(n)));
  const connections = (enough: (n: number) => boolean, what: string): Promise<void> => withTimeout((async () => {
    while (!enough(await count())) await new Promise((resolve) => setImmediate(resolve));
  })(), what);
  await connections((n) => n === MAX_CONTROL_CONNECTIONS, 'the server to count every connection');
  const extra = connect(s.controlPath);
  extra.on('error', () => {});
  await withTimeout(once(extra, 'close'), 'the connection over the limit to be closed');
  held.pop()?.destroy();
  await connections((n) => n < MAX_CONTROL_CONNECTIONS, 'the freed slot');
  const admin = await TestClient.open(s.controlPath);
  admin.send({ v: 2, type: 'status' });
  t.equal((await admin.next())['type'], 'status', 'a freed slot serves again');
});

t.test('a control connection that never sends a byte is dropped too', async (t) => {
  const s = await startServer(t, { controlIdleMs: 50 });
  const silent = connect(s.controlPath);
  silent.on('error', () => {});
  await withTimeout(once(silent, 'connect'), 'connect');
  await withTimeout(once(silent, 'close'), 'the silent connection to be dropped');
  t.pass('dropped without a request');
});
