// Which VMs are subscribed, what they asked for and the counters their sidecars report. The
// source of the `vmcount` item and of the status reply.

import type { HostItemName } from '../policies/items.js';
import type { VmCounters, VmIdentity, VmStatus } from './messages.js';

interface Entry {
  vm: VmIdentity;
  items: readonly HostItemName[];
  subscribedAt: number;
  counters: VmCounters | null;
  reportedAt: number | null;
}

/** Keyed by connection: one sidecar connection is one registration, re-subscribing replaces it. */
export class Registry<Key = unknown> {
  private readonly entries = new Map<Key, Entry>();

  subscribe(key: Key, vm: VmIdentity, items: readonly HostItemName[], now: number): void {
    const previous = this.entries.get(key);
    // Counters are the sidecar's running totals; a re-subscribe (policy change) keeps them unless
    // the connection now speaks for a different VM.
    const keep = previous !== undefined && previous.vm.uuid === vm.uuid;
    this.entries.set(key, {
      vm: { name: vm.name, uuid: vm.uuid, pid: vm.pid },
      items: [...items],
      subscribedAt: now,
      counters: keep ? previous.counters : null,
      reportedAt: keep ? previous.reportedAt : null,
    });
  }

  /** False when the connection has not said hello: counters need a VM to belong to. */
  report(key: Key, counters: VmCounters, now: number): boolean {
    const entry = this.entries.get(key);
    if (entry === undefined) return false;
    const { requests, ok, denied, rateLimited, errors, lastRequestAt } = counters;
    entry.counters = { requests, ok, denied, rateLimited, errors, lastRequestAt };
    entry.reportedAt = now;
    return true;
  }

  remove(key: Key): void {
    this.entries.delete(key);
  }

  has(key: Key): boolean {
    return this.entries.has(key);
  }

  /**
   * Distinct VMs by uuid: a sidecar restarting may briefly hold two connections for one VM, and
   * that VM is still one VM.
   */
  vmCount(): number {
    const uuids = new Set<string>();
    for (const entry of this.entries.values()) uuids.add(entry.vm.uuid);
    return uuids.size;
  }

  /** Sorted by VM name then uuid, so the admin view is stable. */
  list(): VmStatus[] {
    return [...this.entries.values()]
      .map((e) => ({ vm: e.vm, items: e.items, subscribedAt: e.subscribedAt, counters: e.counters, reportedAt: e.reportedAt }))
      .sort((a, b) => compare(a.vm.name, b.vm.name) || compare(a.vm.uuid, b.vm.uuid));
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
