// How QEMU 7.2 reads the properties the serial planning depends on: integers as strtoull with base
// 0, key=value and JSON `-device` options, `-global` (both forms) and `-set`. Pure and fed text;
// qemu-args-scan.ts applies these in command-line order.

import { Buffer } from 'node:buffer';
import { optionValue, parseOptionString, type OptionPair } from './qemu-options.js';

/** QEMU reads `-set` and legacy `-global` with sscanf `%63[...]`: each part at most 63 bytes. */
export const SSCANF_FIELD_BYTES = 63;
export const fitsField = (text: string): boolean => Buffer.byteLength(text) <= SSCANF_FIELD_BYTES;

// ---------------------------------------------------------------------------------------------
// Property values

/** One option of a key=value `-device` or `-global`; `set` is the `-set` value that appended it. */
export interface SettablePair extends OptionPair {
  readonly set?: string;
}

/** A uint32 property as QEMU ends up reading it. */
export type Uint32Property =
  | { readonly kind: 'absent' }
  | { readonly kind: 'number'; readonly value: number }
  | { readonly kind: 'unreadable'; readonly set: string | undefined };

export const ABSENT: Uint32Property = { kind: 'absent' };
export const UINT64_LIMIT = 1n << 64n;
export const UINT32_MAX = 0xffff_ffff;

/**
 * A uint32 property given as text, read the way QEMU 7.2 reads it (qemu_strtou64 with base 0, then
 * a range check): leading white space and a sign are allowed, `0x` is hex, a leading `0` octal,
 * nothing may follow; a negative number wraps modulo 2^64 as strtoull does (`-1` is then out of
 * range, `-0` is 0). Undefined when QEMU refuses the value.
 */
export function parseQemuUint32(text: string): number | undefined {
  const match = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(text);
  if (match === null) return undefined;
  const digits = match[2] ?? '';
  const magnitude = /^0[xX]/.test(digits) ? BigInt(digits) : digits.startsWith('0') ? BigInt(`0o${digits.slice(1) || '0'}`) : BigInt(digits);
  if (magnitude >= UINT64_LIMIT) return undefined; // ERANGE
  const value = match[1] === '-' ? (UINT64_LIMIT - magnitude) % UINT64_LIMIT : magnitude;
  return value <= BigInt(UINT32_MAX) ? Number(value) : undefined;
}

/** The property's last occurrence among key=value options (QEMU builds the device from the last). */
export function keyvalUint32(pairs: readonly SettablePair[], key: string): Uint32Property {
  let last: SettablePair | undefined;
  for (const pair of pairs) if (pair.key === key) last = pair;
  if (last === undefined) return ABSENT;
  const value = parseQemuUint32(last.value);
  return value === undefined ? { kind: 'unreadable', set: last.set } : { kind: 'number', value };
}

/** In JSON a uint32 property must be a JSON integer in range (a string is refused). */
export function jsonUint32(raw: unknown): Uint32Property {
  if (raw === undefined) return ABSENT;
  if (typeof raw === 'number' && Number.isInteger(raw) && raw >= 0 && raw <= UINT32_MAX) return { kind: 'number', value: raw };
  return { kind: 'unreadable', set: undefined };
}

export const numberOf = (property: Uint32Property): number | undefined => (property.kind === 'number' ? property.value : undefined);

// ---------------------------------------------------------------------------------------------
// Devices and globals

/**
 * A QemuOpts entry that `-set` can reach: a key=value `-device` or a `-global`. Its id is fixed
 * when it is parsed (the first `id=`, util/qemu-option.c opts_parse_id); later `-set ...id=` only
 * renames the device QEMU creates, `-set` still finds it by the first.
 */
export interface SettableOptions {
  readonly id: string | undefined;
  readonly pairs: SettablePair[];
}

/** What the launcher needs to know of one device, from its final options. */
export interface DeviceFacts {
  readonly json: boolean;
  readonly driver: string | undefined;
  readonly index: Uint32Property;
  readonly iobase: Uint32Property;
  readonly portName: unknown;
}

export function firstValue(pairs: readonly OptionPair[], key: string): string | undefined {
  return pairs.find((pair) => pair.key === key)?.value;
}

/** A key=value `-device`; its first element without `=` is the driver. */
export function keyvalDevice(value: string): SettableOptions {
  const pairs = parseOptionString(value, 'driver');
  return { id: firstValue(pairs, 'id'), pairs };
}

export function keyvalDeviceFacts(device: SettableOptions): DeviceFacts {
  return {
    json: false,
    driver: optionValue(device.pairs, 'driver'),
    index: keyvalUint32(device.pairs, 'index'),
    iobase: keyvalUint32(device.pairs, 'iobase'),
    portName: optionValue(device.pairs, 'name'),
  };
}

/** A JSON `-device` (QEMU 7.2 accepts both forms); undefined when QEMU refuses the JSON. */
export function jsonDeviceFacts(value: string): DeviceFacts | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return undefined; // QEMU refuses it; nothing to learn
  }
  const object = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  const driver = typeof object['driver'] === 'string' ? object['driver'] : undefined;
  return { json: true, driver, index: jsonUint32(object['index']), iobase: jsonUint32(object['iobase']), portName: object['name'] };
}

/**
 * QEMU 7.2 qemu_global_option: `driver.property=value` when sscanf("%63[^.=].%63[^=]") matches,
 * the value then taken whole (commas included); else `driver=,property=,value=[,id=]` options.
 */
export function globalOptions(value: string): SettableOptions {
  const legacy = /^([^.=]+)\.([^=]+)=/.exec(value);
  if (legacy !== null && fitsField(legacy[1] ?? '') && fitsField(legacy[2] ?? '')) {
    return {
      id: undefined,
      pairs: [{ key: 'driver', value: legacy[1] ?? '' }, { key: 'property', value: legacy[2] ?? '' }, { key: 'value', value: value.slice(legacy[0].length) }],
    };
  }
  const pairs = parseOptionString(value);
  return { id: firstValue(pairs, 'id'), pairs };
}

export interface GlobalFacts {
  readonly driver: string | undefined;
  readonly property: string | undefined;
  readonly value: string | undefined;
  /** The `-set` that changed it, if one did. */
  readonly set: string | undefined;
}

export function globalFacts(global: SettableOptions): GlobalFacts {
  return {
    driver: optionValue(global.pairs, 'driver'),
    property: optionValue(global.pairs, 'property'),
    value: optionValue(global.pairs, 'value'),
    set: [...global.pairs].reverse().find((pair) => pair.set !== undefined)?.set,
  };
}

/** `-global isa-serial.index` / `.iobase`: globals apply in order, the last one wins. */
export function isaSerialGlobal(globals: readonly GlobalFacts[], property: string): Uint32Property {
  let found: Uint32Property = ABSENT;
  for (const global of globals) {
    if (global.driver !== 'isa-serial' || global.property !== property || global.value === undefined) continue;
    const value = parseQemuUint32(global.value);
    found = value === undefined ? { kind: 'unreadable', set: global.set } : { kind: 'number', value };
  }
  return found;
}

export interface SetCommand {
  readonly group: string;
  readonly id: string;
  readonly key: string;
  readonly value: string;
}

/** QEMU 7.2 qemu_set_option: sscanf("%63[^.].%63[^.].%63[^=]") then `=`; the value is taken whole. */
export function readSet(text: string): SetCommand | undefined {
  const match = /^([^.]+)\.([^.]+)\.([^=]+)=/.exec(text);
  if (match === null) return undefined;
  const [whole, group = '', id = '', key = ''] = match;
  if (![group, id, key].every(fitsField)) return undefined;
  return { group, id, key, value: text.slice(whole.length) };
}
