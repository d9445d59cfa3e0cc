// Guest request → reply round trip at the chardev socket, through a real hostinfo-sidecar that a
// real hostinfod spawned for a registered VM (a real paused QEMU for QMP), against a baseline
// measured in the same run: a bare Node process on the same kind of socket that answers every line
// with a fixed reply. The bench plays QEMU's part: it listens on the socket, and the echo connects,
// or hostinfod connects for the sidecar and hands the connection over.

import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WIDE_BUDGET_NOTE } from './fleet-site.js';
import { Fleet, killAndWait } from './fleet.js';
import { spawnNoted } from './reaper.js';
import { roundTripper } from './round-trip.js';
import { percentile, type Benchmark, type BenchRow } from './table.js';

const WARMUP = 500;
const ROUNDS = 5_000;

/** The baseline: a bare Node process that connects to argv[1] and answers every line with a fixed reply. */
export const ECHO_CLIENT = `
const socket = require('node:net').createConnection(process.argv[1]);
let pending = '';
socket.on('data', (chunk) => {
  pending += chunk.toString('latin1');
  let lf;
  while ((lf = pending.indexOf('\\n')) !== -1) { pending = pending.slice(lf + 1); socket.write('1.0 200 pong\\n'); }
});`;

/** Accepts the first connection on `path`. */
async function acceptOne(path: string): Promise<{ socket: Promise<Socket>; close: () => void }> {
  const server = createServer();
  server.listen(path);
  await once(server, 'listening');
  const socket = once(server, 'connection').then(([s]) => s as Socket);
  return { socket, close: () => server.close() };
}

/** Sequential request/reply latencies in ms, after a warm-up. */
async function measure(socket: Socket, request: string, expect: RegExp): Promise<number[]> {
  const guest = roundTripper(socket);
  try {
    for (let i = 0; i < WARMUP; i += 1) await guest.ask(request, expect);
    const samples: number[] = [];
    for (let i = 0; i < ROUNDS; i += 1) samples.push(await guest.ask(request, expect));
    return samples.sort((a, b) => a - b);
  } finally {
    guest.close();
  }
}

export const guestRoundTripBenchmark: Benchmark = {
  name: 'guest round trip',
  async run(): Promise<BenchRow[]> {
    const dir = await mkdtemp(join(tmpdir(), 'hostinfo-bench-rt-'));
    let echoChild: ChildProcess | undefined;
    let fleet: Fleet | undefined;
    try {
      const echoEnd = await acceptOne(join(dir, 'echo.sock'));
      echoChild = spawnNoted(process.execPath, ['-e', ECHO_CLIENT, join(dir, 'echo.sock')], { stdio: 'ignore' });
      const echoSocket = await echoEnd.socket;
      echoSocket.setNoDelay(true);
      const echo = await measure(echoSocket, 'PING', /^1\.0 200 pong$/);
      echoSocket.destroy();
      echoEnd.close();
      await killAndWait(echoChild);

      fleet = await Fleet.start(1);
      const guest = (fleet.vms[0] as { guest: Socket }).guest;
      const ping = await measure(guest, 'PING', /^1\.0 200 pong$/);
      const item = await measure(guest, 'physcpus', /^1\.0 200 \d+$/);

      const ms = (value: number): string => `${value.toFixed(3)} ms`;
      const ratio = (value: number, base: number): string => `${(value / base).toFixed(2)}×`;
      const [echo50, echo99, ping50, ping99, item50, item99] = [
        percentile(echo, 50), percentile(echo, 99), percentile(ping, 50), percentile(ping, 99), percentile(item, 50), percentile(item, 99),
      ] as const;
      return [
        { benchmark: this.name, measure: `raw Node echo p50 / p99 (${ROUNDS} sequential, baseline)`, value: `${ms(echo50)} / ${ms(echo99)}`, goal: '', met: undefined },
        { benchmark: this.name, measure: `sidecar PING p50 / p99 (${WIDE_BUDGET_NOTE})`, value: `${ms(ping50)} / ${ms(ping99)}`, goal: 'p99 < 1 ms', met: ping99 < 1 },
        { benchmark: this.name, measure: `sidecar physcpus p50 / p99 (${WIDE_BUDGET_NOTE})`, value: `${ms(item50)} / ${ms(item99)}`, goal: 'p99 < 1 ms', met: item99 < 1 },
        { benchmark: this.name, measure: 'sidecar / echo, p50 and p99 (1 VM)', value: `${ratio(item50, echo50)} / ${ratio(item99, echo99)}`, goal: '≤ 1.5×', met: item50 / echo50 <= 1.5 && item99 / echo99 <= 1.5 },
      ];
    } finally {
      if (echoChild !== undefined) await killAndWait(echoChild);
      await fleet?.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
