// The shape of one host sample as hostinfod pushes it and the sidecar keeps it. Values are
// structured (numbers, not preformatted text) so the receiving side can validate each one; the
// sidecar alone turns them into guest-visible text.

import type { Exact } from '../common/exact.js';
import { isAmount, isCount, isPlainObject } from '../common/json-checks.js';
import type { HostItemName } from '../policies/items.js';

export interface HostValues {
  physcpus: number;
  physcores: number;
  sockets: number;
  cpumodel: string;
  cpumhz: number;
  /** 1, 5 and 15 minute load averages. */
  loadavg: readonly [number, number, number];
  /** Percentages over the last sample interval. */
  cpuusage: { readonly user: number; readonly system: number; readonly iowait: number; readonly steal: number; readonly idle: number };
  /** PSI "some avg10" per resource. */
  pressure: { readonly cpu: number; readonly memory: number; readonly io: number };
  /** kB, as /proc/meminfo gives them. */
  physmem: { readonly total: number; readonly free: number; readonly available: number };
  swap: { readonly total: number; readonly free: number };
  /** Seconds, fractional as /proc/uptime gives it. */
  uptime: number;
  hostname: string;
  kernel: string;
  vmcount: number;
  /** kB since boot, /proc/vmstat pgpgin and pgpgout (the kernel counts sectors and halves them). */
  pagedin: number;
  pagedout: number;
  /** Seconds since boot the host's CPUs were busy (not idle, not iowait), summed over CPUs. */
  hostcputime: number;
}

// Compile-time proof that the sample covers exactly the catalogue's cache-sourced items.
const coversCatalogue: Exact<keyof HostValues, HostItemName> = true;
void coversCatalogue;

/** An item that is unavailable on this host (e.g. PSI on an old kernel) is absent, never zero. */
export type PartialHostValues = { -readonly [K in keyof HostValues]?: HostValues[K] };

export interface HostSnapshot {
  /** Wall-clock epoch milliseconds at which hostinfod took the sample. */
  readonly takenAt: number;
  readonly values: PartialHostValues;
}

/** Longest text value accepted from a sample; CPU model strings are well under this. */
export const MAX_SAMPLE_STRING = 256;

type Check = (value: unknown) => boolean;

const count: Check = isCount;
const amount: Check = isAmount;
const text: Check = (v) => typeof v === 'string' && v.length > 0 && v.length <= MAX_SAMPLE_STRING;
const record = (keys: readonly string[], each: Check): Check => (v) =>
  isPlainObject(v) &&
  Object.keys(v).length === keys.length && keys.every((k) => Object.hasOwn(v, k) && each((v as Record<string, unknown>)[k]));

const VALUE_CHECKS: { readonly [K in keyof HostValues]: Check } = {
  physcpus: count,
  physcores: count,
  sockets: count,
  cpumodel: text,
  cpumhz: amount,
  loadavg: (v) => Array.isArray(v) && v.length === 3 && v.every(amount),
  cpuusage: record(['user', 'system', 'iowait', 'steal', 'idle'], amount),
  pressure: record(['cpu', 'memory', 'io'], amount),
  physmem: record(['total', 'free', 'available'], count),
  swap: record(['total', 'free'], count),
  uptime: amount,
  hostname: text,
  kernel: text,
  vmcount: count,
  pagedin: count,
  pagedout: count,
  hostcputime: amount,
};

export type SampleProblem = { readonly key: string; readonly reason: 'unknown item' | 'malformed value' };

/**
 * Validates the `values` object of a received sample. Any problem rejects the whole sample: a
 * peer that sends one malformed value is not trusted for the others.
 */
export function parseHostValues(raw: unknown): { ok: true; values: PartialHostValues } | { ok: false; problem: SampleProblem } {
  if (!isPlainObject(raw)) {
    return { ok: false, problem: { key: 'values', reason: 'malformed value' } };
  }
  for (const [key, value] of Object.entries(raw)) {
    if (!Object.hasOwn(VALUE_CHECKS, key)) return { ok: false, problem: { key, reason: 'unknown item' } };
    if (!VALUE_CHECKS[key as keyof HostValues](value)) return { ok: false, problem: { key, reason: 'malformed value' } };
  }
  return { ok: true, values: raw as PartialHostValues };
}
