import { once } from 'node:events';
import t from 'tap';
import { HOST_ITEM_NAMES } from '../../policies/items.js';
import { MAX_CLIENT_MESSAGE_BYTES, MAX_CLIENT_PAYLOAD_BYTES } from '../../daemon/messages.js';
import { TestClient, VM, hello, withTimeout } from './helpers.js';
import { fullSnapshot, startServer } from './server-setup.js';

const OTHER_VM = { name: 'vm-two', uuid: '99999999-2222-3333-4444-555555555555', pid: 4343 };

t.test('a subscriber only ever receives the host items of its hello', async (t) => {
  const s = await startServer(t);
  const narrow = await TestClient.open(s.socketPath);
  const wide = await TestClient.open(s.socketPath);
  const silent = await TestClient.open(s.socketPath);
  t.teardown(() => [narrow, wide, silent].forEach((c) => c.close()));
  narrow.send(hello(['loadavg', 'vcpudelay', 'hosttime', 'physcpus', 'futureitem']));
  wide.send(hello([...HOST_ITEM_NAMES], OTHER_VM));
  t.same(await narrow.next(), { v: 1, type: 'subscribed', items: ['physcpus', 'loadavg'] });
  t.same((await wide.next())['items'], HOST_ITEM_NAMES);
  for (let i = 0; i < 3; i++) s.server.publish(fullSnapshot(s.clock + i));
  for (let i = 0; i < 3; i++) {
    t.same(Object.keys((await narrow.nextOf('sample'))['values'] as object), ['physcpus', 'loadavg']);
    t.same(Object.keys((await wide.nextOf('sample'))['values'] as object), HOST_ITEM_NAMES);
  }
  // A connection that never said hello gets no samples: the first frame it sees is its status reply.
  silent.send({ v: 1, type: 'status' });
  t.equal((await silent.next())['type'], 'status');
});

t.test('an item absent from the sample is absent for the subscriber too', async (t) => {
  const s = await startServer(t);
  const client = await TestClient.open(s.socketPath);
  t.teardown(() => client.close());
  client.send(hello(['pressure', 'physcpus']));
  await client.nextOf('subscribed');
  s.server.publish({ takenAt: s.clock, values: { physcpus: 2 } });
  t.same((await client.nextOf('sample'))['values'], { physcpus: 2 });
});

t.test('sequence numbers increase and sample times never decrease', async (t) => {
  const s = await startServer(t);
  const client = await TestClient.open(s.socketPath);
  t.teardown(() => client.close());
  client.send(hello(['uptime']));
  await client.nextOf('subscribed');
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
});

t.test('a hello gets the newest sample at once; re-subscribing narrows what is sent', async (t) => {
  const s = await startServer(t);
  s.server.publish(fullSnapshot(s.clock));
  const client = await TestClient.open(s.socketPath);
  t.teardown(() => client.close());
  client.send(hello(['physcpus', 'hostname']));
  await client.nextOf('subscribed');
  const first = await client.next();
  t.same([first['type'], first['seq'], first['values']], ['sample', 1, { physcpus: 16, hostname: 'host01' }]);

  client.send(hello(['physcpus']));
  t.same(await client.next(), { v: 1, type: 'subscribed', items: ['physcpus'] });
  t.same((await client.next())['values'], { physcpus: 16 }, 'the newest sample again, filtered by the new list');
  s.server.publish(fullSnapshot(s.clock + 1000));
  t.same((await client.next())['values'], { physcpus: 16 });
  t.same(s.server.status().vms.map((e) => e.items), [['physcpus']]);
  t.equal(s.server.registry.vmCount(), 1, 're-subscribing is not a second VM');
});

t.test('counters reach the registry and the status reply', async (t) => {
  const s = await startServer(t);
  const sidecar = await TestClient.open(s.socketPath);
  const admin = await TestClient.open(s.socketPath);
  t.teardown(() => [sidecar, admin].forEach((c) => c.close()));
  sidecar.send(hello(['uptime']));
  await sidecar.nextOf('subscribed');
  const counters = { requests: 10, ok: 7, denied: 1, rateLimited: 2, errors: 0, lastRequestAt: s.clock - 5 };
  sidecar.send({ v: 1, type: 'counters', ...counters });
  sidecar.send({ v: 1, type: 'status' }); // processed in order: the counters are in by now
  await sidecar.nextOf('status');
  s.server.publish(fullSnapshot(s.clock));
  admin.send({ v: 1, type: 'status' });
  const status = await admin.next();
  t.match(status, { v: 1, type: 'status', pid: process.pid, intervalMs: 1000, seq: 1, takenAt: s.clock, vmcount: 1 });
  t.same(status['vms'], [{ vm: VM, items: ['uptime'], subscribedAt: s.clock, counters, reportedAt: s.clock }]);
});

t.test('malformed frames: an error frame, then close; other subscribers carry on', async (t) => {
  const s = await startServer(t);
  const healthy = await TestClient.open(s.socketPath);
  t.teardown(() => healthy.close());
  healthy.send(hello(['uptime']));
  await healthy.nextOf('subscribed');
  const cases: { name: string; frame: string | Buffer; code: string; close: number }[] = [
    { name: 'not JSON', frame: '{"v":1,', code: 'MALFORMED_JSON', close: 1008 },
    { name: 'wrong version', frame: '{"v":7,"type":"status"}', code: 'BAD_VERSION', close: 1008 },
    { name: 'unknown type', frame: '{"v":1,"type":"subscribe"}', code: 'UNKNOWN_TYPE', close: 1008 },
    { name: 'invalid hello', frame: JSON.stringify({ v: 1, type: 'hello', vm: { name: 'x' }, items: [] }), code: 'INVALID_MESSAGE', close: 1008 },
    { name: 'counters before hello', frame: '{"v":1,"type":"counters","requests":1,"ok":1,"denied":0,"rateLimited":0,"errors":0,"lastRequestAt":null}', code: 'NOT_SUBSCRIBED', close: 1008 },
    { name: 'binary frame', frame: Buffer.from('{"v":1,"type":"status"}'), code: 'BINARY_FRAME', close: 1003 },
    { name: 'over the message limit', frame: JSON.stringify({ v: 1, type: 'status', pad: 'x'.repeat(MAX_CLIENT_MESSAGE_BYTES) }), code: 'TOO_LARGE', close: 1009 },
  ];
  let published = 0;
  for (const c of cases) {
    const bad = await TestClient.open(s.socketPath);
    if (c.code !== 'NOT_SUBSCRIBED') {
      bad.send(hello(['physcpus'], OTHER_VM));
      await bad.nextOf('subscribed');
    }
    bad.ws.send(c.frame);
    const error = await bad.nextOf('error');
    t.equal(error['code'], c.code, c.name);
    t.type(error['message'], 'string');
    const closed = await bad.closed;
    t.equal(closed.code, c.close, `${c.name}: close code`);
    t.equal(s.server.registry.vmCount(), 1, `${c.name}: unregistered`);
    // The healthy subscriber still gets every sample.
    published = s.server.publish(fullSnapshot(s.clock));
    t.equal((await healthy.nextOf('sample'))['seq'], published);
  }
});

t.test('a frame over maxPayload is cut off by ws itself (1009)', async (t) => {
  const s = await startServer(t);
  const bad = await TestClient.open(s.socketPath);
  bad.ws.send('x'.repeat(MAX_CLIENT_PAYLOAD_BYTES + 1));
  t.equal((await bad.closed).code, 1009);
});

t.test('connections beyond the limit are refused with SERVER_FULL', async (t) => {
  const s = await startServer(t, { maxSubscribers: 1 });
  const first = await TestClient.open(s.socketPath);
  t.teardown(() => first.close());
  const second = await TestClient.open(s.socketPath);
  t.equal((await second.next())['code'], 'SERVER_FULL');
  t.equal((await second.closed).code, 1013);
});

t.test('plain HTTP gets 426, never data', async (t) => {
  const s = await startServer(t);
  const { request } = await import('node:http');
  const req = request({ socketPath: s.socketPath, path: '/' });
  req.end();
  const [response] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  t.equal(response.statusCode, 426);
  response.resume();
});

t.test('a disconnect unregisters the VM', async (t) => {
  const s = await startServer(t);
  const client = await TestClient.open(s.socketPath);
  client.send(hello(['physcpus']));
  await client.nextOf('subscribed');
  t.equal(s.server.registry.vmCount(), 1);
  const gone = once(s.server, 'disconnected');
  client.close();
  await withTimeout(gone, 'disconnected');
  t.equal(s.server.registry.vmCount(), 0);
});
