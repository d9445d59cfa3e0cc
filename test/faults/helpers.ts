// Shared by the fault and security tests, on top of test/helpers/served-vm.ts: bounded polling for
// states that have no event of their own, a fleet of staged VMs started a few at a time, and a
// guest that keeps asking while something is being broken.

import { withTimeout, type Teardown } from '../helpers/logged-process.js';
import { stageVm, waitForSidecar, type ConnectedVm, type Site, type StagedVm } from '../helpers/served-vm.js';

export { processAlive } from '../helpers/proc-stats.js';

/** Polls `probe` until it returns a value other than undefined, within `ms`; the polling ends with it. */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await withTimeout(Promise.resolve(probe()), what, Math.max(1, deadline - Date.now()));
    if (value !== undefined) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

export function uuidFor(i: number): string {
  return `6e1f0c2a-3b4d-4e5f-8a6b-${(0x7c8d9e0f0000 + i).toString(16).padStart(12, '0')}`;
}

export interface FleetVm {
  readonly vm: StagedVm;
  /** Its status entry once the sidecar said hello. */
  readonly served: ConnectedVm;
}

/** `count` staged VMs named `${prefix}${i}`, started two at a time (two cores: QEMU and a node each). */
export async function stageFleet(t: Teardown, site: Site, prefix: string, count: number): Promise<FleetVm[]> {
  const fleet: FleetVm[] = [];
  for (let i = 0; i < count; i += 2) {
    const pair = [i, i + 1].filter((j) => j < count);
    fleet.push(...await Promise.all(pair.map(async (j) => {
      const vm = await stageVm(t, site, `${prefix}${j}`, { uuid: uuidFor(j) });
      return { vm, served: await waitForSidecar(site, vm.name) };
    })));
  }
  return fleet;
}

export interface Asked {
  readonly at: number;
  readonly request: string;
  readonly reply: string;
}

/** A guest asking `requests` in turn, one every `tickMs`, until stop() (which waits for the loop). */
export function askLoop(vm: StagedVm, requests: readonly string[], tickMs: number): { readonly log: Asked[]; stop(): Promise<void> } {
  const log: Asked[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const request of requests) log.push({ at: Date.now(), request, reply: await vm.guest.ask(request) });
      await new Promise((resolve) => setTimeout(resolve, tickMs));
    }
  })();
  return {
    log,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
