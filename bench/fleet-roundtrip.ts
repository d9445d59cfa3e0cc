// Guest round trip with 100 VMs served at once: one real hostinfod serving 100 registered VMs
// (each a paused QEMU on QMP) through the 100 sidecars it spawned, all 100 guest ends asking at
// once, each in sequence. The baseline is 100 bare Node echo processes, one per socket of the same
// kind (AF_UNIX stream, the bench listening and the other end connecting, as QEMU's chardev and
// the daemon's connection for the sidecar), sent the same request line, the same number of
// rounds, driven by the same bench process: same process count, same scheduling on 2 cores.
//
// Both run in the same machine state: the echoes are measured while the fleet (QEMUs, hostinfod,
// idle sidecars) is up, and the two alternate in blocks, so load from anything else on a shared
// machine falls on both alike. (Until issue 14 the echoes ran alone, before the fleet started: the
// fleet's idle work then weighed on the sidecars' run only. That figure is still printed, as
// context.) The CPU rows say what the ratio is made of: CPU per request from /proc, both sides.
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
import { roundTripper } from './round-trip.js';
import { percentile, type Benchmark, type BenchRow } from './table.js';
import { cpuTicks } from '../test/helpers/proc-stats.js';

const VMS = 100;
const WARMUP_ROUNDS = 20;
const ROUNDS = 200;
/** ROUNDS in this many alternating blocks per side. */
const BLOCKS = 4;
/** The line both sides are sent: the echo answers any line with its fixed reply. */
const REQUEST = 'physcpus';
const ECHO_REPLY = /^1\.0 200 pong$/;
const ITEM_REPLY = /^1\.0 200 \d+$/;
/** The memory rows are measured on this many of the VMs, after the others are stopped. */
const MEMORY_VMS = 50;

/** Every socket asks `rounds` times in sequence, all sockets at once; returns the latencies in ms, sorted. */
export async function concurrentRoundTrips(sockets: readonly Socket[], request: string, expect: RegExp, rounds: number): Promise<number[]> {
  const samples: number[] = [];
  await Promise.all(sockets.map(async (socket) => {
    const guest = roundTripper(socket);
    try {
      for (let i = 0; i < rounds; i += 1) samples.push(await guest.ask(request, expect));
    } finally {
      guest.close();
    }
  }));
  return samples.sort((a, b) => a - b);
}

/** Sockets and the pids answering them, measured together. */
interface Side {
  readonly sockets: readonly Socket[];
  readonly pids: readonly number[];
  readonly expect: RegExp;
  readonly samples: number[];
  cpuMs: number;
}

/** One block of `rounds` on one side, its latencies and its processes' CPU added to the side's. */
async function block(side: Side, rounds: number): Promise<void> {
  const ticks = (): number => side.pids.reduce((sum, pid) => sum + cpuTicks(pid), 0);
  const before = ticks();
  side.samples.push(...(await concurrentRoundTrips(side.sockets, REQUEST, side.expect, rounds)));
  side.cpuMs += (ticks() - before) * 10;
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
      // The old baseline, for comparison with earlier runs: the echoes alone, before the fleet.
      await concurrentRoundTrips(echoSockets, REQUEST, ECHO_REPLY, WARMUP_ROUNDS);
      const alone = await concurrentRoundTrips(echoSockets, REQUEST, ECHO_REPLY, ROUNDS);

      const startedAt = Date.now();
      fleet = await Fleet.start(VMS);
      const startSeconds = (Date.now() - startedAt) / 1000;
      const echo: Side = { sockets: echoSockets, pids: echoes.map((child) => child.pid ?? 0), expect: ECHO_REPLY, samples: [], cpuMs: 0 };
      const item: Side = { sockets: fleet.vms.map((vm) => vm.guest), pids: await fleet.sidecarPids(), expect: ITEM_REPLY, samples: [], cpuMs: 0 };
      await concurrentRoundTrips(echo.sockets, REQUEST, ECHO_REPLY, WARMUP_ROUNDS);
      await concurrentRoundTrips(item.sockets, REQUEST, ITEM_REPLY, WARMUP_ROUNDS);
      for (let i = 0; i < BLOCKS; i += 1) {
        await block(echo, ROUNDS / BLOCKS);
        await block(item, ROUNDS / BLOCKS);
      }
      for (const socket of echoSockets) socket.destroy();
      await Promise.all(echoes.map((child) => killAndWait(child)));

      const ms = (value: number): string => `${value.toFixed(3)} ms`;
      const sorted = (values: number[]): number[] => values.sort((a, b) => a - b);
      const [echoSorted, itemSorted, aloneSorted] = [sorted(echo.samples), sorted(item.samples), alone];
      const [echo50, echo99, item50, item99] = [percentile(echoSorted, 50), percentile(echoSorted, 99), percentile(itemSorted, 50), percentile(itemSorted, 99)] as const;
      const r50 = item50 / echo50;
      const r99 = item99 / echo99;
      const perRequest = (side: Side): number => (1000 * side.cpuMs) / side.samples.length;
      process.stderr.write(`  ${VMS} VMs registered and served (QEMU + daemon-spawned sidecar each) in ${startSeconds.toFixed(1)} s\n`);
      await fleet.shrink(MEMORY_VMS);
      const memory = await sidecarMemoryRows('sidecar memory', fleet);
      return [
        { benchmark: this.name, measure: `${VMS} echo processes alone, before the fleet starts, p50 / p99 (the baseline until issue 14)`, value: `${ms(percentile(aloneSorted, 50))} / ${ms(percentile(aloneSorted, 99))}`, goal: '', met: undefined },
        { benchmark: this.name, measure: `${VMS} echo processes beside the idle fleet, all asking at once, p50 / p99 (baseline)`, value: `${ms(echo50)} / ${ms(echo99)}`, goal: '', met: undefined },
        { benchmark: this.name, measure: `${VMS} sidecars, all asking at once, physcpus p50 / p99 (${WIDE_BUDGET_NOTE})`, value: `${ms(item50)} / ${ms(item99)}`, goal: '', met: undefined },
        { benchmark: this.name, measure: `CPU per request, echo / sidecar (/proc utime+stime)`, value: `${perRequest(echo).toFixed(0)} µs / ${perRequest(item).toFixed(0)} µs`, goal: '', met: undefined },
        { benchmark: this.name, measure: `sidecar / echo, p50 and p99 (${VMS} VMs × ${ROUNDS} rounds, ${BLOCKS} alternating blocks)`, value: `${r50.toFixed(2)}× / ${r99.toFixed(2)}×`, goal: '≤ 1.5×', met: r50 <= 1.5 && r99 <= 1.5 },
        ...memory,
      ];
    } finally {
      await Promise.all(echoes.map((child) => killAndWait(child)));
      await fleet?.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
