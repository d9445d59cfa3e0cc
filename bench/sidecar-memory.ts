// Memory per sidecar against Node itself (issue 14, goal 1): proportional set size (Pss in
// /proc/PID/smaps_rollup: private pages plus each shared page divided among the processes sharing
// it) of the sidecars hostinfod runs against real paused QEMUs, next to a bare `node -e` process of
// the same Node measured at the same moment, so both get the same share of the pages all Node
// processes have in common. The baseline is exactly `node -e`, with no flag the sidecar may get.
// The headline is the PSS ratio (what a host pays per VM, in Nodes); RSS and private are reported
// beside it. Sidecar pids come from the daemon's status; the daemon's own footprint is one more row.

import { readFileSync } from 'node:fs';
import { type Fleet, killAndWait } from './fleet.js';
import { spawnNoted } from './reaper.js';
import type { BenchRow } from './table.js';

/** Sidecar PSS at most this many bare Nodes. */
const GOAL_RATIO = 1.5;
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
  const bare = spawnNoted(process.execPath, ['-e', 'setInterval(() => {}, 1e9)'], { stdio: 'ignore' });
  try {
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const sidecarPids = await fleet.sidecarPids();
    const sidecars = sidecarPids.map((pid) => smapsRollup(pid));
    const qemus = fleet.vms.map((vm) => smapsRollup(vm.qemu.pid ?? 0));
    const node = smapsRollup(bare.pid ?? 0);
    const daemon = smapsRollup(fleet.daemon.pid);
    const pss = mean(sidecars.map((s) => s.Pss ?? NaN));
    const rss = mean(sidecars.map((s) => s.Rss ?? NaN));
    const privateKb = mean(sidecars.map((s) => (s.Private_Clean ?? NaN) + (s.Private_Dirty ?? NaN)));
    const nodePrivate = (node.Private_Clean ?? NaN) + (node.Private_Dirty ?? NaN);
    const marginal = pss - (node.Pss ?? NaN);
    const ratio = pss / (node.Pss ?? NaN);
    const times = (value: number): string => `${value.toFixed(2)}×`;
    const n = sidecars.length;
    return [
      { benchmark, measure: `bare \`node -e\` PSS / RSS / private (baseline, beside ${n} sidecars)`, value: `${mb(node.Pss ?? NaN)} / ${mb(node.Rss ?? NaN)} / ${mb(nodePrivate)}`, goal: '', met: undefined },
      { benchmark, measure: `sidecar PSS / RSS / private, mean of ${n} (after the round trips)`, value: `${mb(pss)} / ${mb(rss)} / ${mb(privateKb)}`, goal: '', met: undefined },
      { benchmark, measure: 'sidecar / bare node: PSS (headline) · RSS · private', value: `${times(ratio)} · ${times(rss / (node.Rss ?? NaN))} · ${times(privateKb / nodePrivate)}`, goal: `PSS ≤ ${GOAL_RATIO}×`, met: ratio <= GOAL_RATIO },
      { benchmark, measure: 'marginal PSS per sidecar (sidecar - bare node)', value: mb(marginal), goal: '', met: undefined },
      { benchmark, measure: `hostinfod PSS / RSS, serving ${n} VMs`, value: `${mb(daemon.Pss ?? NaN)} / ${mb(daemon.Rss ?? NaN)}`, goal: '', met: undefined },
      { benchmark, measure: `paused QEMU (-M pc, TCG, -S) PSS / RSS, mean of ${n}`, value: `${mb(mean(qemus.map((s) => s.Pss ?? NaN)))} / ${mb(mean(qemus.map((s) => s.Rss ?? NaN)))}`, goal: '', met: undefined },
    ];
  } finally {
    await killAndWait(bare);
  }
}
