// `npm run bench`: every benchmark, one table. Add a benchmark by appending it to BENCHMARKS.

import { collectorBenchmark } from './daemon-collector.js';
import { fanoutBenchmark } from './daemon-fanout.js';
import { fleetRoundTripBenchmark } from './fleet-roundtrip.js';
import { guestRoundTripBenchmark } from './guest-roundtrip.js';
import { launcherBenchmark } from './launcher-overhead.js';
import { scaleCurveBenchmark } from './scale-curve.js';
import { type Benchmark, type BenchRow, formatTable } from './table.js';

const BENCHMARKS: readonly Benchmark[] = [collectorBenchmark, fanoutBenchmark, guestRoundTripBenchmark, fleetRoundTripBenchmark, launcherBenchmark, scaleCurveBenchmark];

const rows: BenchRow[] = [];
for (const benchmark of BENCHMARKS) {
  process.stderr.write(`running ${benchmark.name}...\n`);
  rows.push(...(await benchmark.run()));
}
process.stdout.write(`${formatTable(rows)}\n`);
