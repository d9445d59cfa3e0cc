// A unix socket server stands in for QEMU's chardev (QEMU is the server there too).
import { spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { mkdtemp } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_GUEST_BUDGET, GUEST_BUDGET_WINDOW_MS, type GuestBudget } from '../../sidecar/guest-budget.js';
import { fdConnector, GUEST_RECONNECT, GuestPort, pathConnector, type GuestPortOptions } from '../../sidecar/guest-port.js';
import type { GuestFrame } from '../../sidecar/protocol/line-decoder.js';
import { VhostmdRequestDecoder, type VhostmdRequest } from '../../sidecar/vhostmd/request-decoder.js';
import { withTimeout } from '../helpers/logged-process.js';

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

/** For tests about something else than the budget: it never binds. */
const UNBOUNDED: GuestBudget = { linesPerSecond: 1_000_000_000, bytesPerSecond: 1_000_000_000 };
const FAST_RETRY = { minMs: 5, maxMs: 20 };

function pathPort(path: string, options: Partial<GuestPortOptions> = {}): GuestPort {
  return new GuestPort({ connect: pathConnector(path), reconnect: GUEST_RECONNECT, respond: echoUpper, budget: DEFAULT_GUEST_BUDGET, ...options });
}

const turns = async (count: number): Promise<void> => {
  for (let i = 0; i < count; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

t.test('frames in, replies out, in order', async (t) => {
  const { path, server, next } = await chardev();
  const port = pathPort(path);
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
  const port = pathPort(path, { reconnect: FAST_RETRY });
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
  const port = pathPort(path, { reconnect: FAST_RETRY });
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
  const port = pathPort(path, {
    respond: () => {
      frames += 1;
      return `${'r'.repeat(1000)}\n`;
    },
    // Only write backpressure is under test here.
    budget: UNBOUNDED,
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

t.test('a flood of reply-shaped lines: one budget per window, reported, and requests are answered again after', async (t) => {
  const { path, server, next } = await chardev();
  const FLOOD_LINE = '1.0 200 x';
  // The clock stands still within a window and jumps to its end when the pause is announced,
  // so which window each respond call fell in is exact.
  let clock = 0;
  const respondedAt: number[] = [];
  const throttles: { at: number; bytes: number; lines: number; pausedMs: number }[] = [];
  const port = pathPort(path, {
    now: () => clock,
    respond: (frame) => {
      respondedAt.push(clock);
      // What the request handler does with tty echo of its own replies: nothing.
      return frame.kind === 'line' && frame.bytes.toString('latin1') === FLOOD_LINE ? undefined : echoUpper(frame);
    },
  });
  t.teardown(() => { port.close(); server.close(); });
  port.start();
  const guest = await next();
  const readLine = lines(guest);
  port.on('throttled', (dropped, pausedMs) => {
    throttles.push({ at: clock, ...dropped, pausedMs });
    clock += pausedMs;
    // A guest that wants an answer asks again; this request queues behind what is left of the
    // flood, so the one written after the last cut is the one that gets through.
    guest.write('ping\n');
  });
  guest.write(Buffer.from(`${FLOOD_LINE}\n`.repeat(20_000)));
  t.equal(await withTimeout(readLine(), 'PING after the flood'), 'PING\n');

  const { linesPerSecond } = DEFAULT_GUEST_BUDGET;
  const firstWindow = respondedAt.filter((at) => at === 0).length;
  t.ok(firstWindow <= linesPerSecond, `${firstWindow} frames answered in the first window`);
  const perWindow = new Map<number, number>();
  for (const at of respondedAt) perWindow.set(at, (perWindow.get(at) ?? 0) + 1);
  t.ok([...perWindow.values()].every((count) => count <= linesPerSecond), `frames per window: ${[...perWindow.values()].join(', ')}`);
  t.ok(respondedAt.length < 20_000 / 10, `${respondedAt.length} of 20000 flood lines reached respond`);
  t.ok(throttles.length > 0 && throttles.every((throttle) => throttle.bytes > 0 && throttle.lines > 0), 'drops reported');
  t.ok(throttles.every((throttle) => throttle.pausedMs === GUEST_BUDGET_WINDOW_MS), 'each pause lasts to the end of its window');
});

async function bigLines(readLine: () => Promise<string>, count: number): Promise<number> {
  let big = 0;
  for (let i = 0; i < count; i += 1) if ((await withTimeout(readLine(), `reply ${i}`)).length === 10_001) big += 1;
  return big;
}

/** A port whose replies are 10 kB each: a guest that does not read them blocks the port's writes. */
function bigReplies(answered: string[]): (frame: GuestFrame) => string | undefined {
  return (frame) => {
    const text = frame.kind === 'line' ? frame.bytes.toString('latin1') : '(oversize)';
    answered.push(text);
    return text === 'x' ? `${'r'.repeat(10_000)}\n` : echoUpper(frame);
  };
}

t.test('a budget pause that ends while replies are still unread does not resume reading', async (t) => {
  const { path, server, next } = await chardev();
  let windowOver = false;
  let nowCalls = 0;
  let firstCall = (): void => {};
  const timerChecked = new Promise<void>((resolve) => { firstCall = resolve; });
  const answered: string[] = [];
  const port = pathPort(path, {
    respond: bigReplies(answered),
    // Once the window is over, the only caller of now() is the pause timer; a second call would
    // be a chunk read while the port owes the guest replies it has not read.
    now: () => {
      if (!windowOver) return 0;
      nowCalls += 1;
      firstCall();
      return GUEST_BUDGET_WINDOW_MS;
    },
  });
  t.teardown(() => { port.close(); server.close(); });
  port.start();
  const guest = await next();
  guest.pause();
  const backpressure = once(port, 'backpressure');
  const throttled = once(port, 'throttled') as Promise<[{ bytes: number; lines: number }, number]>;
  guest.write('x\n'.repeat(300));
  const [[dropped]] = await Promise.all([throttled, backpressure]);
  t.equal(dropped.lines, 200, 'lines over the budget of 100 dropped');
  guest.write('more\n');
  windowOver = true;
  await withTimeout(timerChecked, 'the pause timer');
  await turns(5);
  t.equal(nowCalls, 1, 'nothing read after the pause ended: the replies are still unread');
  const answeredWhileBlocked = answered.length;
  t.ok(answeredWhileBlocked < 100, `${answeredWhileBlocked} answered before the writes blocked`);
  const readLine = lines(guest);
  guest.resume();
  t.equal(await bigLines(readLine, 100), 100, 'every accepted request answered');
  t.equal(await withTimeout(readLine(), 'MORE'), 'MORE\n', 'reading resumed once the replies drained');
  t.same(answered.slice(100), ['more']);
});

t.test('neither replies draining nor a timer firing early ends a budget pause before its window does', async (t) => {
  const { path, server, next } = await chardev();
  let drained = false;
  let nowCalls = 0;
  const answered: string[] = [];
  const throttles: number[] = [];
  const port = pathPort(path, {
    respond: bigReplies(answered),
    // The first two readings after the drain fall half a millisecond short of the window's end,
    // as for a timer that fires a little early: a chunk read on them would land in the cut window
    // and be dropped.
    now: () => {
      if (!drained) return 0;
      nowCalls += 1;
      return nowCalls <= 2 ? GUEST_BUDGET_WINDOW_MS - 0.5 : GUEST_BUDGET_WINDOW_MS;
    },
  });
  port.on('throttled', (dropped) => throttles.push(dropped.lines));
  t.teardown(() => { port.close(); server.close(); });
  port.start();
  const guest = await next();
  guest.pause();
  const backpressure = once(port, 'backpressure');
  const throttled = once(port, 'throttled');
  guest.write('x\n'.repeat(300));
  await Promise.all([throttled, backpressure]);
  guest.write('more\n');
  const readLine = lines(guest);
  guest.resume();
  t.equal(await bigLines(readLine, 100), 100, 'every accepted request answered');
  await turns(5);
  if (!t.same(throttles, [200], 'nothing read when the replies drained: the window is still paused')) return;
  t.equal(answered.length, 100);
  drained = true;
  const throttledAgain = once(port, 'throttled').then(() => 'dropped: read before the window ended');
  t.equal(await withTimeout(Promise.race([readLine(), throttledAgain]), 'MORE'), 'MORE\n', 'reading resumed at the window end, not before');
  t.same(throttles, [200]);
  t.same(answered.slice(100), ['more']);
});

t.test('the budget is validated, and setBudget applies from the next chunk', async (t) => {
  t.throws(() => pathPort('/nonexistent', { budget: { linesPerSecond: 0, bytesPerSecond: 16384 } }), RangeError);
  const { path, server, next } = await chardev();
  const throttles: number[] = [];
  const port = pathPort(path, { budget: { linesPerSecond: 1, bytesPerSecond: 16384 }, now: () => 0 });
  port.on('throttled', (dropped) => throttles.push(dropped.lines));
  t.teardown(() => { port.close(); server.close(); });
  port.start();
  const guest = await next();
  const readLine = lines(guest);
  guest.write('a\n');
  t.equal(await readLine(), 'A\n');
  t.throws(() => port.setBudget({ linesPerSecond: 1, bytesPerSecond: 1 }), RangeError);
  port.setBudget({ linesPerSecond: 3, bytesPerSecond: 16384 });
  guest.write('b\nc\n');
  t.equal(await readLine(), 'B\n');
  t.equal(await readLine(), 'C\n');
  t.same(throttles, [], 'two more lines fit the raised budget in the same window');
});

t.test('a pre-connected socket with reconnect: false is served, then ends with its connection', async (t) => {
  const { path, server, next } = await chardev();
  const socket = createConnection({ path });
  await once(socket, 'connect');
  const guest = await next();
  let connects = 0;
  const port = new GuestPort({
    connect: () => { connects += 1; return socket; },
    reconnect: false,
    respond: echoUpper,
    budget: DEFAULT_GUEST_BUDGET,
  });
  const events: string[] = [];
  port.on('connected', () => events.push('connected'));
  port.on('disconnected', () => events.push('disconnected'));
  port.on('ended', () => events.push('ended'));
  t.teardown(() => { port.close(); server.close(); });
  port.start();
  t.ok(port.connected, 'connected at once: there is no connect to wait for');
  const readLine = lines(guest);
  guest.write('ping\n');
  t.equal(await readLine(), 'PING\n');
  const ended = once(port, 'ended');
  guest.end();
  await withTimeout(ended, "'ended'");
  t.same(events, ['connected', 'disconnected', 'ended']);
  port.start();
  t.equal(connects, 1, 'an ended port does not connect again');
  t.notOk(port.connected);
});

t.test('a pre-connected socket that closed before it was handed over: ended, never connected', async (t) => {
  const { path, server, next } = await chardev();
  t.teardown(() => server.close());
  const socket = createConnection({ path });
  await once(socket, 'connect');
  (await next()).destroy();
  await once(socket, 'close');
  const port = new GuestPort({ connect: () => socket, reconnect: false, respond: echoUpper, budget: DEFAULT_GUEST_BUDGET });
  const events: string[] = [];
  port.on('connected', () => events.push('connected'));
  port.on('ended', () => events.push('ended'));
  const ended = once(port, 'ended');
  port.start();
  await withTimeout(ended, "'ended'");
  t.same(events, ['ended']);
});

t.test('reconnect: false and nothing listening: ended, never connected', async (t) => {
  const path = join(await mkdtemp(join(tmpdir(), 'hostinfo-guest-')), 'absent.sock');
  const port = pathPort(path, { reconnect: false });
  const events: string[] = [];
  port.on('disconnected', () => events.push('disconnected'));
  port.on('ended', () => events.push('ended'));
  t.teardown(() => port.close());
  const ended = once(port, 'ended');
  port.start();
  await withTimeout(ended, "'ended'");
  t.same(events, ['ended']);
});

t.test('a connector that throws: start() throws it; from a reconnect, the port ends', async (t) => {
  t.throws(() => pathPort('/unused', { connect: () => { throw new Error('no socket'); } }).start(), /no socket/);
  const { path, server, next } = await chardev();
  const connector = pathConnector(path);
  let calls = 0;
  const port = pathPort(path, {
    reconnect: FAST_RETRY,
    connect: () => {
      calls += 1;
      if (calls > 1) throw new Error('gone');
      return connector();
    },
  });
  t.teardown(() => { port.close(); server.close(); });
  port.start();
  const first = await next();
  const ended = once(port, 'ended');
  first.destroy();
  await withTimeout(ended, "'ended'");
  t.equal(calls, 2);
});

t.test('fdConnector: a descriptor inherited from a launcher is served once, and cannot be reopened', async (t) => {
  const { path, server, next } = await chardev();
  t.teardown(() => server.close());
  const socket = createConnection({ path });
  await once(socket, 'connect');
  const guest = await next();
  const portModule = new URL('../../sidecar/guest-port.js', import.meta.url).href;
  const budgetModule = new URL('../../sidecar/guest-budget.js', import.meta.url).href;
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    import { GuestPort, fdConnector } from ${JSON.stringify(portModule)};
    import { DEFAULT_GUEST_BUDGET } from ${JSON.stringify(budgetModule)};
    const connect = fdConnector(3);
    const respond = (frame) => frame.kind === 'line' ? frame.bytes.toString('latin1').toUpperCase() + '\\n' : undefined;
    const port = new GuestPort({ connect, reconnect: false, respond, budget: DEFAULT_GUEST_BUDGET });
    const events = [];
    port.on('connected', () => events.push('connected'));
    port.on('disconnected', () => events.push('disconnected'));
    port.on('ended', () => {
      events.push('ended');
      let second = 'returned a socket';
      try { connect(); } catch (error) { second = error.message; }
      process.stdout.write(JSON.stringify({ events, second }));
    });
    port.start();
  `], { stdio: ['ignore', 'pipe', 'inherit', socket] });
  t.teardown(() => child.kill());
  let stdout = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => { stdout += text; });
  await once(child, 'spawn');
  // The child holds its own copy of the descriptor; from here on only it reads the connection.
  socket.destroy();
  const readLine = lines(guest);
  guest.write('ping\n');
  t.equal(await withTimeout(readLine(), 'PING from the child'), 'PING\n');
  const exited = once(child, 'exit');
  guest.end();
  const [code] = await withTimeout(exited, 'the child to exit');
  t.equal(code, 0);
  const report = JSON.parse(stdout) as { events: string[]; second: string };
  t.same(report.events, ['connected', 'disconnected', 'ended']);
  t.match(report.second, /fd 3 was already handed to a socket/);
});

t.test('a decoder of its own (vhostmd\'s): its frames go to respond, its replies back', async (t) => {
  const { path, server, next } = await chardev();
  const seen: VhostmdRequest[] = [];
  const port = new GuestPort<VhostmdRequest>({
    connect: pathConnector(path), reconnect: FAST_RETRY, budget: DEFAULT_GUEST_BUDGET,
    decoder: () => new VhostmdRequestDecoder(),
    respond: (request) => {
      seen.push(request);
      return request.kind === 'get' ? 'DOC\n\n' : 'INVALID REQUEST\n\n';
    },
  });
  t.teardown(() => { port.close(); server.close(); });
  port.start();
  const guest = await next();
  const readLine = lines(guest);
  guest.write('GET /metrics/XML\n');
  guest.write('\nnonsense\n\n');
  t.equal(await readLine(), 'DOC\n');
  t.equal(await readLine(), '\n');
  t.equal(await readLine(), 'INVALID REQUEST\n');
  t.same(seen, [{ kind: 'get' }, { kind: 'invalid', reason: 'blank line' }]);
});

t.test('resetDecoder: a partial request is dropped, the next one is whole', async (t) => {
  const { path, server, next } = await chardev();
  // Each chunk the port reads is announced, so the test knows the leftover is in the decoder.
  const reads = new EventEmitter();
  const port = new GuestPort<VhostmdRequest>({
    connect: pathConnector(path), reconnect: FAST_RETRY, budget: DEFAULT_GUEST_BUDGET,
    decoder: () => {
      const decoder = new VhostmdRequestDecoder();
      return { push: (chunk) => { reads.emit('read', chunk.length); return decoder.push(chunk); }, skip: (bytes) => decoder.skip(bytes) };
    },
    respond: (request) => `${request.kind}\n`,
  });
  t.teardown(() => { port.close(); server.close(); });
  port.start();
  const guest = await next();
  const readLine = lines(guest);
  guest.write('GET /metrics/XML\n\n');
  t.equal(await readLine(), 'get\n');
  const read = once(reads, 'read');
  guest.write('GET /met');
  t.same(await read, [8], 'the leftover is in the decoder');
  port.resetDecoder();
  guest.write('GET /metrics/XML\n\n');
  t.equal(await readLine(), 'get\n', 'without the reset this would be one invalid request');
});
