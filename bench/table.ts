// One table for every benchmark: each contributes rows, run.ts prints them together.

export interface BenchRow {
  readonly benchmark: string;
  readonly measure: string;
  readonly value: string;
  /** The target, e.g. "≤ 3×"; empty when the row is context for another. */
  readonly goal: string;
  /** undefined when the row has no goal of its own. */
  readonly met: boolean | undefined;
}

export interface Benchmark {
  readonly name: string;
  run(): Promise<BenchRow[]>;
}

export function formatTable(rows: readonly BenchRow[]): string {
  const header = ['benchmark', 'measure', 'value', 'goal', 'met'];
  const cells = rows.map((r) => [r.benchmark, r.measure, r.value, r.goal, r.met === undefined ? '' : r.met ? 'yes' : 'NO']);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: readonly string[]): string => `| ${c.map((v, i) => v.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}
