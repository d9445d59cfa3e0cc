// How each item's value reads in a reply. Pure; numbers have fixed decimals so a guest script can
// parse them with `cut` or `awk` and the format never depends on the value.

import type { HostItemName } from '../policies/items.js';
import type { HostValues, PartialHostValues } from '../daemon/sample.js';

const fixed = (digits: number) => (value: number): string => value.toFixed(digits);
const whole = (value: number): string => String(Math.floor(value));
const words = (value: string): string => value.trim().replace(/\s+/g, ' ');
const fields = (digits: number) => (value: Readonly<Record<string, number>>): string =>
  Object.entries(value).map(([key, amount]) => `${key}=${digits < 0 ? whole(amount) : amount.toFixed(digits)}`).join(' ');

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
};

/** The reply text for a cache-sourced item, or undefined when the sample lacks it. */
export function hostItemText(name: HostItemName, values: PartialHostValues): string | undefined {
  const value = values[name];
  if (value === undefined) return undefined;
  return (HOST_ITEM_TEXT[name] as (value: unknown) => string)(value);
}

export const hostTimeText = (epochMs: number): string => (epochMs / 1000).toFixed(3);
export const vcpuDelayText = fixed(2);
