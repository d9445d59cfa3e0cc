// Attacks on hostinfod's control socket, each measured the way it used to succeed and now failing
// to reproduce:
//  - a client that writes status requests on one connection and never reads: the daemon answers
//    once and stops reading, so its memory does not grow with what the client sends;
//  - 4096 idle connections: a new VM is still served (sidecars never use the control socket),
//    and the daemon drops them all within its idle bound;
//  - a client speaking as a sidecar (hello, counters): one NOT_ALLOWED error frame and the
//    connection closes; no sample, no access decision, no VM identity ever reaches it; and
//    `nobody` cannot connect at all.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { WebSocket } from 'ws';
import { CONTROL_IDLE_MS, MAX_CONTROL_CONNECTIONS } from '../../daemon/server.js';
import { connectAs, needsRootAndSetpriv } from '../helpers/as-user.js';
import { withTimeout, type Teardown } from '../helpers/logged-process.js';
import { memoryKb } from '../helpers/proc-stats.js';
import { makeSite, stageVm, startBareDaemon, status, waitForSidecar, type Site } from '../helpers/served-vm.js';

/** Daemon RSS growth allowed while one client floods status requests without reading (measured: ~3 MB). */
const RSS_GROWTH_BOUND_MB = 30;
const FLOOD_MS = 3_000;
const IDLE_CONNECTIONS = 4096;
const HOLD = fileURLToPath(new URL('./fixtures/hold-connections.js', import.meta.url));

t.setTimeout(90_000);

/** A client-to-server text frame: masked, as RFC 6455 requires of clients. */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  if (payload.length > 125) throw new Error('short frames only');
  const mask = randomBytes(4);
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, payload.map((byte, i) => byte ^ (mask[i % 4] as number))]);
}

/** Server frames (unmasked) in what followed the 101 response: opcode and payload of each. */
function serverFrames(bytes: Buffer): { opcode: number; payload: Buffer }[] {
  const frames: { opcode: number; payload: Buffer }[] = [];
  let at = bytes.indexOf('\r\n\r\n') + 4;
  while (at + 2 <= bytes.length) {
    const opcode = (bytes[at] as number) & 0x0f;
    let length = (bytes[at + 1] as number) & 0x7f;
    let start = at + 2;
    if (length === 126) { length = bytes.readUInt16BE(at + 2); start = at + 4; }
    else if (length === 127) { length = Number(bytes.readBigUInt64BE(at + 2)); start = at + 10; }
    if (start + length > bytes.length) break;
    frames.push({ opcode, payload: bytes.subarray(start, start + length) });
    at = start + length;
  }
  return frames;
}

/** A raw connection that has done the WebSocket upgrade by hand; everything it receives is kept. */
async function rawUpgraded(site: Site): Promise<{ socket: Socket; received: () => Buffer }> {
  const socket = connect(site.control);
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => {});
  socket.write(`GET / HTTP/1.1\r\nHost: hostinfod\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  await withTimeout((async () => {
    while (!Buffer.concat(chunks).includes('\r\n\r\n')) await once(socket, 'data');
  })(), 'the upgrade response');
  return { socket, received: () => Buffer.concat(chunks) };
}

async function servedSite(t: Teardown): Promise<{ site: Site; daemonPid: number }> {
  const site = await makeSite(t);
  const daemon = await startBareDaemon(t, site);
  return { site, daemonPid: daemon.child.pid as number };
}

t.test('a client that floods status requests and never reads costs the daemon one reply', async (t) => {
  const { site, daemonPid } = await servedSite(t);
  await status(site);
  const before = memoryKb(daemonPid, 'VmRSS');
  const { socket, received } = await rawUpgraded(site);
  t.match(received().toString('latin1'), /^HTTP\/1\.1 101 /, 'upgraded');
  // Listened for from the start: the daemon may cut the connection while the flood still runs.
  // (Not events.once: the cut arrives as ECONNRESET, an 'error', which would reject it.)
  const closed = new Promise((resolve) => socket.once('close', resolve));
  const askedAt = Date.now();
  socket.pause();
  const chunk = Buffer.concat(Array.from({ length: 2000 }, () => clientFrame('{"v":2,"type":"status"}')));
  let frames = 0;
  let peak = before;
  let drained: Promise<unknown> | undefined;
  const started = performance.now();
  while (performance.now() - started < FLOOD_MS) {
    // Once the daemon stops reading, the socket fills and stays full: wait for a drain that never
    // comes, a slice at a time, to the end of the flood.
    if (drained === undefined && socket.write(chunk)) frames += 2000;
    else {
      drained ??= once(socket, 'drain').then(() => { drained = undefined; });
      await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, 100))]);
    }
    peak = Math.max(peak, memoryKb(daemonPid, 'VmRSS'));
  }
  const after = memoryKb(daemonPid, 'VmRSS');
  const growthMb = (peak - before) / 1024;
  t.comment(`${frames} status frames written (${(socket.writableLength / 1024).toFixed(0)} KiB still queued in the client), daemon RSS ${(before / 1024).toFixed(1)} MB before, peak ${(peak / 1024).toFixed(1)} MB, ${(after / 1024).toFixed(1)} MB after: +${growthMb.toFixed(1)} MB`);
  t.ok(socket.writableLength > 0, 'the daemon stopped reading: the client\'s writes back up');
  t.ok(growthMb < RSS_GROWTH_BOUND_MB, `daemon RSS grew ${growthMb.toFixed(1)} MB < ${RSS_GROWTH_BOUND_MB} MB`);

  socket.resume();
  await withTimeout((async () => {
    while (!serverFrames(received()).some((frame) => frame.opcode === 0x8)) await once(socket, 'data');
  })(), 'the close frame');
  const replies = serverFrames(received());
  const texts = replies.filter((frame) => frame.opcode === 0x1).map((frame) => JSON.parse(frame.payload.toString()) as { type: string });
  t.same(texts.map((reply) => reply.type), ['status'], 'exactly one status reply for the whole flood');
  t.equal(replies.at(-1)?.opcode, 0x8, 'then the close frame');
  // The client never answers the close frame; its slot must still be freed within the idle bound
  // of its request.
  const bound = CONTROL_IDLE_MS + 2_000;
  const dropped = await withTimeout(closed, 'the daemon to drop the connection', Math.max(1, bound - (Date.now() - askedAt))).then(() => Date.now() - askedAt, () => undefined);
  t.comment(`connection dropped ${dropped === undefined ? `not within ${bound}` : dropped} ms after the first request`);
  t.ok(dropped !== undefined, `a peer that ignores the close handshake is dropped within ${CONTROL_IDLE_MS} ms + 2 s of its request`);
  socket.destroy();
  t.equal((await status(site)).pid, daemonPid, 'the daemon answers the next client');
});

t.test(`${IDLE_CONNECTIONS} idle connections: a new VM is served, and they are dropped within the idle bound`, async (t) => {
  const { site, daemonPid } = await servedSite(t);
  const fdsBefore = readdirSync(`/proc/${daemonPid}/fd`).length;
  // The descriptors are a child's, which raises its own limit first.
  const holder = spawn('bash', ['-c', 'ulimit -n 10000 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec env -u NODE_OPTIONS "$0" "$@"', process.execPath, HOLD, site.control, String(IDLE_CONNECTIONS)], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => void holder.kill('SIGKILL'));
  const reports: Record<string, unknown>[] = [];
  const wakers: (() => void)[] = [];
  createInterface({ input: holder.stdout }).on('line', (line) => {
    reports.push(JSON.parse(line) as Record<string, unknown>);
    for (const wake of wakers.splice(0)) wake();
  });
  /** The first report with `key` among those from index `from` on. */
  const report = (key: string, from = 0, ms = 30_000): Promise<Record<string, unknown>> => withTimeout((async () => {
    for (let seen = from; ; ) {
      const found = reports.slice(seen).find((r) => key in r);
      if (found !== undefined) return found;
      seen = reports.length;
      await new Promise<void>((resolve) => wakers.push(resolve));
    }
  })(), `the holder's ${key} report`, ms);

  const opened = await report('opened');
  const openedAt = Date.now();
  t.comment(`holder: ${JSON.stringify(opened)}`);
  t.equal(Number(opened['opened']) + Object.values(opened['failed'] as Record<string, number>).reduce((a, b) => a + b, 0), IDLE_CONNECTIONS, `${IDLE_CONNECTIONS} connection attempts`);
  const fdsHeld = readdirSync(`/proc/${daemonPid}/fd`).length;
  t.comment(`daemon descriptors: ${fdsBefore} before, ${fdsHeld} with the connections held`);
  t.ok(fdsHeld <= fdsBefore + MAX_CONTROL_CONNECTIONS + 8, `the daemon holds at most ${MAX_CONTROL_CONNECTIONS} of them (${fdsHeld - fdsBefore} more descriptors)`);

  const stagedAt = Date.now();
  const vm = await stageVm(t, site, 'late-vm');
  t.match(await vm.guest.ask('physcpus'), /^1\.0 200 \d+$/, 'a VM registered now is served');
  t.comment(`new VM answered ${Date.now() - stagedAt} ms after being staged, with the connections held`);
  const asked = reports.length;
  holder.stdin.write('count\n');
  const held = await report('open', asked);
  t.ok(Number(held['open']) <= MAX_CONTROL_CONNECTIONS, `the daemon kept ${String(held['open'])} of them open, at most ${MAX_CONTROL_CONNECTIONS}`);
  // Meanwhile the slots are full: the administrator's own status request is turned away too.
  const refused = await status(site, 1_000).then(() => 'answered', (error: Error) => error.message);
  t.comment(`status while the slots are held: ${refused}`);

  const closed = await report('allClosed', 0, CONTROL_IDLE_MS + 5_000);
  const after = Date.now() - openedAt;
  t.comment(`all connections dropped by the daemon ${after} ms after they were open (idle bound ${CONTROL_IDLE_MS} ms)`);
  t.ok(Number(closed['allClosed']) <= CONTROL_IDLE_MS + 2_000, `dropped within ${CONTROL_IDLE_MS} ms + 2 s (${String(closed['allClosed'])} ms)`);
  t.equal((await status(site)).pid, daemonPid, 'status answers again');
  holder.stdin.end();
});

t.test('a client speaking as a sidecar gets NOT_ALLOWED and nothing else; nobody cannot connect', async (t) => {
  const { site } = await servedSite(t);
  const vm = await stageVm(t, site, 'victim-vm', { uuid: '0badc0de-0000-4000-8000-000000000001' });
  await waitForSidecar(site, vm.name);
  const frames = [
    { v: 2, type: 'hello', qmp: { name: 'victim-vm', uuid: '0badc0de-0000-4000-8000-000000000001', version: 'QEMU 7.2.22' } },
    { v: 2, type: 'counters', requests: 0, ok: 0, denied: 0, rateLimited: 0, errors: 0, droppedBytes: 0, droppedLines: 0, lastRequestAt: null },
  ];
  for (const frame of frames) {
    const ws = new WebSocket(`ws+unix://${site.control}`, { perMessageDeflate: false });
    const got: string[] = [];
    ws.on('message', (data) => got.push(data.toString()));
    ws.on('error', () => {});
    await withTimeout(once(ws, 'open'), 'the upgrade');
    ws.send(JSON.stringify(frame));
    const [code] = (await withTimeout(once(ws, 'close'), 'the daemon to close the connection')) as [number];
    const types = got.map((text) => (JSON.parse(text) as { type: string }).type);
    t.same(types, ['error'], `${frame.type}: one error frame, no sample, no access decision`);
    t.match(JSON.parse(got[0] ?? '{}'), { v: 2, type: 'error', code: 'NOT_ALLOWED' }, `${frame.type}: NOT_ALLOWED`);
    t.equal(code, 1008, `${frame.type}: closed as a policy violation`);
    t.notOk(got.join('').includes('victim-vm') || got.join('').includes('0badc0de'), `${frame.type}: no VM identity in what it got`);
  }
  t.equal(await vm.guest.ask('PING'), '1.0 200 pong', 'the real sidecar is unaffected');
  if (needsRootAndSetpriv === false) t.equal(connectAs(site.control), 'EACCES', 'nobody cannot connect to the control socket at all');
  else t.comment(`nobody probe skipped: ${needsRootAndSetpriv}`);
});
