// CPU time of one host sample (read + parse + assemble) against only reading the same /proc
// files into a buffer: the parsing overhead the daemon adds on top of the unavoidable syscalls.

import { HOT_PROC_FILES, HotCounters } from '../daemon/collectors/hot-counters.js';
import { ProcFiles } from '../daemon/collectors/proc-reader.js';
import { HostSampler } from '../daemon/sampler.js';
import type { Benchmark, BenchRow } from './table.js';

const ITERATIONS = 20_000;
const GOAL_RATIO = 3;

function cpuMicrosPerCall(iterations: number, fn: () => void): number {
  for (let i = 0; i < 500; i++) fn(); // warm up the JIT
  const start = process.cpuUsage();
  for (let i = 0; i < iterations; i++) fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / iterations;
}

export const collectorBenchmark: Benchmark = {
  name: 'daemon collector',
  async run(): Promise<BenchRow[]> {
    const proc = new ProcFiles();
    const files = HOT_PROC_FILES.filter((name) => proc.readRaw(name) >= 0);
    let sink = 0;
    const raw = cpuMicrosPerCall(ITERATIONS, () => {
      for (const name of files) sink += proc.readRaw(name);
    });
    const sampler = new HostSampler({ hot: new HotCounters(new ProcFiles()), vmCount: () => 0 });
    const sample = cpuMicrosPerCall(ITERATIONS, () => {
      sink += Object.keys(sampler.sample().values).length;
    });
    if (sink < 0) throw new Error('unreachable: keeps the loops from being optimised away');
    const ratio = sample / raw;
    return [
      { benchmark: this.name, measure: `raw read of ${files.length} /proc files, CPU per sample`, value: `${raw.toFixed(1)} µs`, goal: '', met: undefined },
      { benchmark: this.name, measure: 'collector (read + parse + snapshot), CPU per sample', value: `${sample.toFixed(1)} µs`, goal: '', met: undefined },
      { benchmark: this.name, measure: 'collector / raw read', value: `${ratio.toFixed(2)}×`, goal: `≤ ${GOAL_RATIO}×`, met: ratio <= GOAL_RATIO },
    ];
  },
};
