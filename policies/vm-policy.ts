// One VM's policy file: whether it is served, which items it sees, how often it may ask.

import { DEFAULT_ALLOWED_ITEMS, ITEM_NAMES, isItemName, type ItemName } from './items.js';
import type { RateLimit } from './rate-limiter.js';
import { TableReader } from './table-reader.js';
import { parseTomlDocument } from './toml-file.js';

export const DEFAULT_POLICY_INTERVAL_SECONDS = 1.0;
export const DEFAULT_POLICY_BURST = 1;

export interface VmPolicy {
  readonly file: string;
  readonly enabled: boolean;
  /** `allow` (or the default list) minus `deny`, in catalogue order. */
  readonly items: readonly ItemName[];
  readonly limit: RateLimit;
}

const POLICY_KEYS = ['enabled', 'allow', 'deny', 'interval', 'burst'] as const;

/** Parses and validates a policy; any problem throws a ConfigError and no partial policy exists. */
export function parseVmPolicy(text: string, file: string): VmPolicy {
  const table = new TableReader(parseTomlDocument(text, file), text, file);
  table.rejectUnknownKeys(POLICY_KEYS);
  const enabled = table.boolean('enabled', false);
  const allow = itemList(table, 'allow') ?? DEFAULT_ALLOWED_ITEMS;
  const deny = new Set(itemList(table, 'deny') ?? []);
  const intervalSeconds = table.positiveSeconds('interval', DEFAULT_POLICY_INTERVAL_SECONDS);
  const burst = table.integerAtLeast('burst', 1, DEFAULT_POLICY_BURST);
  const allowed = new Set(allow);
  return {
    file,
    enabled,
    items: ITEM_NAMES.filter((name) => allowed.has(name) && !deny.has(name)),
    limit: { intervalMs: intervalSeconds * 1000, burst },
  };
}

function itemList(table: TableReader, key: string): readonly ItemName[] | undefined {
  const names = table.stringArray(key);
  names?.forEach((name, index) => {
    if (!isItemName(name)) {
      throw table.error('CONFIG_UNKNOWN_ITEM', `${key}[${index}]`, `an item name (${ITEM_NAMES.join(', ')})`, JSON.stringify(name), 'unknown item', key);
    }
  });
  return names as readonly ItemName[] | undefined;
}
