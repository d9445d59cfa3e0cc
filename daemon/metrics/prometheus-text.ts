// The daemon's status as Prometheus text exposition (format 0.0.4), the format node_exporter's
// textfile collector reads and `hostinfo-ctl metrics` prints. Pure: the same status and clock give
// the same bytes, so tests compare text and the writer can run it every sample interval.
//
// Decisions, as an administrator's queries see them:
// - Families come in a fixed order, each with HELP and TYPE even when it has no sample (no VM
//   yet), so the file's shape does not depend on the fleet.
// - Per-VM labels are the VM's name and uuid only (never anything a guest chose per request), so
//   the series count is bounded by the VMs on the host.
// - Every VM gets all four status series of hostinfo_requests_total and the dropped counters, 0
//   before its sidecar reported anything (a sidecar reports only after a request), so rate() and
//   increase() work from the first request on.
// - hostinfo_sample_age_seconds and hostinfo_sample_duration_seconds are left out (their HELP and
//   TYPE stay) until the first sample: a made-up 0 would read as "fresh" and NaN breaks alerts.
//   The textfile is written right after each sample, so there the age says "this write was late";
//   a file nobody rewrites any more shows in node_exporter's node_textfile_mtime_seconds.
// - No timestamps: node_exporter refuses textfile samples that carry one.
// - Two VMs with the same name and uuid (QEMU does not stop two processes from both being -uuid X)
//   would be one series twice, and node_exporter drops the whole file for a duplicate: the first
//   one (in status order, by VM directory) is exported, the others are left out.

import type { StatusReply, VmStatus } from '../message-types.js';

type MetricType = 'gauge' | 'counter';

interface Family {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  /** Sample lines without the metric name: `{labels} value`, or ` value` for no labels. */
  readonly samples: readonly string[];
}

/** Every family renderMetrics emits, in its order: the Grafana test checks expressions against it. */
export const METRIC_FAMILIES = [
  'hostinfo_build_info',
  'hostinfo_start_time_seconds',
  'hostinfo_vms',
  'hostinfo_vms_served',
  'hostinfo_sample_age_seconds',
  'hostinfo_sample_duration_seconds',
  'hostinfo_vm_served',
  'hostinfo_sidecar_up',
  'hostinfo_sidecar_restarts_total',
  'hostinfo_requests_total',
  'hostinfo_guest_dropped_bytes_total',
  'hostinfo_guest_dropped_lines_total',
  'hostinfo_last_request_timestamp_seconds',
] as const;
export type MetricFamily = (typeof METRIC_FAMILIES)[number];

/** The `status` label of hostinfo_requests_total for each VmCounters field, in output order. */
export const REQUEST_STATUSES = [['ok', '200'], ['denied', '403'], ['rateLimited', '429'], ['errors', 'error']] as const;

/** Label value escaping of the exposition format: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\\' ? '\\\\' : c === '"' ? '\\"' : '\\n'));
}

const labels = (pairs: readonly (readonly [string, string])[]): string =>
  `{${pairs.map(([key, value]) => `${key}="${escapeLabelValue(value)}"`).join(',')}}`;

/** Go's ParseFloat reads whatever String(number) gives for finite numbers (1e+21, 5e-7 included). */
const num = (value: number): string => (Number.isFinite(value) ? String(value) : Number.isNaN(value) ? 'NaN' : value > 0 ? '+Inf' : '-Inf');

const seconds = (ms: number): number => ms / 1000;

export function renderMetrics(status: StatusReply, now: number): string {
  const vms = uniqueSeries(status.vms);
  const perVm = (value: (vm: VmStatus) => number | null): string[] => {
    const lines: string[] = [];
    for (const vm of vms) {
      const v = value(vm);
      if (v !== null) lines.push(`${vmLabels(vm)} ${num(v)}`);
    }
    return lines;
  };
  const scalar = (value: number | null): string[] => (value === null ? [] : [` ${num(value)}`]);
  const families: Record<MetricFamily, Omit<Family, 'name'>> = {
    hostinfo_build_info: { type: 'gauge', help: 'Always 1; the version label is the running hostinfod\'s.', samples: [`${labels([['version', status.version]])} 1`] },
    hostinfo_start_time_seconds: { type: 'gauge', help: 'When hostinfod started, seconds since the epoch.', samples: scalar(seconds(status.startedAt)) },
    hostinfo_vms: { type: 'gauge', help: 'VMs registered with hostinfod, served or not.', samples: scalar(status.vms.length) },
    hostinfo_vms_served: { type: 'gauge', help: 'Registered VMs whose policy serves them.', samples: scalar(status.vmcount) },
    hostinfo_sample_age_seconds: {
      type: 'gauge', help: 'Age of the latest host sample when this was written; absent before the first sample.',
      // takenAt never decreases, but the wall clock may step back below it: an age is never negative.
      samples: scalar(status.takenAt === null ? null : seconds(Math.max(0, now - status.takenAt))),
    },
    hostinfo_sample_duration_seconds: {
      type: 'gauge', help: 'How long taking the latest host sample took; absent before the first sample.',
      samples: scalar(status.sampleDurationMs === null ? null : seconds(status.sampleDurationMs)),
    },
    hostinfo_vm_served: { type: 'gauge', help: '1 if the VM\'s policy serves it, else 0.', samples: perVm((vm) => (vm.served ? 1 : 0)) },
    hostinfo_sidecar_up: { type: 'gauge', help: '1 while the VM\'s sidecar is connected to hostinfod, else 0.', samples: perVm((vm) => (vm.sidecar.connected ? 1 : 0)) },
    hostinfo_sidecar_restarts_total: { type: 'counter', help: 'Times hostinfod restarted the VM\'s sidecar.', samples: perVm((vm) => vm.sidecar.restarts) },
    hostinfo_requests_total: {
      type: 'counter',
      help: 'Guest requests answered, by status: 200, 403 (not permitted), 429 (rate limited), error (any other 4xx or 5xx); since the sidecar started.',
      samples: vms.flatMap((vm) => REQUEST_STATUSES.map(([field, code]) => `${vmLabels(vm, code)} ${num(vm.counters?.[field] ?? 0)}`)),
    },
    hostinfo_guest_dropped_bytes_total: { type: 'counter', help: 'Guest bytes past the flood budget, dropped unread; since the sidecar started.', samples: perVm((vm) => vm.counters?.droppedBytes ?? 0) },
    hostinfo_guest_dropped_lines_total: { type: 'counter', help: 'Guest lines past the flood budget, dropped unread; since the sidecar started.', samples: perVm((vm) => vm.counters?.droppedLines ?? 0) },
    hostinfo_last_request_timestamp_seconds: {
      type: 'gauge', help: 'When the guest last made a request, seconds since the epoch; absent before its first.',
      samples: perVm((vm) => {
        const at = vm.counters?.lastRequestAt ?? null;
        return at === null ? null : seconds(at);
      }),
    },
  };
  const out: string[] = [];
  for (const name of METRIC_FAMILIES) {
    const family = families[name];
    out.push(`# HELP ${name} ${escapeHelp(family.help)}`, `# TYPE ${name} ${family.type}`);
    for (const sample of family.samples) out.push(name + sample);
  }
  return `${out.join('\n')}\n`;
}

function vmLabels(vm: VmStatus, status?: string): string {
  const pairs: [string, string][] = [['vm', vm.vm.name], ['uuid', vm.vm.uuid]];
  if (status !== undefined) pairs.push(['status', status]);
  return labels(pairs);
}

/** HELP text escaping: backslash and line feed (a quote is literal there). */
function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === '\\' ? '\\\\' : '\\n'));
}

function uniqueSeries(vms: readonly VmStatus[]): VmStatus[] {
  const seen = new Set<string>();
  return vms.filter((vm) => {
    const key = JSON.stringify([vm.vm.name, vm.vm.uuid]);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
