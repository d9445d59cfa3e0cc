import { once } from 'node:events';
import { createServer } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { WebSocketServer } from 'ws';
import { CacheClient, fetchStatus } from '../../daemon/client.js';
import { CacheServer } from '../../daemon/server.js';
import { listenExclusive } from '../../daemon/single-instance.js';
import { VM, tempDir, withTimeout } from './helpers.js';
import { fullSnapshot, startServer } from './server-setup.js';

const counters = { requests: 3, ok: 2, denied: 1, rateLimited: 0, errors: 0, lastRequestAt: 1795600000000 };

function next<T extends unknown[]>(emitter: CacheClient | CacheServer, event: string): Promise<T> {
  return withTimeout(once(emitter, event) as Promise<T>, event);
}

t.test('subscribe, receive, re-subscribe, report counters, ask for status', async (t) => {
  const s = await startServer(t);
  const client = new CacheClient({ socketPath: s.socketPath, vm: VM, items: ['physcpus', 'hostname', 'vcpudelay'], reconnect: false });
  t.teardown(() => client.close());
  const subscribed = next<[string[]]>(client, 'subscribed');
  client.connect();
  t.same((await subscribed)[0], ['physcpus', 'hostname']);

  const sample = next(client, 'sample');
  const seq = s.server.publish(fullSnapshot(s.clock));
  await sample;
  t.same(client.latest, { seq, snapshot: { takenAt: s.clock, values: { physcpus: 16, hostname: 'host01' } } });

  const narrowed = next<[string[]]>(client, 'subscribed');
  const resent = next(client, 'sample');
  client.subscribe(['physcpus']);
  t.same((await narrowed)[0], ['physcpus']);
  await resent;
  t.same(client.latest?.snapshot.values, { physcpus: 16 });

  client.reportCounters(counters);
  const status = await client.requestStatus();
  t.same(status.vms, [{ vm: VM, items: ['physcpus'], subscribedAt: s.clock, counters, reportedAt: s.clock }]);
  t.equal((await fetchStatus(s.socketPath)).vmcount, 1, 'the one-shot query sees the same registry');
});

t.test('after the daemon restarts, the client reconnects, says hello and re-reports its counters', async (t) => {
  const socketPath = join(tempDir(t), 'cache.sock');
  const first = new CacheServer({ intervalMs: 1000 });
  await listenExclusive(first.http, socketPath, { mode: 0o600, gid: undefined });
  const client = new CacheClient({ socketPath, vm: VM, items: ['uptime'], reconnect: { minMs: 10, maxMs: 50 } });
  t.teardown(() => client.close());
  client.connect();
  await next(client, 'subscribed');
  client.reportCounters(counters);
  first.publish(fullSnapshot(1));
  await next(client, 'sample');

  const lost = next(client, 'disconnected');
  await first.close();
  t.equal(((await lost)[0] as { code: number }).code, 1001, 'the daemon said it was going away');
  t.equal(client.latest?.seq, 1, 'the last sample is kept; its takenAt tells the sidecar its age');

  const second = new CacheServer({ intervalMs: 1000 });
  t.teardown(() => second.close());
  const resubscribed = next<[number]>(second, 'subscribed');
  await listenExclusive(second.http, socketPath, { mode: 0o600, gid: undefined });
  await resubscribed;
  // The counters follow the hello on the same connection; a status request after them sees them.
  const status = await client.requestStatus();
  t.same(status.vms[0]?.counters, counters);
  const fresh = next(client, 'sample');
  second.publish(fullSnapshot(2));
  await fresh;
  t.equal(client.latest?.seq, 1, 'a restarted daemon counts from 1 again and that is accepted');
  t.equal(client.latest?.snapshot.takenAt, 2);
});

t.test('a daemon that sends something invalid is disconnected', async (t) => {
  const socketPath = join(tempDir(t), 'fake.sock');
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  const frames = [
    '{"v":1,"type":"sample","seq":5,"takenAt":1,"values":{"uptime":1}}',
    '{"v":1,"type":"sample","seq":5,"takenAt":2,"values":{"uptime":2}}',
  ];
  wss.on('connection', (ws) => frames.forEach((frame) => ws.send(frame)));
  http.listen(socketPath);
  await once(http, 'listening');
  t.teardown(() => new Promise<void>((done) => { wss.close(); http.close(() => done()); }));

  const client = new CacheClient({ socketPath, vm: VM, items: ['uptime'], reconnect: false });
  t.teardown(() => client.close());
  const invalid = next<[string]>(client, 'invalid');
  const closed = next(client, 'disconnected');
  client.connect();
  t.match((await invalid)[0], /seq 5 after 5/);
  await closed;
  t.equal(client.latest?.seq, 5);
  t.equal(client.latest?.snapshot.takenAt, 1, 'the repeated sequence number was not taken');

  frames.splice(0, 2, '{"v":1,"type":"sample","seq":1,"takenAt":1,"values":{"vcpudelay":1}}');
  const again = new CacheClient({ socketPath, vm: VM, items: ['uptime'], reconnect: false });
  t.teardown(() => again.close());
  const rejected = next<[string]>(again, 'invalid');
  again.connect();
  t.match((await rejected)[0], /vcpudelay: unknown item/);
  t.equal(again.latest, undefined);
});

t.test('a status request without a connection fails plainly', async (t) => {
  const client = new CacheClient({ socketPath: '/nonexistent/cache.sock', vm: VM, items: [], reconnect: false });
  await t.rejects(client.requestStatus(), /not connected/);
  await t.rejects(fetchStatus('/nonexistent/cache.sock'), /ENOENT/);
});
