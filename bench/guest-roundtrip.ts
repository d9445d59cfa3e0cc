// Guest request → reply round trip at the chardev socket, through a real hostinfo-sidecar (with a
// real paused QEMU for QMP and a real hostinfo-cache), against a baseline measured in the same
// run: a bare Node process on the same kind of socket that answers every line with a fixed reply.
// The bench plays QEMU's part: it listens on the socket, and the sidecar or the echo connects.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile, type Benchmark, type BenchRow } from './table.js';

const WARMUP = 500;
const ROUNDS = 5_000;
const bin = (relative: string): string => fileURLToPath(new URL(`../${relative}`, import.meta.url));

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
  let buffered = '';
  let wake: () => void = () => {};
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('latin1');
    wake();
  });
  const roundTrip = async (): Promise<number> => {
    const start = process.hrtime.bigint();
    socket.write(`${request}\n`);
    while (!buffered.includes('\n')) await new Promise<void>((resolve) => { wake = resolve; });
    const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
    const lf = buffered.indexOf('\n');
    const line = buffered.slice(0, lf);
    buffered = buffered.slice(lf + 1);
    if (!expect.test(line)) throw new Error(`unexpected reply ${JSON.stringify(line)} to ${request}`);
    return elapsed;
  };
  for (let i = 0; i < WARMUP; i += 1) await roundTrip();
  const samples: number[] = [];
  for (let i = 0; i < ROUNDS; i += 1) samples.push(await roundTrip());
  return samples.sort((a, b) => a - b);
}

async function waitForLine(child: ChildProcess, pattern: RegExp): Promise<void> {
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (pattern.test(seen)) resolve();
    });
    child.once('exit', () => reject(new Error(`exited before ${pattern}: ${seen.slice(-500)}`)));
  });
}

export const guestRoundTripBenchmark: Benchmark = {
  name: 'guest round trip',
  async run(): Promise<BenchRow[]> {
    const dir = await mkdtemp(join(tmpdir(), 'hostinfo-bench-rt-'));
    const children: ChildProcess[] = [];
    const start = (command: string, args: readonly string[]): ChildProcess => {
      const child = spawn(command, [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      children.push(child);
      return child;
    };
    try {
      await mkdir(join(dir, 'policies'));
      await writeFile(join(dir, 'policies', 'default.toml'), 'enabled = true\nburst = 100000000\ninterval = 1\n');
      const config = join(dir, 'hostinfo.toml');
      await writeFile(config, 'enabled = true\npolicy_dir = "policies"\nruntime_dir = "run"\n');

      const echoEnd = await acceptOne(join(dir, 'echo.sock'));
      start(process.execPath, ['-e', ECHO_CLIENT, join(dir, 'echo.sock')]);
      const echo = await measure(await echoEnd.socket, 'PING', /^1\.0 200 pong$/);
      echoEnd.close();

      const cache = start(process.execPath, [bin('cache/main.js'), '--config', config, '--socket', join(dir, 'cache.sock')]);
      await waitForLine(cache, /"event":"listening"/);
      const qmp = join(dir, 'qmp.sock');
      start('qemu-system-x86_64', ['-M', 'pc', '-accel', 'tcg', '-S', '-nodefaults', '-display', 'none', '-qmp', `unix:${qmp},server=on,wait=off`]);
      const guestEnd = await acceptOne(join(dir, 'guest.sock'));
      const sidecar = start(process.execPath, [bin('sidecar/main.js'), '--qmp', qmp, '--guest', join(dir, 'guest.sock'), '--config', config, '--cache', join(dir, 'cache.sock')]);
      await waitForLine(sidecar, /"event":"cache-data"/);
      const guest = await guestEnd.socket;
      const ping = await measure(guest, 'PING', /^1\.0 200 pong$/);
      guest.removeAllListeners('data');
      const item = await measure(guest, 'physcpus', /^1\.0 200 \d+$/);
      guestEnd.close();

      const ms = (value: number): string => `${value.toFixed(3)} ms`;
      const ratio = (value: number, base: number): string => `${(value / base).toFixed(2)}×`;
      const [echo50, echo99, ping50, ping99, item50, item99] = [
        percentile(echo, 50), percentile(echo, 99), percentile(ping, 50), percentile(ping, 99), percentile(item, 50), percentile(item, 99),
      ] as const;
      return [
        { benchmark: this.name, measure: `raw Node echo p50 / p99 (${ROUNDS} sequential, baseline)`, value: `${ms(echo50)} / ${ms(echo99)}`, goal: '', met: undefined },
        { benchmark: this.name, measure: 'sidecar PING p50 / p99', value: `${ms(ping50)} / ${ms(ping99)}`, goal: 'p99 < 1 ms', met: ping99 < 1 },
        { benchmark: this.name, measure: 'sidecar physcpus p50 / p99', value: `${ms(item50)} / ${ms(item99)}`, goal: 'p99 < 1 ms', met: item99 < 1 },
        { benchmark: this.name, measure: 'sidecar / echo, p50 and p99 (1 VM)', value: `${ratio(item50, echo50)} / ${ratio(item99, echo99)}`, goal: '≤ 1.5×', met: item50 / echo50 <= 1.5 && item99 / echo99 <= 1.5 },
      ];
    } finally {
      for (const child of children) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  },
};
