// What the sidecar knows about its own VM, and the typed value of each item it produces. The host
// items' values are daemon/sample.ts's HostValues; together they type every item, so the item
// service and each codec work on numbers and records, never on reply text.

import type { Exact } from '../../common/exact.js';
import type { HostValues } from '../../daemon/sample.js';
import type { ItemName, SidecarItemName } from '../../policies/items.js';

export interface VmValues {
  /** The host's wall clock when the request is answered, epoch ms. */
  hosttime: number;
  /** e.g. `QEMU 7.2.22`. */
  hypervisor: string;
  /** % of the last interval the vCPU threads were runnable but waiting. */
  vcpudelay: number;
  /** QEMU's CPU seconds since it started, user + system, all its threads. */
  vmcputime: number;
  /** % of (vCPUs × the last interval) the vCPU threads ran. */
  vmcpuusage: number;
  vcpus: number;
  /** kB. `balloon`: the guest's RAM as its balloon leaves it (QMP `actual`); null: no balloon device. */
  vmmem: { readonly total: number; readonly balloon: number | null };
  /** CPUs; null: no quota on QEMU's cgroup or above it. */
  cpulimit: number | null;
  /** kB; null: no limit on QEMU's cgroup or above it. */
  memlimit: number | null;
  vmname: string;
  vmuuid: string;
  /** 16 lowercase hex digits (sidecar/vm-session.ts). */
  vmsession: string;
}

// Compile-time proof that VmValues covers exactly the catalogue's sidecar items.
const coversCatalogue: Exact<keyof VmValues, SidecarItemName> = true;
void coversCatalogue;

/** Every item's value type. */
export type ItemValues = { readonly [K in ItemName]: K extends keyof HostValues ? HostValues[K] : K extends keyof VmValues ? VmValues[K] : never };

/** A meter's reading: `measuredAt` is monotonic ms, on the clock of ItemContext.now. */
export interface Measured<T> {
  readonly value: T;
  readonly measuredAt: number;
}

/** A meter that cannot measure, and why (the 503 says so). */
export interface NotMeasured {
  readonly why: string;
}

export type Measurement<T> = Measured<T> | NotMeasured;

/**
 * What the sidecar knows about its own VM, outside the host cache. Facts added after the first
 * items are optional: absent means "not known yet", exactly like an undefined one.
 */
export interface VmFacts {
  /** e.g. `QEMU 7.2.22`, from QMP query-version; undefined until QMP has answered. */
  readonly hypervisor: string | undefined;
  /** `measuredAt`: monotonic ms, on the same clock as RequestContext.now. */
  readonly vcpuDelay: { readonly percent: number; readonly measuredAt: number } | undefined;
  /** From QMP (query-name, query-uuid), or from hostinfod's record for a VM without QMP. */
  readonly name?: string | undefined;
  readonly uuid?: string | undefined;
  /** vCPU threads: QMP query-cpus-fast, or the threads QEMU named. */
  readonly vcpus?: number | undefined;
  readonly cpuTime?: Measurement<number> | undefined;
  readonly vcpuUsage?: Measurement<number> | undefined;
  readonly memory?: Measurement<VmValues['vmmem']> | undefined;
  readonly cpuLimit?: Measurement<number | null> | undefined;
  readonly memLimit?: Measurement<number | null> | undefined;
  /** vmsession: a fact of the QEMU process, computed once per pid, never aged. */
  readonly session?: { readonly value: string } | NotMeasured | undefined;
}
