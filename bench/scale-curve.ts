// How cost grows with VMs: one fleet (real paused QEMUs, one hostinfod, its sidecars; fleet.ts)
// grown to 10, 100 and 300 VMs, and at each size, while every guest asks once a second (each at
// its own phase of the second, as independent guests would):
//   - hostinfod's CPU per sample: utime+stime from /proc over the window / samples it took
//     (its seq), so everything the daemon does per interval counts (sampling, fan-out, the
//     sidecars' counters reports, watching vms/);
//   - fan-out p99: daemon-fanout.ts's measurement (sample taken → parsed by a DaemonChannel)
//     with as many subscribers as VMs, while the fleet runs;
//   - memory per VM: the sidecars' PSS plus hostinfod's, over the VMs (QEMU's own is context);
//   - request p50 / p99 of those once-a-second requests;
//   - the sidecars' CPU per VM-second, what a host pays for a VM being served at all.
// Then which resource runs out first, projected from the largest size measured.

import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { cpuTicks } from '../test/helpers/proc-stats.js';
import { measureFanout } from './daemon-fanout.js';
import { Fleet } from './fleet.js';
import { smapsRollup } from './sidecar-memory.js';
import { roundTripper } from './round-trip.js';
import { percentile, type Benchmark, type BenchRow } from './table.js';

const STEPS = [10, 100, 300] as const;
/** Seconds of every guest asking once a second, per size. */
const WINDOW_S = 10;
const SETTLE_MS = 2_000;
const FANOUT_SAMPLES = 100;
const CORES = 2;

interface Step {
  readonly vms: number;
  readonly daemonCpuPerSampleMs: number;
  readonly fanoutP99Ms: number;
  readonly pssPerVmMb: number;
  readonly qemuPssMb: number;
  readonly request50: number;
  readonly request99: number;
  readonly sidecarCpuPerVmSecondMs: number;
  /** MemAvailable fell by this much per VM since before the fleet: QEMU, sidecar, daemon share, bench sockets. */
  readonly hostMbPerVm: number;
  /** Every process of the fleet (QEMUs, sidecars, daemon), CPU ms per VM-second. */
  readonly fleetCpuPerVmSecondMs: number;
}

const memAvailableMb = (): number => Number(/^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? NaN) / 1024;
const sum = (values: readonly number[]): number => values.reduce((total, value) => total + value, 0);

/** Every socket asks once a second, at a phase of its own, for `seconds`; latencies in ms, sorted. */
async function askOncePerSecond(guests: readonly Socket[], seconds: number): Promise<number[]> {
  const samples: number[] = [];
  await Promise.all(guests.map(async (socket, index) => {
    const start = performance.now() + (1000 * index) / guests.length;
    const guest = roundTripper(socket);
    try {
      for (let i = 0; i < seconds; i += 1) {
        const due = start + 1000 * i - performance.now();
        if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
        samples.push(await guest.ask('physcpus', /^1\.0 200 \d+$/));
      }
    } finally {
      guest.close();
    }
  }));
  return samples.sort((a, b) => a - b);
}

async function measureStep(fleet: Fleet, availableBeforeMb: number): Promise<Step> {
  const vms = fleet.vms.length;
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  const sidecars = await fleet.sidecarPids();
  const qemus = fleet.vms.map((vm) => vm.qemu.pid ?? 0);
  const ticks = (pids: readonly number[]): number => sum(pids.map((pid) => cpuTicks(pid)));
  const [daemon0, sidecars0, qemus0, seq0, at0] = [ticks([fleet.daemon.pid]), ticks(sidecars), ticks(qemus), (await fleet.status()).seq ?? 0, performance.now()];
  const requests = await askOncePerSecond(fleet.vms.map((vm) => vm.guest), WINDOW_S);
  const [daemon1, sidecars1, qemus1, seq1, at1] = [ticks([fleet.daemon.pid]), ticks(sidecars), ticks(qemus), (await fleet.status()).seq ?? 0, performance.now()];
  const vmSeconds = (vms * (at1 - at0)) / 1000;
  const fanout = await measureFanout(vms, FANOUT_SAMPLES);
  const pss = (pid: number): number => (smapsRollup(pid).Pss ?? NaN) / 1024;
  return {
    vms,
    daemonCpuPerSampleMs: ((daemon1 - daemon0) * 10) / Math.max(1, seq1 - seq0),
    fanoutP99Ms: fanout.p99,
    pssPerVmMb: (sum(sidecars.map(pss)) + pss(fleet.daemon.pid)) / vms,
    qemuPssMb: sum(qemus.map(pss)) / vms,
    request50: percentile(requests, 50),
    request99: percentile(requests, 99),
    sidecarCpuPerVmSecondMs: ((sidecars1 - sidecars0) * 10) / vmSeconds,
    hostMbPerVm: (availableBeforeMb - memAvailableMb()) / vms,
    fleetCpuPerVmSecondMs: ((sidecars1 - sidecars0 + qemus1 - qemus0 + daemon1 - daemon0) * 10) / vmSeconds,
  };
}

function row(benchmark: string, step: Step): BenchRow {
  const f = (value: number, digits = 1): string => value.toFixed(digits);
  return {
    benchmark,
    measure: `${step.vms} VMs`,
    value: `${f(step.daemonCpuPerSampleMs)} ms | ${f(step.fanoutP99Ms, 2)} ms | ${f(step.pssPerVmMb)} MB (+ QEMU ${f(step.qemuPssMb)}) | ${f(step.request50, 2)} / ${f(step.request99, 2)} ms | ${f(step.sidecarCpuPerVmSecondMs, 2)} ms`,
    goal: '',
    met: undefined,
  };
}

/** What runs out first at the largest size measured: memory (MemAvailable) or the cores (the fleet's CPU at one request per VM per second). */
function limits(step: Step, availableBeforeMb: number): string {
  const byMemory = Math.floor(availableBeforeMb / step.hostMbPerVm);
  const byCpu = Math.floor((CORES * 1000) / step.fleetCpuPerVmSecondMs);
  const first = byCpu < byMemory ? `the cores (${f1(step.fleetCpuPerVmSecondMs)} ms CPU per VM-second)` : `memory (${f1(step.hostMbPerVm)} MB per VM, all in)`;
  return `${step.vms} held; projected: memory for ~${byMemory}, both cores busy at ~${byCpu}; runs out first: ${first}`;
}
const f1 = (value: number): string => value.toFixed(1);

export const scaleCurveBenchmark: Benchmark = {
  name: 'scale curve',
  async run(): Promise<BenchRow[]> {
    const availableBeforeMb = memAvailableMb();
    const steps: Step[] = [];
    let stoppedBy: string | undefined;
    let fleet: Fleet | undefined;
    try {
      for (const vms of STEPS) {
        const startedAt = Date.now();
        try {
          if (fleet === undefined) fleet = await Fleet.start(vms);
          else await fleet.grow(vms);
        } catch (error) {
          // The largest size that started is reported; what stopped the next one is said.
          stoppedBy = `${vms} VMs did not start: ${(error as Error).message.slice(0, 200)}`;
          break;
        }
        process.stderr.write(`  scale curve: ${vms} VMs up in ${((Date.now() - startedAt) / 1000).toFixed(1)} s\n`);
        steps.push(await measureStep(fleet, availableBeforeMb));
      }
    } finally {
      await fleet?.close();
    }
    const largest = steps[steps.length - 1];
    return [
      { benchmark: this.name, measure: 'columns', value: `hostinfod CPU per sample | fan-out p99 | PSS per VM, sidecar + hostinfod share | request p50 / p99, every VM asking 1/s | sidecar CPU per VM-second`, goal: '', met: undefined },
      ...steps.map((step) => row(this.name, step)),
      { benchmark: this.name, measure: `largest size on this machine (${CORES} cores, ${(availableBeforeMb / 1024).toFixed(1)} GiB available)`, value: largest === undefined ? (stoppedBy ?? 'none started') : `${limits(largest, availableBeforeMb)}${stoppedBy === undefined ? '' : `; ${stoppedBy}`}`, goal: '', met: undefined },
    ];
  },
};
