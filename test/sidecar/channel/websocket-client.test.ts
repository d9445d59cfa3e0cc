// The sidecar's channel client (sidecar/channel/websocket-client.ts, which daemon-channel.ts uses
// bundled or not) against the daemon's real end: ws's WebSocketServer behind an HTTP server fed
// connections by hand, as daemon/server.ts does with each sidecar's socket pair. Here the pair is
// a real Unix socket connection. The framing's own rules are frames.test.ts's.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { WebSocketServer, type WebSocket as ServerSocket } from 'ws';
import { WebSocket, WebSocketError } from '../../../sidecar/channel/websocket-client.js';
import type { Teardown } from '../../helpers/logged-process.js';

interface Pair {
  readonly client: WebSocket;
  readonly server: ServerSocket;
  /** The first message, listened for from the start: it may come in the chunk that opens the channel. */
  readonly first: Promise<[Buffer, boolean]>;
}

const nextMessage = (client: WebSocket): Promise<[Buffer, boolean]> => once(client, 'message') as Promise<[Buffer, boolean]>;

/** The close event's arguments (events.once would reject on the error event that precedes some closes). */
const closeOf = (socket: WebSocket | ServerSocket): Promise<[number, Buffer]> => new Promise((resolve) => {
  socket.once('close', (code: number, reason: Buffer) => resolve([code, reason]));
});

/** A connected pair; `onServer` runs as the server accepts (before the client sees the 101). */
async function pair(t: Teardown, maxPayload = 1 << 20, onServer: (ws: ServerSocket) => void = () => {}): Promise<Pair> {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-cws-'));
  const path = join(dir, 'pair.sock');
  const http = createHttpServer();
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false, clientTracking: false });
  const listener = createServer((socket) => http.emit('connection', socket));
  listener.listen(path);
  await once(listener, 'listening');
  const accepted = new Promise<ServerSocket>((resolve) => wss.on('connection', (ws) => {
    onServer(ws);
    resolve(ws);
  }));
  const socket: Socket = createConnection(path);
  await once(socket, 'connect');
  const client = new WebSocket('ws://hostinfod/', { createConnection: () => socket, maxPayload, perMessageDeflate: false });
  client.on('error', () => {});
  const first = nextMessage(client);
  // Tests that never look at it may end in an error event, which rejects it.
  first.catch(() => {});
  const server = await accepted;
  if (client.readyState !== WebSocket.OPEN) await once(client, 'open');
  t.teardown(async () => {
    client.terminate();
    server.terminate();
    listener.close();
    http.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { client, server, first };
}

t.test('messages both ways, of every length encoding, including one sent with the 101', async (t) => {
  const { client, server, first: firstMessage } = await pair(t, 1 << 20, (ws) => ws.send('{"first":true}'));
  const [first, firstBinary] = await firstMessage;
  t.equal(first.toString(), '{"first":true}', 'a frame right behind the upgrade reply is not lost');
  t.equal(firstBinary, false);
  for (const length of [0, 125, 126, 65_535, 65_536, 200_000]) {
    const text = 'é'.repeat(Math.floor(length / 2)) + 'x'.repeat(length % 2);
    server.send(text);
    const [data, isBinary] = await nextMessage(client);
    t.equal(data.toString('utf8'), text, `${length} bytes from the server`);
    t.equal(isBinary, false);
    const received = once(server, 'message') as Promise<[Buffer, boolean]>;
    let sent = false;
    client.send(text, (error) => {
      sent = error == null;
    });
    const [back, backBinary] = await received;
    t.equal(back.toString('utf8'), text, `${length} bytes from the client, masked as ws requires`);
    t.equal(backBinary, false);
    t.ok(sent, 'the send callback ran without an error');
  }
  server.send(Buffer.from([0, 1, 2, 255]));
  const [binary, isBinary] = await nextMessage(client);
  t.same([...binary], [0, 1, 2, 255]);
  t.equal(isBinary, true, 'binary frames say so (daemon-channel refuses them)');
});

t.test('a fragmented message arrives whole', async (t) => {
  const { client, server } = await pair(t);
  server.send('part one, ', { fin: false });
  server.send('part two', { fin: true });
  const [data] = await nextMessage(client);
  t.equal(data.toString(), 'part one, part two');
});

t.test('a ping is answered with a pong carrying its data', async (t) => {
  const { server } = await pair(t);
  const pong = once(server, 'pong') as Promise<[Buffer]>;
  server.ping(Buffer.from('are you there'));
  t.equal((await pong)[0].toString(), 'are you there');
});

t.test('a message over maxPayload closes the channel with 1009, and is not delivered', async (t) => {
  const { client, server } = await pair(t, 1000);
  let delivered = false;
  client.on('message', () => {
    delivered = true;
  });
  const errored = once(client, 'error');
  const closed = closeOf(client);
  const serverClosed = closeOf(server);
  server.send('x'.repeat(1001));
  const error = (await errored)[0] as Error;
  t.ok(error instanceof WebSocketError);
  t.match(error, { code: 'WS_MESSAGE_TOO_BIG', message: /too big/ });
  t.equal((await closed)[0], 1009);
  t.equal((await serverClosed)[0], 1009, 'the daemon is told why');
  t.notOk(delivered);
  t.equal(client.readyState, WebSocket.CLOSED);
});

t.test('invalid UTF-8 in a text message closes with 1007', async (t) => {
  const { client, server } = await pair(t);
  const errored = once(client, 'error');
  const closed = closeOf(client);
  const serverClosed = closeOf(server);
  server.send(Buffer.from([0x7b, 0xff, 0x7d]), { binary: false });
  t.match((await errored)[0], { code: 'WS_INVALID_UTF8' });
  t.equal((await closed)[0], 1007);
  t.equal((await serverClosed)[0], 1007, 'the daemon is told why');
});

t.test('the daemon closing: its code and reason reach the close event', async (t) => {
  const { client, server } = await pair(t);
  const closed = closeOf(client);
  const serverClosed = closeOf(server);
  server.close(4000, 'daemon stopping');
  const [code, reason] = await closed;
  t.equal(code, 4000);
  t.equal(reason.toString(), 'daemon stopping');
  t.equal((await serverClosed)[0], 4000, 'the close frame was echoed');
  t.equal(client.readyState, WebSocket.CLOSED);
});

t.test('the sidecar closing: a clean handshake, then the close event', async (t) => {
  const { client, server } = await pair(t);
  const closed = closeOf(client);
  const serverClosed = closeOf(server);
  client.close(1000, 'sidecar stopping');
  t.equal(client.readyState, WebSocket.CLOSING);
  const [serverCode, serverReason] = await serverClosed;
  t.equal(serverCode, 1000);
  t.equal(serverReason.toString(), 'sidecar stopping');
  t.equal((await closed)[0], 1000);
  let callbackError: Error | null | undefined;
  client.send('late', (error) => {
    callbackError = error;
  });
  await new Promise((resolve) => setImmediate(resolve));
  t.match(callbackError?.message, /not open/, 'a send after the close fails through its callback');
});

t.test('terminate drops the connection: 1006, and the daemon sees it go', async (t) => {
  const { client, server } = await pair(t);
  const closed = closeOf(client);
  const serverClosed = closeOf(server);
  client.terminate();
  t.equal((await closed)[0], 1006);
  t.equal((await serverClosed)[0], 1006);
});

t.test('an upgrade refused: an error and a close, never open', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-cws-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'plain.sock');
  const plain = createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n'));
  plain.listen(path);
  await once(plain, 'listening');
  t.teardown(() => plain.close());
  const socket = createConnection(path);
  const client = new WebSocket('ws://hostinfod/', { createConnection: () => socket, maxPayload: 1000 });
  let opened = false;
  client.on('open', () => {
    opened = true;
  });
  const errored = once(client, 'error');
  const closed = closeOf(client);
  t.match((await errored)[0], { code: 'WS_UPGRADE_FAILED', message: /unexpected upgrade reply "HTTP\/1\.1 400 Bad Request"/ });
  t.equal((await closed)[0], 1006);
  t.notOk(opened);
  t.equal(client.readyState, WebSocket.CLOSED);
});

/**
 * A hand-written server end: answers the upgrade as `reply(key)` says, then writes `after` and
 * resolves with everything the client sent after its upgrade request once the client is gone.
 */
async function rawServer(t: Teardown, reply: (accept: string) => string, after: Buffer = Buffer.alloc(0)): Promise<{ client: WebSocket; sent: Promise<Buffer> }> {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-cws-'));
  const path = join(dir, 'raw.sock');
  let resolveSent: (bytes: Buffer) => void = () => {};
  const sent = new Promise<Buffer>((resolve) => {
    resolveSent = resolve;
  });
  const listener = createServer((socket) => {
    let received = Buffer.alloc(0);
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (answered || end === -1) return;
      answered = true;
      const key = /Sec-WebSocket-Key: (\S+)/.exec(received.toString('latin1'))?.[1] ?? '';
      received = received.subarray(end + 4);
      socket.write(Buffer.concat([Buffer.from(reply(createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')), 'latin1'), after]));
    });
    socket.on('error', () => {});
    socket.on('close', () => resolveSent(received));
  });
  listener.listen(path);
  await once(listener, 'listening');
  const socket = createConnection(path);
  await once(socket, 'connect');
  const client = new WebSocket('ws://hostinfod/', { createConnection: () => socket, maxPayload: 1000 });
  t.teardown(async () => {
    client.terminate();
    listener.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { client, sent };
}

const switching = (accept: string): string => `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;

/** A short client frame's mask bit, opcode and unmasked payload. */
function unmasked(frame: Buffer): { masked: boolean; opcode: number; payload: Buffer } {
  const length = (frame[1] as number) & 0x7f;
  const mask = frame.subarray(2, 6);
  return {
    masked: ((frame[1] as number) & 0x80) !== 0,
    opcode: (frame[0] as number) & 0x0f,
    payload: Buffer.from(frame.subarray(6, 6 + length).map((byte, i) => byte ^ (mask[i & 3] as number))),
  };
}

t.test('a protocol violation right behind the 101: an error with its code, and a close frame saying 1002', async (t) => {
  // A masked server frame (RFC 6455 5.1), in the same write as the upgrade reply.
  const { client, sent } = await rawServer(t, switching, Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0x68 ^ 1, 0x69 ^ 2]));
  let opened = false;
  client.on('open', () => {
    opened = true;
  });
  const errored = once(client, 'error');
  const closed = closeOf(client);
  t.match((await errored)[0], { code: 'WS_PROTOCOL_ERROR', message: 'a server frame is masked' });
  t.ok(opened);
  // The client ends its side after the close frame; the server's end follows, then the close event.
  t.equal((await closed)[0], 1002, 'the close event says 1002');
  const close = unmasked(await sent);
  t.ok(close.masked);
  t.equal(close.opcode, 8);
  t.equal(close.payload.readUInt16BE(0), 1002, 'the daemon was told 1002');
});

t.test('an upgrade reply that is wrong or never ends fails the upgrade', async (t) => {
  const replies: Array<[string, (accept: string) => string, RegExp]> = [
    ['wrong accept', () => switching('bm90IHRoZSBrZXk='), /invalid Sec-WebSocket-Accept/],
    ['an extension', (accept) => `${switching(accept).slice(0, -2)}Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n`, /extension or subprotocol/],
    ['not to websocket', (accept) => switching(accept).replace('Upgrade: websocket', 'Upgrade: h2c'), /not to websocket/],
    ['no end', () => `HTTP/1.1 101 Switching Protocols\r\nX: ${'y'.repeat(9000)}`, /no end/],
  ];
  for (const [name, reply, message] of replies) {
    const { client } = await rawServer(t, reply);
    const errored = once(client, 'error');
    const closed = closeOf(client);
    t.match((await errored)[0], { code: 'WS_UPGRADE_FAILED', message }, name);
    t.equal((await closed)[0], 1006, `${name}: never opened, so 1006`);
  }
});

t.test('close before the upgrade is answered: an error, 1006; a reason too long for a close frame throws', async (t) => {
  const { client } = await rawServer(t, () => '');
  const errored = once(client, 'error');
  const closed = closeOf(client);
  client.close();
  t.match((await errored)[0], { code: 'WS_CLOSED_BEFORE_OPEN' });
  t.equal((await closed)[0], 1006);
  const { client: open } = await pair(t);
  t.throws(() => open.close(1000, 'x'.repeat(124)), RangeError);
  t.equal(open.readyState, WebSocket.OPEN, 'and the connection stays open');
});

t.test('the unbundled sidecar\'s channel runs this client: no ws, no node:http in it', async (t) => {
  const channel = new URL('../../../sidecar/daemon-channel.js', import.meta.url).href;
  const loaded = spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(channel)}); console.log(JSON.stringify(process.moduleLoadList))`], { encoding: 'utf8' });
  t.equal(loaded.status, 0, loaded.stderr);
  const modules = JSON.parse(loaded.stdout) as string[];
  t.ok(modules.includes('NativeModule crypto'), 'the list names the builtins loaded');
  for (const builtin of ['http', 'https', 'tls', 'zlib']) t.notOk(modules.includes(`NativeModule ${builtin}`), `node:${builtin} is not loaded`);
});
