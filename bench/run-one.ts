// Runs the benchmarks named on the command line (by file name, e.g. fleet-roundtrip), for working
// on one without waiting for all: node dist/bench/run-one.js fleet-roundtrip
import type { Benchmark } from './table.js';
import { formatTable, type BenchRow } from './table.js';

const rows: BenchRow[] = [];
for (const name of process.argv.slice(2)) {
  const module = (await import(`./${name}.js`)) as Record<string, unknown>;
  for (const value of Object.values(module)) {
    const benchmark = value as Partial<Benchmark>;
    if (typeof benchmark === 'object' && benchmark !== null && typeof benchmark.run === 'function' && typeof benchmark.name === 'string') {
      process.stderr.write(`running ${benchmark.name} (${name})...\n`);
      rows.push(...(await (benchmark as Benchmark).run()));
    }
  }
}
process.stdout.write(`${formatTable(rows)}\n`);
