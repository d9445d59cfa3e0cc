// The vhostmd metrics hostinfo serves: the set SAP-targeted hosts ship (RHEL's vhostmd.conf,
// written with SAP), each computed from catalogue items the item service answers, so the VM's
// policy governs them like every other item: a metric is in the document only when every item it
// is computed from is permitted and has a value. Units are fixed here and on every metric
// (vhostmd 1.2's `unit` attribute), because the implementations in the field disagree: memory in
// MiB, times in seconds, CPU counts in CPUs. README "vhostmd protocol (SAP)" has this table;
// test/sidecar/vhostmd/metrics-table.test.ts holds the two to each other.

import type { ItemName } from '../../policies/items.js';
import type { ItemValues } from '../items/vm-values.js';

/** vhostmd's value types (metric.dtd), those this table uses. */
export type MetricType = 'uint32' | 'uint64' | 'int64' | 'real64' | 'string';
export type MetricContext = 'host' | 'vm';

type SourceValues<S extends readonly ItemName[]> = { readonly [I in S[number]]: ItemValues[I] };

interface MetricSpec<S extends readonly ItemName[], T extends MetricType> {
  readonly name: string;
  readonly context: MetricContext;
  readonly type: T;
  readonly unit: string;
  /** The items the value is computed from: all must be permitted and available. */
  readonly sources: S;
  readonly value: (values: SourceValues<S>) => T extends 'string' ? string : number;
}

/** A table row with its source types erased; `compute` only ever gets its own sources' values. */
export interface Metric {
  readonly name: string;
  readonly context: MetricContext;
  readonly type: MetricType;
  readonly unit: string;
  readonly sources: readonly ItemName[];
  readonly compute: (values: Partial<Record<ItemName, unknown>>) => string | number;
}

function metric<const S extends readonly ItemName[], T extends MetricType>(spec: MetricSpec<S, T>): Metric {
  const { value, ...rest } = spec;
  return { ...rest, compute: (values) => value(values as SourceValues<S>) };
}

const MIB_PER_KB = 1 / 1024;
const mib = (kb: number): number => Math.floor(kb * MIB_PER_KB);
/** A limit that may be absent (null: none on the cgroup): the tighter of the two. */
const tighter = (size: number, limit: number | null): number => (limit === null ? size : Math.min(size, limit));

/** Host metrics first, then VM metrics, in vhostmd.conf's order. */
export const METRICS: readonly Metric[] = [
  metric({ name: 'HostName', context: 'host', type: 'string', unit: 'none', sources: ['hostname'], value: (v) => v.hostname }),
  metric({ name: 'Time', context: 'host', type: 'int64', unit: 's', sources: ['hosttime'], value: (v) => Math.floor(v.hosttime / 1000) }),
  // `QEMU 7.2.22`: the vendor is its first word, the product its version.
  metric({ name: 'VirtualizationVendor', context: 'host', type: 'string', unit: 'none', sources: ['hypervisor'], value: (v) => v.hypervisor.trim().split(/\s+/)[0] ?? '' }),
  metric({ name: 'VirtProductInfo', context: 'host', type: 'string', unit: 'none', sources: ['hypervisor'], value: (v) => v.hypervisor.trim().split(/\s+/).slice(1).join(' ') || v.hypervisor }),
  metric({ name: 'HostSystemInfo', context: 'host', type: 'string', unit: 'none', sources: ['kernel'], value: (v) => `Linux ${v.kernel}` }),
  metric({ name: 'NumberOfPhysicalCPUs', context: 'host', type: 'uint32', unit: 'CPUs', sources: ['physcpus'], value: (v) => v.physcpus }),
  // In use on the host, VMs included (free(1)'s "used"): hostinfo cannot tell the VMs' share apart.
  metric({ name: 'MemoryAllocatedToVirtualServers', context: 'host', type: 'uint64', unit: 'MiB', sources: ['physmem'], value: (v) => mib(Math.max(0, v.physmem.total - v.physmem.available)) }),
  metric({ name: 'FreePhysicalMemory', context: 'host', type: 'uint64', unit: 'MiB', sources: ['physmem'], value: (v) => mib(v.physmem.free) }),
  metric({ name: 'FreeVirtualMemory', context: 'host', type: 'uint64', unit: 'MiB', sources: ['swap'], value: (v) => mib(v.swap.free) }),
  metric({ name: 'UsedVirtualMemory', context: 'host', type: 'uint64', unit: 'MiB', sources: ['swap'], value: (v) => mib(Math.max(0, v.swap.total - v.swap.free)) }),
  // Upstream vhostmd's own definition (vhostmd.xml: vmstat's "pages paged in", i.e. pgpgin, which
  // is kB, / 1024). RHEL's conf counts swap-ins instead (pswpin × page size); page-cache I/O is the
  // broader figure and swap is FreeVirtualMemory's and UsedVirtualMemory's business.
  metric({ name: 'PagedInMemory', context: 'host', type: 'uint64', unit: 'MiB', sources: ['pagedin'], value: (v) => mib(v.pagedin) }),
  metric({ name: 'PagedOutMemory', context: 'host', type: 'uint64', unit: 'MiB', sources: ['pagedout'], value: (v) => mib(v.pagedout) }),
  metric({ name: 'TotalCPUTime', context: 'host', type: 'real64', unit: 's', sources: ['hostcputime'], value: (v) => v.hostcputime }),
  metric({ name: 'TotalCPUTime', context: 'vm', type: 'real64', unit: 's', sources: ['vmcputime'], value: (v) => v.vmcputime }),
  // The most CPU this VM can get: its vCPUs, or its cgroup's quota when that is tighter.
  metric({ name: 'ResourceProcessorLimit', context: 'vm', type: 'real64', unit: 'CPUs', sources: ['vcpus', 'cpulimit'], value: (v) => tighter(v.vcpus, v.cpulimit) }),
  metric({ name: 'ResourceMemoryLimit', context: 'vm', type: 'uint64', unit: 'MiB', sources: ['vmmem', 'memlimit'], value: (v) => mib(tighter(v.vmmem.total, v.memlimit)) }),
  // What the balloon leaves the guest; all of its RAM without a balloon device.
  metric({ name: 'PhysicalMemoryAllocatedToVirtualSystem', context: 'vm', type: 'uint64', unit: 'MiB', sources: ['vmmem'], value: (v) => mib(v.vmmem.balloon ?? v.vmmem.total) }),
];

/**
 * A computed value as the document writes it: integers whole, reals with 2 decimals. Undefined for
 * a number that is not finite: such a metric is left out rather than written as a made-up 0.
 */
export function metricText(type: MetricType, value: string | number): string | undefined {
  if (typeof value === 'string') return value;
  if (!Number.isFinite(value)) return undefined;
  switch (type) {
    case 'real64':
      return value.toFixed(2);
    case 'uint32':
    case 'uint64':
      return String(Math.max(0, Math.floor(value)));
    default:
      return String(Math.floor(value));
  }
}
