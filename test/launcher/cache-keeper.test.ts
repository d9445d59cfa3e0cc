import { once } from 'node:events';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CacheKeeper } from '../../launcher/cache-keeper.js';

async function serve(path: string): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  server.listen(path);
  await once(server, 'listening');
  return server;
}

t.test('restarts the cache when its socket stops answering, and only then', async (t) => {
  const path = join(await mkdtemp(join(tmpdir(), 'hostinfo-keeper-')), 'cache.sock');
  let server = await serve(path);
  let restarts = 0;
  let restarted: () => void = () => {};
  const keeper = new CacheKeeper(path, async () => {
    restarts += 1;
    server = await serve(path);
    restarted();
  }, 10);
  t.teardown(() => { keeper.stop(); server.close(); });
  keeper.start();
  // Several probes of a live socket restart nothing.
  await new Promise<void>((resolve) => {
    let probes = 0;
    const tick = setInterval(() => { if ((probes += 1) === 5) { clearInterval(tick); resolve(); } }, 10);
  });
  t.equal(restarts, 0);
  const back = new Promise<void>((resolve) => { restarted = resolve; });
  server.close();
  await back;
  t.equal(restarts, 1, 'one restart for one outage');
});

t.test('a slow restart is not started twice', async (t) => {
  const path = join(await mkdtemp(join(tmpdir(), 'hostinfo-keeper-')), 'none.sock');
  let calls = 0;
  let finish: () => void = () => {};
  const keeper = new CacheKeeper(path, () => {
    calls += 1;
    return new Promise<void>((resolve) => { finish = resolve; });
  }, 5);
  keeper.start();
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(calls, 1, 'probes during a running restart wait for it');
  keeper.stop();
  finish();
});
