// Guest round trip with 100 VMs served at once: one real hostinfod serving 100 registered VMs
// (each a paused QEMU on QMP) through the 100 sidecars it spawned, every VM's guest end asking
// sequentially and all 100 asking in parallel. The baseline is 100 bare Node echo processes, one per socket, driven the same way by
// the same bench process: same process count, same scheduling on 2 cores, so the ratio is what the
// sidecar's own work adds, and queueing for the CPUs shows in both.

import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WIDE_BUDGET_NOTE } from './fleet-site.js';
import { Fleet, killAndWait } from './fleet.js';
import { ECHO_CLIENT } from './guest-roundtrip.js';
import { spawnNoted } from './reaper.js';
import { sidecarMemoryRows } from './sidecar-memory.js';
import { percentile, type Benchmark, type BenchRow } from './table.js';

const VMS = 100;
const WARMUP_ROUNDS = 20;
const ROUNDS = 200;
/** The memory rows are measured on this many of the VMs, after the others are stopped. */
const MEMORY_VMS = 50;

/** Every socket asks `rounds` times in sequence, all sockets at once; returns the latencies in ms, sorted. */
export async function concurrentRoundTrips(sockets: readonly Socket[], request: string, expect: RegExp, rounds: number): Promise<number[]> {
  const samples: number[] = [];
  await Promise.all(sockets.map(async (socket) => {
    let buffered = '';
    let wake: () => void = () => {};
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('latin1');
      wake();
    };
    socket.on('data', onData);
    try {
      for (let i = 0; i < rounds; i += 1) {
        const start = process.hrtime.bigint();
        socket.write(`${request}\n`);
        while (!buffered.includes('\n')) await new Promise<void>((resolve) => { wake = resolve; });
        samples.push(Number(process.hrtime.bigint() - start) / 1e6);
        const lf = buffered.indexOf('\n');
        const line = buffered.slice(0, lf);
        buffered = buffered.slice(lf + 1);
        if (!expect.test(line)) throw new Error(`unexpected reply ${JSON.stringify(line)} to ${request}`);
      }
    } finally {
      socket.off('data', onData);
    }
  }));
  return samples.sort((a, b) => a - b);
}

/** `count` echo processes, each connected to its own socket the bench listens on. */
async function startEchoes(dir: string, count: number, children: ChildProcess[]): Promise<Socket[]> {
  return Promise.all(Array.from({ length: count }, async (_, index) => {
    const path = join(dir, `echo-${index}.sock`);
    const server = createServer();
    server.listen(path);
    await once(server, 'listening');
    const accepted = once(server, 'connection');
    children.push(spawnNoted(process.execPath, ['-e', ECHO_CLIENT, path], { stdio: 'ignore' }));
    const [socket] = (await accepted) as [Socket];
    server.close();
    socket.setNoDelay(true);
    return socket;
  }));
}

/** One fleet for two benchmarks: 100 VMs for the round trip, then 50 of them for memory. */
export const fleetRoundTripBenchmark: Benchmark = {
  name: 'guest round trip',
  async run(): Promise<BenchRow[]> {
    const dir = await mkdtemp(join(tmpdir(), 'hostinfo-bench-echo-'));
    const echoes: ChildProcess[] = [];
    let fleet: Fleet | undefined;
    try {
      const echoSockets = await startEchoes(dir, VMS, echoes);
      await concurrentRoundTrips(echoSockets, 'PING', /^1\.0 200 pong$/, WARMUP_ROUNDS);
      const echo = await concurrentRoundTrips(echoSockets, 'PING', /^1\.0 200 pong$/, ROUNDS);
      for (const socket of echoSockets) socket.destroy();
      await Promise.all(echoes.map((child) => killAndWait(child)));

      const startedAt = Date.now();
      fleet = await Fleet.start(VMS);
      const startSeconds = (Date.now() - startedAt) / 1000;
      const guests = fleet.vms.map((vm) => vm.guest);
      await concurrentRoundTrips(guests, 'physcpus', /^1\.0 200 \d+$/, WARMUP_ROUNDS);
      const item = await concurrentRoundTrips(guests, 'physcpus', /^1\.0 200 \d+$/, ROUNDS);

      const ms = (value: number): string => `${value.toFixed(3)} ms`;
      const [echo50, echo99, item50, item99] = [percentile(echo, 50), percentile(echo, 99), percentile(item, 50), percentile(item, 99)] as const;
      const r50 = item50 / echo50;
      const r99 = item99 / echo99;
      process.stderr.write(`  ${VMS} VMs registered and served (QEMU + daemon-spawned sidecar each) in ${startSeconds.toFixed(1)} s\n`);
      await fleet.shrink(MEMORY_VMS);
      const memory = await sidecarMemoryRows('sidecar memory', fleet);
      return [
        { benchmark: this.name, measure: `${VMS} echo processes, all asking at once, p50 / p99 (baseline)`, value: `${ms(echo50)} / ${ms(echo99)}`, goal: '', met: undefined },
        { benchmark: this.name, measure: `${VMS} sidecars, all asking at once, physcpus p50 / p99 (${WIDE_BUDGET_NOTE})`, value: `${ms(item50)} / ${ms(item99)}`, goal: 'p99 < 1 ms', met: item99 < 1 },
        { benchmark: this.name, measure: `sidecar / echo, p50 and p99 (${VMS} VMs × ${ROUNDS} rounds)`, value: `${r50.toFixed(2)}× / ${r99.toFixed(2)}×`, goal: '≤ 1.5×', met: r50 <= 1.5 && r99 <= 1.5 },
        ...memory,
      ];
    } finally {
      await Promise.all(echoes.map((child) => killAndWait(child)));
      await fleet?.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
