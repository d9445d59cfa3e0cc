// Marginal memory per sidecar: proportional set size (Pss in /proc/PID/smaps_rollup: private pages
// plus each shared page divided among the processes sharing it) of sidecars running against real
// paused QEMUs, next to a bare `node -e` process of the same Node measured at the same moment, so
// both get the same share of the pages all Node processes have in common.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type Fleet, killAndWait } from './fleet.js';
import type { BenchRow } from './table.js';

const GOAL_MB = 15;
const SETTLE_MS = 1_500;

/** The named fields of /proc/PID/smaps_rollup, in kB. */
export function smapsRollup(pid: number): Record<string, number> {
  const fields: Record<string, number> = {};
  for (const match of readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').matchAll(/^(\w+):\s+(\d+) kB$/gm)) {
    if (match[1] !== undefined) fields[match[1]] = Number(match[2]);
  }
  return fields;
}

const mean = (values: readonly number[]): number => values.reduce((sum, v) => sum + v, 0) / values.length;
const mb = (kb: number): string => `${(kb / 1024).toFixed(1)} MB`;

export async function sidecarMemoryRows(benchmark: string, fleet: Fleet): Promise<BenchRow[]> {
  const bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e9)'], { stdio: 'ignore' });
  try {
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const sidecars = fleet.vms.map((vm) => smapsRollup(vm.sidecar.pid ?? 0));
    const qemus = fleet.vms.map((vm) => smapsRollup(vm.qemu.pid ?? 0));
    const node = smapsRollup(bare.pid ?? 0);
    const pss = mean(sidecars.map((s) => s.Pss ?? NaN));
    const rss = mean(sidecars.map((s) => s.Rss ?? NaN));
    const privateKb = mean(sidecars.map((s) => (s.Private_Clean ?? NaN) + (s.Private_Dirty ?? NaN)));
    const nodePrivate = (node.Private_Clean ?? NaN) + (node.Private_Dirty ?? NaN);
    const marginal = pss - (node.Pss ?? NaN);
    const n = fleet.vms.length;
    return [
      { benchmark, measure: `bare \`node -e\` PSS / RSS / private (baseline, beside ${n} sidecars)`, value: `${mb(node.Pss ?? NaN)} / ${mb(node.Rss ?? NaN)} / ${mb(nodePrivate)}`, goal: '', met: undefined },
      { benchmark, measure: `sidecar PSS / RSS / private, mean of ${n} (after the round trips)`, value: `${mb(pss)} / ${mb(rss)} / ${mb(privateKb)}`, goal: '', met: undefined },
      { benchmark, measure: 'marginal PSS per sidecar (sidecar - bare node)', value: mb(marginal), goal: `≤ ${GOAL_MB} MB`, met: marginal <= GOAL_MB * 1024 },
      { benchmark, measure: `paused QEMU (-M pc, TCG, -S) PSS / RSS, mean of ${n}`, value: `${mb(mean(qemus.map((s) => s.Pss ?? NaN)))} / ${mb(mean(qemus.map((s) => s.Rss ?? NaN)))}`, goal: '', met: undefined },
    ];
  } finally {
    await killAndWait(bare);
  }
}
