// The catalogue of data items a guest can ask for. Every other module (policy validation, the
// request handler, the daemon's sample filter) derives its item knowledge from this table,
// so adding an item is one edit here plus its formatter.

/**
 * Who produces an item's value: the shared host stats cache (host-wide samples), or the VM's own
 * sidecar (per-VM facts from QMP and schedstat, and the host clock read at request time).
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
} as const satisfies Record<string, ItemSpec>;

export type ItemName = keyof typeof ITEMS;

/** Items in table order: HELP lists them in this order. */
export const ITEM_NAMES: readonly ItemName[] = Object.keys(ITEMS) as ItemName[];

export const DEFAULT_ALLOWED_ITEMS: readonly ItemName[] = ITEM_NAMES.filter((name) => ITEMS[name].allowedByDefault);

/** Items the host stats cache samples and pushes; the rest the sidecar knows by itself. */
export type HostItemName = { [K in ItemName]: (typeof ITEMS)[K]['source'] extends 'cache' ? K : never }[ItemName];
export const HOST_ITEM_NAMES = ITEM_NAMES.filter((name): name is HostItemName => ITEMS[name].source === 'cache');

export function isItemName(value: string): value is ItemName {
  return Object.hasOwn(ITEMS, value);
}

export function isHostItemName(value: string): value is HostItemName {
  return isItemName(value) && ITEMS[value].source === 'cache';
}
