// Facts that do not change while the host runs (short of CPU hotplug or a rename), gathered once
// at start and again on SIGHUP. systeminformation may fork helpers (lscpu, dmidecode), which is
// why it stays off the per-sample path.

import { hostname as osHostname, release as osRelease } from 'node:os';
import si from 'systeminformation';
import { MAX_SAMPLE_STRING, type PartialHostValues } from './sample.js';

export type InventoryValues = Pick<PartialHostValues, 'physcores' | 'sockets' | 'cpumodel' | 'cpumhz' | 'hostname' | 'kernel'>;

/** The fields of systeminformation's cpu() answer that are used. */
export interface CpuFacts {
  readonly manufacturer?: string;
  readonly brand?: string;
  /** Nominal (base) frequency in GHz; 0 when unknown, as in many VMs. */
  readonly speed?: number;
  readonly physicalCores?: number;
  readonly processors?: number;
}

export interface InventorySources {
  readonly cpu: () => Promise<CpuFacts>;
  readonly hostname: () => string;
  readonly release: () => string;
}

export const SYSTEM_SOURCES: InventorySources = {
  cpu: () => si.cpu(),
  hostname: osHostname,
  release: osRelease,
};

/** Maps the raw facts to items; anything unknown or implausible is left out, never zero. */
export function inventoryFrom(cpu: CpuFacts, hostname: string, release: string): InventoryValues {
  const values: InventoryValues = {};
  if (isPositiveCount(cpu.physicalCores)) values.physcores = cpu.physicalCores;
  if (isPositiveCount(cpu.processors)) values.sockets = cpu.processors;
  const model = cleanText(joinModel(cpu.manufacturer ?? '', cpu.brand ?? ''));
  if (model !== undefined) values.cpumodel = model;
  if (typeof cpu.speed === 'number' && Number.isFinite(cpu.speed) && cpu.speed > 0) values.cpumhz = Math.round(cpu.speed * 1000);
  const host = cleanText(hostname);
  if (host !== undefined) values.hostname = host;
  const kernel = cleanText(release);
  if (kernel !== undefined) values.kernel = kernel;
  return values;
}

export async function loadStaticInventory(sources: InventorySources = SYSTEM_SOURCES): Promise<InventoryValues> {
  let cpu: CpuFacts = {};
  try {
    cpu = await sources.cpu();
  } catch {
    // The CPU items become unavailable; hostname and kernel do not depend on it.
  }
  return inventoryFrom(cpu, sources.hostname(), sources.release());
}

function isPositiveCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function joinModel(manufacturer: string, brand: string): string {
  const m = manufacturer.trim();
  const b = brand.trim();
  // systeminformation strips the vendor from the brand on some CPUs but not others.
  if (m === '' || b.toLowerCase().startsWith(m.toLowerCase())) return b;
  return b === '' ? m : `${m} ${b}`;
}

/** Printable ASCII only, whitespace collapsed, bounded: the guest ends up reading it. */
function cleanText(value: string): string | undefined {
  const cleaned = value.replace(/[^\x20-\x7e]+/g, ' ').replace(/ +/g, ' ').trim().slice(0, MAX_SAMPLE_STRING);
  return cleaned === '' ? undefined : cleaned;
}
