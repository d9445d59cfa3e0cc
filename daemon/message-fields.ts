// Field-by-field checks of the daemon protocol's frames, and the rebuilding of a checked frame
// from its known keys only (unknown keys a newer peer added never get past here).

import { isAmount, isCount, isPlainObject } from '../common/json-checks.js';
import { isItemName, type ItemName } from '../policies/items.js';
import { COUNTER_KEYS, MAX_QMP_TEXT, type AccessMessage } from './message-types.js';

export const isNullableText = (value: unknown, max: number): boolean => value === null || (typeof value === 'string' && value.length <= max);

export function checkError(raw: Record<string, unknown>): string | undefined {
  return typeof raw['code'] === 'string' && raw['code'].length <= 64 && typeof raw['message'] === 'string' && raw['message'].length <= 8192
    ? undefined
    : 'code and message must be strings';
}

export function checkQmpIdentity(qmp: unknown): string | undefined {
  if (!isPlainObject(qmp)) return 'qmp must be an object';
  if (!isNullableText(qmp['name'], MAX_QMP_TEXT) || !isNullableText(qmp['uuid'], MAX_QMP_TEXT)) return `qmp.name and qmp.uuid must be null or strings of at most ${MAX_QMP_TEXT}`;
  if (!(typeof qmp['version'] === 'string' && qmp['version'].length <= MAX_QMP_TEXT)) return 'qmp.version must be a string';
  return undefined;
}

export function checkCounters(raw: Record<string, unknown>): string | undefined {
  for (const key of COUNTER_KEYS) if (!isCount(raw[key])) return `${key} must be a non-negative integer`;
  const last = raw['lastRequestAt'];
  if (!(last === null || isAmount(last))) return 'lastRequestAt must be epoch milliseconds or null';
  return undefined;
}

export function checkAccess(raw: Record<string, unknown>): string | undefined {
  const vm = raw['vm'];
  if (!isPlainObject(vm) || typeof vm['name'] !== 'string' || typeof vm['uuid'] !== 'string' || !isCount(vm['pid'])) return 'vm must be {name, uuid, pid}';
  if (typeof raw['served'] !== 'boolean') return 'served must be a boolean';
  const items = raw['items'];
  if (!Array.isArray(items) || !items.every((item) => typeof item === 'string' && isItemName(item))) return 'items must be item names';
  const limit = raw['limit'];
  if (!isPlainObject(limit) || !(isAmount(limit['intervalMs']) && (limit['intervalMs'] as number) > 0) || !(isCount(limit['burst']) && (limit['burst'] as number) >= 1)) return 'limit must be {intervalMs > 0, burst >= 1}';
  if (!isNullableText(raw['file'], 4096) || !isNullableText(raw['reason'], 8192)) return 'file and reason must be null or strings';
  if (!(isAmount(raw['maxAgeMs']) && isAmount(raw['sampleIntervalMs']))) return 'maxAgeMs and sampleIntervalMs must be numbers';
  const guest = raw['guest'];
  if (!isPlainObject(guest) || !(isCount(guest['linesPerSecond']) && isCount(guest['bytesPerSecond']))) return 'guest must be {linesPerSecond, bytesPerSecond}';
  return undefined;
}

/** A checked access frame, rebuilt from its known keys only. */
export function accessOf(raw: Record<string, unknown>, version: number): AccessMessage {
  const vm = raw['vm'] as Record<string, unknown>;
  const limit = raw['limit'] as Record<string, unknown>;
  const guest = raw['guest'] as Record<string, unknown>;
  return {
    v: version,
    type: 'access',
    vm: { name: vm['name'] as string, uuid: vm['uuid'] as string, pid: vm['pid'] as number },
    served: raw['served'] as boolean,
    items: [...(raw['items'] as ItemName[])],
    limit: { intervalMs: limit['intervalMs'] as number, burst: limit['burst'] as number },
    file: raw['file'] as string | null,
    reason: raw['reason'] as string | null,
    maxAgeMs: raw['maxAgeMs'] as number,
    sampleIntervalMs: raw['sampleIntervalMs'] as number,
    guest: { linesPerSecond: guest['linesPerSecond'] as number, bytesPerSecond: guest['bytesPerSecond'] as number },
  };
}
