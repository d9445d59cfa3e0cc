// Shared by the metrics tests and the Grafana dashboard test: status replies as the daemon builds
// them, Debian's promtool (package prometheus) run on a text, and a log that keeps its lines.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Log } from '../../../daemon/log.js';
import type { StatusReply, VmCounters, VmStatus } from '../../../daemon/message-types.js';

export const PROMTOOL = '/usr/bin/promtool';
export const NODE_EXPORTER = '/usr/bin/prometheus-node-exporter';
export const TOOLS_MISSING = 'needs promtool and node_exporter (.ci/setup installs the Debian packages prometheus and prometheus-node-exporter)';
export const havePromtool = (): boolean => existsSync(PROMTOOL);

export const T0 = 1_795_613_704_000;

export function vmEntry(name: string, uuid: string, counters: VmCounters | null, patch: Partial<VmStatus> = {}): VmStatus {
  return {
    id: name.replace(/[^a-z0-9]/gi, '_'), vm: { name, uuid, pid: 4242 }, guestDevice: '/dev/ttyS1', transport: 'isa-serial', attached: false,
    served: true, reason: null, file: '/etc/hostinfo/policies/default.toml', limit: { intervalMs: 1000, burst: 1 }, items: ['physcpus'],
    sidecar: { pid: 4343, uid: 999, restarts: 0, connected: true }, counters, ...patch,
  };
}

export function statusOf(vms: readonly VmStatus[], patch: Partial<StatusReply> = {}): StatusReply {
  return {
    v: 2, type: 'status', version: '0.1.0', pid: 100, startedAt: T0 - 60_000, intervalMs: 1000, seq: 60, takenAt: T0 - 250,
    sampleDurationMs: 0.125, vmcount: vms.filter((vm) => vm.served).length, vms, ...patch,
  };
}

export const COUNTERS: VmCounters = { requests: 12, ok: 7, denied: 2, rateLimited: 2, errors: 1, droppedBytes: 4096, droppedLines: 3, lastRequestAt: T0 - 1500 };

/** Two VMs: one with counters and a name that needs every escape, one that has not reported yet. */
export const TWO_VMS = statusOf([
  vmEntry('web "01" \\ prod', 'a0b1c2d3-0000-4000-8000-000000000001', COUNTERS, { sidecar: { pid: 4343, uid: 999, restarts: 2, connected: true } }),
  vmEntry('db02', 'a0b1c2d3-0000-4000-8000-000000000002', null, { served: false, reason: 'no policy', file: null, limit: null, items: [], sidecar: { pid: null, uid: null, restarts: 0, connected: false } }),
]);

/** `promtool check metrics` on `text`: exit status and what it printed (lint problems, parse errors). */
export function promtoolCheck(text: string): { status: number | null; output: string } {
  const run = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  if (run.error !== undefined) throw run.error;
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

export class RecordingLog implements Log {
  readonly lines: Record<string, unknown>[] = [];
  info(fields: object): void { this.lines.push({ level: 'info', ...fields }); }
  warn(fields: object): void { this.lines.push({ level: 'warn', ...fields }); }
  error(fields: object): void { this.lines.push({ level: 'error', ...fields }); }
  debug(fields: object): void { this.lines.push({ level: 'debug', ...fields }); }
  of(event: string): Record<string, unknown>[] { return this.lines.filter((line) => line['event'] === event); }
}
