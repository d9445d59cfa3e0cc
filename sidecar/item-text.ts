// How each item's value reads in a reply. Pure; numbers have fixed decimals so a guest script can
// parse them with `cut` or `awk` and the format never depends on the value.

import type { HostItemName, ItemName } from '../policies/items.js';
import type { HostValues } from '../daemon/sample.js';
import type { ItemValues, VmValues } from './items/vm-values.js';

const fixed = (digits: number) => (value: number): string => value.toFixed(digits);
const whole = (value: number): string => String(Math.floor(value));
const words = (value: string): string => value.trim().replace(/\s+/g, ' ');
const fields = (digits: number) => (value: Readonly<Record<string, number>>): string =>
  Object.entries(value).map(([key, amount]) => `${key}=${digits < 0 ? whole(amount) : amount.toFixed(digits)}`).join(' ');
/** A limit that may be absent: `none` rather than a number that means "unlimited". */
const orNone = (format: (value: number) => string) => (value: number | null): string => (value === null ? 'none' : format(value));

const HOST_ITEM_TEXT: { readonly [K in HostItemName]: (value: HostValues[K]) => string } = {
  physcpus: whole,
  physcores: whole,
  sockets: whole,
  cpumodel: words,
  cpumhz: (mhz) => String(Math.round(mhz)),
  loadavg: (averages) => averages.map(fixed(2)).join(' '),
  cpuusage: (usage) => fields(1)({ user: usage.user, system: usage.system, iowait: usage.iowait, steal: usage.steal, idle: usage.idle }),
  pressure: (psi) => fields(2)({ cpu: psi.cpu, memory: psi.memory, io: psi.io }),
  physmem: (memory) => fields(-1)({ total: memory.total, free: memory.free, available: memory.available }),
  swap: (swap) => fields(-1)({ total: swap.total, free: swap.free }),
  uptime: whole,
  hostname: words,
  kernel: words,
  vmcount: whole,
  pagedin: whole,
  pagedout: whole,
  hostcputime: fixed(2),
};

const VM_ITEM_TEXT: { readonly [K in keyof VmValues]: (value: VmValues[K]) => string } = {
  hosttime: (epochMs) => (epochMs / 1000).toFixed(3),
  hypervisor: words,
  vcpudelay: fixed(2),
  vmcputime: fixed(2),
  vmcpuusage: fixed(2),
  vcpus: whole,
  vmmem: (memory) => `total=${whole(memory.total)} balloon=${orNone(whole)(memory.balloon)}`,
  cpulimit: orNone(fixed(2)),
  memlimit: orNone(whole),
  vmname: words,
  vmuuid: words,
  vmsession: (id) => id,
};

const ITEM_TEXT: { readonly [K in ItemName]: (value: ItemValues[K]) => string } = { ...HOST_ITEM_TEXT, ...VM_ITEM_TEXT };

/** The reply text of any item's value. */
export function itemText<K extends ItemName>(name: K, value: ItemValues[K]): string {
  return (ITEM_TEXT[name] as (value: ItemValues[K]) => string)(value);
}
