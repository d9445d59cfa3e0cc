// A unix socket server stands in for QEMU's chardev (QEMU is the server there too).
import { once } from 'node:events';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { GuestPort } from '../../sidecar/guest-port.js';
import type { GuestFrame } from '../../sidecar/protocol/line-decoder.js';

async function chardev(): Promise<{ path: string; server: Server; next: () => Promise<Socket> }> {
  const path = join(await mkdtemp(join(tmpdir(), 'hostinfo-guest-')), 'guest.sock');
  const server = createServer();
  const queue: Socket[] = [];
  const waiting: ((socket: Socket) => void)[] = [];
  server.on('connection', (socket) => {
    socket.on('error', () => {});
    const waiter = waiting.shift();
    if (waiter) waiter(socket);
    else queue.push(socket);
  });
  server.listen(path);
  await once(server, 'listening');
  const next = (): Promise<Socket> => {
    const queued = queue.shift();
    return queued ? Promise.resolve(queued) : new Promise((resolve) => waiting.push(resolve));
  };
  return { path, server, next };
}

/** Reads LF-terminated lines from a socket, keeping what arrives ahead of the caller. */
function lines(socket: Socket): () => Promise<string> {
  let buffered = '';
  let waiter: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('latin1');
    waiter?.();
  });
  return async () => {
    while (!buffered.includes('\n')) await new Promise<void>((resolve) => { waiter = resolve; });
    const lf = buffered.indexOf('\n');
    const line = buffered.slice(0, lf + 1);
    buffered = buffered.slice(lf + 1);
    return line;
  };
}

const echoUpper = (frame: GuestFrame): string | undefined =>
  frame.kind === 'line' && frame.bytes.length > 0 ? `${frame.bytes.toString('latin1').toUpperCase()}\n` : undefined;

t.test('frames in, replies out, in order', async (t) => {
  const { path, server, next } = await chardev();
  const port = new GuestPort(path, echoUpper);
  t.teardown(() => { port.close(); server.close(); });
  port.start();
  const guest = await next();
  const readLine = lines(guest);
  guest.write('abc\n\ndef\n');
  t.equal(await readLine(), 'ABC\n');
  t.equal(await readLine(), 'DEF\n');
});

t.test('reconnects when QEMU drops the connection, with a fresh decoder', async (t) => {
  const { path, server, next } = await chardev();
  const port = new GuestPort(path, echoUpper, { minMs: 5, maxMs: 20 });
  t.teardown(() => { port.close(); server.close(); });
  port.start();
  const first = await next();
  first.write('half a li');
  const disconnected = once(port, 'disconnected');
  first.destroy();
  await disconnected;
  const second = await next();
  const readLine = lines(second);
  second.write('ne\nping\n');
  t.equal(await readLine(), 'NE\n', 'the partial line from the old connection is gone');
  t.equal(await readLine(), 'PING\n');
});

t.test('keeps retrying while the socket does not exist yet', async (t) => {
  const path = join(await mkdtemp(join(tmpdir(), 'hostinfo-guest-')), 'late.sock');
  const port = new GuestPort(path, echoUpper, { minMs: 5, maxMs: 20 });
  port.start();
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.write('late\n');
  });
  t.teardown(() => { port.close(); server.close(); });
  server.listen(path);
  await once(port, 'connected');
  t.ok(port.connected);
});

t.test('a guest that never reads its replies is not read either: memory stays bounded', async (t) => {
  const { path, server, next } = await chardev();
  let frames = 0;
  const port = new GuestPort(path, () => {
    frames += 1;
    return `${'r'.repeat(1000)}\n`;
  });
  t.teardown(() => { port.close(); server.close(); });
  port.start();
  const guest = await next();
  guest.pause();
  const pausedAt = once(port, 'backpressure') as Promise<[number]>;
  // 16 MiB of replies would be owed for this input if the sidecar answered everything.
  const requests = 16 * 1024;
  guest.write(Buffer.from('x\n'.repeat(requests)));
  const [queued] = await pausedAt;
  t.ok(queued < 64 * 1024, `${queued} reply bytes queued when input paused`);
  const answeredWhilePaused = frames;
  t.ok(answeredWhilePaused < requests, `${answeredWhilePaused} of ${requests} answered before pausing`);
  // Once the guest reads, every request is answered after all.
  let received = 0;
  const allReceived = new Promise<void>((resolve) => {
    guest.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= requests * 1001) resolve();
    });
  });
  guest.resume();
  await allReceived;
  t.equal(frames, requests);
});
