// The catalogue of data items a guest can ask for. Every other module (policy validation, the
// item service, the daemon's sample filter) derives its item knowledge from this table, so adding
// an item is one edit here plus its formatter and its source (sidecar/items/item-service.ts),
// both tables the compiler checks complete. The order is HELP's and ALL's; new items go last, so
// what a guest parses today keeps its place.

/**
 * Who produces an item's value: the shared host stats cache (host-wide samples), or the VM's own
 * sidecar (per-VM facts from QMP, /proc and cgroup files, and the host clock read at request time).
 */
export type ItemSource = 'cache' | 'sidecar';

export interface ItemSpec {
  readonly source: ItemSource;
  /** Sensitive items reveal something about the host or other tenants: only served when listed. */
  readonly sensitive: boolean;
  /** Served when a policy omits `allow`. */
  readonly allowedByDefault: boolean;
  readonly meaning: string;
}

export const ITEMS = {
  physcpus: { source: 'cache', sensitive: false, allowedByDefault: true, meaning: 'host logical CPUs online' },
  physcores: { source: 'cache', sensitive: false, allowedByDefault: true, meaning: 'host physical cores' },
  sockets: { source: 'cache', sensitive: false, allowedByDefault: true, meaning: 'host CPU sockets' },
  cpumodel: { source: 'cache', sensitive: false, allowedByDefault: false, meaning: 'host CPU model' },
  cpumhz: { source: 'cache', sensitive: false, allowedByDefault: false, meaning: 'host CPU nominal MHz' },
  loadavg: { source: 'cache', sensitive: false, allowedByDefault: true, meaning: 'host load averages (1, 5, 15 min)' },
  cpuusage: { source: 'cache', sensitive: false, allowedByDefault: true, meaning: 'host CPU %, last sample interval' },
  pressure: { source: 'cache', sensitive: false, allowedByDefault: true, meaning: 'host PSI "some avg10" for cpu, memory, io' },
  physmem: { source: 'cache', sensitive: false, allowedByDefault: true, meaning: 'host memory total/free/available, kB' },
  swap: { source: 'cache', sensitive: false, allowedByDefault: false, meaning: 'host swap total/free, kB' },
  uptime: { source: 'cache', sensitive: false, allowedByDefault: true, meaning: 'host uptime, whole seconds' },
  hosttime: { source: 'sidecar', sensitive: false, allowedByDefault: false, meaning: 'host clock, epoch seconds' },
  hostname: { source: 'cache', sensitive: true, allowedByDefault: false, meaning: 'host name' },
  kernel: { source: 'cache', sensitive: true, allowedByDefault: false, meaning: 'host kernel release' },
  hypervisor: { source: 'sidecar', sensitive: false, allowedByDefault: false, meaning: 'QEMU version of this VM' },
  vcpudelay: { source: 'sidecar', sensitive: false, allowedByDefault: true, meaning: "% of the last interval this VM's vCPU threads waited to run" },
  vmcount: { source: 'cache', sensitive: true, allowedByDefault: false, meaning: 'VMs on this host served by hostinfo' },
  // This VM as its host sees it. Its own figures are served by default (the guest learns nothing
  // about the host or other tenants from them); how the host names it is the host's bookkeeping,
  // so vmname and vmuuid are only served when a policy lists them.
  vmcputime: { source: 'sidecar', sensitive: false, allowedByDefault: true, meaning: "this VM's QEMU process CPU seconds (user + system) since it started" },
  vmcpuusage: { source: 'sidecar', sensitive: false, allowedByDefault: true, meaning: "% of this VM's vCPU capacity used over the last interval" },
  vcpus: { source: 'sidecar', sensitive: false, allowedByDefault: true, meaning: 'vCPUs of this VM' },
  vmmem: { source: 'sidecar', sensitive: false, allowedByDefault: true, meaning: "this VM's RAM and balloon size, kB" },
  cpulimit: { source: 'sidecar', sensitive: false, allowedByDefault: true, meaning: "CPU quota of this VM's cgroup, in CPUs" },
  memlimit: { source: 'sidecar', sensitive: false, allowedByDefault: true, meaning: "memory limit of this VM's cgroup, kB" },
  vmname: { source: 'sidecar', sensitive: false, allowedByDefault: false, meaning: 'the name the host gives this VM' },
  vmuuid: { source: 'sidecar', sensitive: false, allowedByDefault: false, meaning: 'the UUID the host gives this VM' },
  // The rest of the SAP/RHEL vhostmd set, sampled from /proc like the other host counters.
  // hostcputime tells no more than cpuusage summed over time, so it is served like cpuusage; the
  // paging counters are the host's whole block I/O through the page cache, every tenant's, kB by
  // kB, and like swap only served when a policy lists them.
  pagedin: { source: 'cache', sensitive: false, allowedByDefault: false, meaning: 'host kB paged in from disk since boot' },
  pagedout: { source: 'cache', sensitive: false, allowedByDefault: false, meaning: 'host kB paged out to disk since boot' },
  hostcputime: { source: 'cache', sensitive: false, allowedByDefault: true, meaning: 'host CPU seconds busy since boot, all CPUs' },
  // Changes exactly when this VM's QEMU process does (migration, save/restore, restart), so a
  // guest knows its per-VM counters started over. Served by default: it is a hash, and tells the
  // guest nothing about the host or other tenants beyond "not the same QEMU as before".
  vmsession: { source: 'sidecar', sensitive: false, allowedByDefault: true, meaning: "this VM's session: changes when its QEMU process does" },
} as const satisfies Record<string, ItemSpec>;

export type ItemName = keyof typeof ITEMS;

/** Items in table order: HELP lists them in this order. */
export const ITEM_NAMES: readonly ItemName[] = Object.keys(ITEMS) as ItemName[];

export const DEFAULT_ALLOWED_ITEMS: readonly ItemName[] = ITEM_NAMES.filter((name) => ITEMS[name].allowedByDefault);

/** Items the host stats cache samples and pushes; the rest the sidecar knows by itself. */
export type HostItemName = { [K in ItemName]: (typeof ITEMS)[K]['source'] extends 'cache' ? K : never }[ItemName];
export const HOST_ITEM_NAMES = ITEM_NAMES.filter((name): name is HostItemName => ITEMS[name].source === 'cache');
/** Items the VM's own sidecar produces (sidecar/items/vm-values.ts types their values). */
export type SidecarItemName = Exclude<ItemName, HostItemName>;

export function isItemName(value: string): value is ItemName {
  return Object.hasOwn(ITEMS, value);
}

export function isHostItemName(value: string): value is HostItemName {
  return isItemName(value) && ITEMS[value].source === 'cache';
}
