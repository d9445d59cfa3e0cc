// Builds one HostSnapshot from the hot counters, the static inventory and the registry's VM count.

import { HOST_ITEM_NAMES } from '../policies/items.js';
import type { HotCounters } from './collectors/hot-counters.js';
import type { HostSnapshot, PartialHostValues } from './sample.js';
import type { InventoryValues } from './static-inventory.js';

export interface SamplerOptions {
  readonly hot: Pick<HotCounters, 'collect'>;
  readonly vmCount: () => number;
  /** Wall clock, epoch ms; injected by tests. */
  readonly now?: () => number;
}

export class HostSampler {
  readonly #options: SamplerOptions;
  #inventory: InventoryValues = {};
  #lastTakenAt = -Infinity;

  constructor(options: SamplerOptions) {
    this.#options = options;
  }

  setInventory(inventory: InventoryValues): void {
    this.#inventory = inventory;
  }

  sample(): HostSnapshot {
    const merged: PartialHostValues = { ...this.#inventory, ...this.#options.hot.collect(), vmcount: this.#options.vmCount() };
    // Catalogue order, so every sample serialises the same way.
    const values: PartialHostValues = {};
    for (const name of HOST_ITEM_NAMES) {
      const value = merged[name];
      if (value !== undefined) (values as Record<string, unknown>)[name] = value;
    }
    // A wall clock stepped back (NTP) must not make a newer sample look older: subscribers and
    // the sidecar's max_age check rely on takenAt never decreasing.
    const takenAt = Math.max((this.#options.now ?? Date.now)(), this.#lastTakenAt);
    this.#lastTakenAt = takenAt;
    return { takenAt, values };
  }
}
