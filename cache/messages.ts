// The cache ↔ sidecar protocol: versioned JSON text frames over a WebSocket on a unix socket.
// Every frame is checked against a size limit before JSON.parse and then validated field by
// field; a peer that sends anything else gets one `error` frame and is disconnected.

import { HOST_ITEM_NAMES, type HostItemName, isHostItemName } from '../policies/items.js';
import { type HostSnapshot, type PartialHostValues, parseHostValues } from './sample.js';

export const CACHE_PROTOCOL_VERSION = 1;

/** Largest frame a subscriber may send; a hello with every item name is well under 2 KiB. */
export const MAX_CLIENT_MESSAGE_BYTES = 8 * 1024;
/**
 * ws's own limit: above it ws closes the connection with 1009 by itself. It is set above
 * MAX_CLIENT_MESSAGE_BYTES so that merely oversized frames still get an explanatory error frame.
 */
export const MAX_CLIENT_PAYLOAD_BYTES = 64 * 1024;
/** Largest frame the daemon sends: a status reply for MAX_SUBSCRIBERS VMs. */
export const MAX_SERVER_MESSAGE_BYTES = 4 * 1024 * 1024;
export const MAX_VM_NAME_LENGTH = 256;
export const MAX_VM_UUID_LENGTH = 64;
export const MAX_HELLO_ITEMS = 64;
export const MAX_ITEM_NAME_LENGTH = 32;

export interface VmIdentity {
  readonly name: string;
  readonly uuid: string;
  readonly pid: number;
}

/** Cumulative totals since the sidecar started, so a repeated report is harmless. */
export interface VmCounters {
  readonly requests: number;
  readonly ok: number;
  readonly denied: number;
  readonly rateLimited: number;
  readonly errors: number;
  /** Epoch ms of the guest's latest request, null before the first. */
  readonly lastRequestAt: number | null;
}

export interface HelloMessage { readonly v: 1; readonly type: 'hello'; readonly vm: VmIdentity; readonly items: readonly string[] }
export interface CountersMessage extends VmCounters { readonly v: 1; readonly type: 'counters' }
export interface StatusRequest { readonly v: 1; readonly type: 'status' }
export type ClientMessage = HelloMessage | CountersMessage | StatusRequest;

export interface SubscribedMessage { readonly v: 1; readonly type: 'subscribed'; readonly items: readonly HostItemName[] }
export interface SampleMessage { readonly v: 1; readonly type: 'sample'; readonly seq: number; readonly takenAt: number; readonly values: PartialHostValues }
export interface VmStatus {
  readonly vm: VmIdentity;
  readonly items: readonly HostItemName[];
  /** Epoch ms of the hello (the latest one, after a re-subscribe). */
  readonly subscribedAt: number;
  readonly counters: VmCounters | null;
  /** Epoch ms of the latest counters report, null before the first. */
  readonly reportedAt: number | null;
}
export interface StatusReply {
  readonly v: 1;
  readonly type: 'status';
  readonly pid: number;
  readonly startedAt: number;
  readonly intervalMs: number;
  /** Sequence number and time of the newest sample, null before the first. */
  readonly seq: number | null;
  readonly takenAt: number | null;
  readonly vmcount: number;
  readonly vms: readonly VmStatus[];
}
export interface ErrorMessage { readonly v: 1; readonly type: 'error'; readonly code: ProtocolErrorCode; readonly message: string }
export type ServerMessage = SubscribedMessage | SampleMessage | StatusReply | ErrorMessage;

export type ProtocolErrorCode =
  | 'TOO_LARGE'
  | 'BINARY_FRAME'
  | 'MALFORMED_JSON'
  | 'BAD_VERSION'
  | 'UNKNOWN_TYPE'
  | 'INVALID_MESSAGE'
  | 'NOT_SUBSCRIBED'
  | 'SERVER_FULL';

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

type Parsed<T> = { ok: true; message: T } | { ok: false; error: ProtocolError };
const fail = (code: ProtocolErrorCode, message: string): { ok: false; error: ProtocolError } => ({ ok: false, error: new ProtocolError(code, message) });

/** Size check, JSON.parse, and the envelope every message shares: an object with v and type. */
function envelope(text: string, limit: number): Parsed<Record<string, unknown>> {
  // A string's UTF-16 length never exceeds its UTF-8 byte length: the first test rejects huge
  // frames without encoding them, the second is exact.
  if (text.length > limit || Buffer.byteLength(text, 'utf8') > limit) return fail('TOO_LARGE', `message larger than ${limit} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail('MALFORMED_JSON', 'message is not JSON');
  }
  if (!isPlainObject(raw)) return fail('INVALID_MESSAGE', 'message is not a JSON object');
  if (raw['v'] !== CACHE_PROTOCOL_VERSION) return fail('BAD_VERSION', `unsupported protocol version ${JSON.stringify(raw['v'])}; this daemon speaks ${CACHE_PROTOCOL_VERSION}`);
  if (typeof raw['type'] !== 'string') return fail('INVALID_MESSAGE', 'message has no type');
  return { ok: true, message: raw };
}

export function parseClientMessage(text: string): Parsed<ClientMessage> {
  const parsed = envelope(text, MAX_CLIENT_MESSAGE_BYTES);
  if (!parsed.ok) return parsed;
  const raw = parsed.message;
  switch (raw['type']) {
    case 'hello': {
      const bad = extraKeys(raw, ['v', 'type', 'vm', 'items']) ?? checkVm(raw['vm']) ?? checkItemList(raw['items']);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `hello: ${bad}`);
      return { ok: true, message: raw as unknown as HelloMessage };
    }
    case 'counters': {
      const bad = extraKeys(raw, ['v', 'type', ...COUNTER_KEYS, 'lastRequestAt']) ?? checkCounters(raw);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `counters: ${bad}`);
      return { ok: true, message: raw as unknown as CountersMessage };
    }
    case 'status': {
      const bad = extraKeys(raw, ['v', 'type']);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `status: ${bad}`);
      return { ok: true, message: { v: 1, type: 'status' } };
    }
    default:
      return fail('UNKNOWN_TYPE', `unknown message type ${JSON.stringify(raw['type']).slice(0, 40)}`);
  }
}

export function parseServerMessage(text: string): Parsed<ServerMessage> {
  const parsed = envelope(text, MAX_SERVER_MESSAGE_BYTES);
  if (!parsed.ok) return parsed;
  const raw = parsed.message;
  switch (raw['type']) {
    case 'sample': {
      const bad = extraKeys(raw, ['v', 'type', 'seq', 'takenAt', 'values']) ??
        (isCount(raw['seq']) ? undefined : 'seq is not a count') ??
        (isTime(raw['takenAt']) ? undefined : 'takenAt is not a time');
      if (bad !== undefined) return fail('INVALID_MESSAGE', `sample: ${bad}`);
      const values = parseHostValues(raw['values']);
      if (!values.ok) return fail('INVALID_MESSAGE', `sample: ${values.problem.key}: ${values.problem.reason}`);
      return { ok: true, message: { v: 1, type: 'sample', seq: raw['seq'] as number, takenAt: raw['takenAt'] as number, values: values.values } };
    }
    case 'subscribed': {
      const items = raw['items'];
      const bad = extraKeys(raw, ['v', 'type', 'items']) ??
        (Array.isArray(items) && items.every((item) => typeof item === 'string' && isHostItemName(item)) ? undefined : 'items are not host item names');
      if (bad !== undefined) return fail('INVALID_MESSAGE', `subscribed: ${bad}`);
      return { ok: true, message: raw as unknown as SubscribedMessage };
    }
    case 'status': {
      const bad = checkStatusReply(raw);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `status: ${bad}`);
      return { ok: true, message: raw as unknown as StatusReply };
    }
    case 'error': {
      const bad = extraKeys(raw, ['v', 'type', 'code', 'message']) ??
        (typeof raw['code'] === 'string' && typeof raw['message'] === 'string' ? undefined : 'code and message must be strings');
      if (bad !== undefined) return fail('INVALID_MESSAGE', `error: ${bad}`);
      return { ok: true, message: raw as unknown as ErrorMessage };
    }
    default:
      return fail('UNKNOWN_TYPE', `unknown message type ${JSON.stringify(raw['type']).slice(0, 40)}`);
  }
}

/** The host items a hello's list grants, in catalogue order. Per-VM and unknown names are ignored. */
export function grantedItems(requested: readonly string[]): HostItemName[] {
  const wanted = new Set(requested);
  return HOST_ITEM_NAMES.filter((name) => wanted.has(name));
}

export function sampleMessage(seq: number, snapshot: HostSnapshot, values: PartialHostValues): SampleMessage {
  return { v: 1, type: 'sample', seq, takenAt: snapshot.takenAt, values };
}

export function errorMessage(error: ProtocolError): ErrorMessage {
  return { v: 1, type: 'error', code: error.code, message: error.message };
}

const COUNTER_KEYS = ['requests', 'ok', 'denied', 'rateLimited', 'errors'] as const;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}
function isText(value: unknown, max: number): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= max;
}

function extraKeys(raw: Record<string, unknown>, allowed: readonly string[]): string | undefined {
  const extra = Object.keys(raw).find((key) => !allowed.includes(key));
  return extra === undefined ? undefined : `unexpected key ${JSON.stringify(extra).slice(0, 40)}`;
}

function checkVm(vm: unknown): string | undefined {
  if (!isPlainObject(vm)) return 'vm must be an object';
  const extra = extraKeys(vm, ['name', 'uuid', 'pid']);
  if (extra !== undefined) return `vm: ${extra}`;
  if (!isText(vm['name'], MAX_VM_NAME_LENGTH)) return `vm.name must be a string of 1 to ${MAX_VM_NAME_LENGTH} characters`;
  if (!isText(vm['uuid'], MAX_VM_UUID_LENGTH)) return `vm.uuid must be a string of 1 to ${MAX_VM_UUID_LENGTH} characters`;
  const pid = vm['pid'];
  if (!(typeof pid === 'number' && Number.isSafeInteger(pid) && pid > 0)) return 'vm.pid must be a positive integer';
  return undefined;
}

function checkItemList(items: unknown): string | undefined {
  if (!Array.isArray(items) || items.length > MAX_HELLO_ITEMS) return `items must be an array of at most ${MAX_HELLO_ITEMS} names`;
  // Names this daemon does not know are allowed (a newer sidecar may know more items) and simply
  // never sent; but they must look like item names.
  if (!items.every((item) => typeof item === 'string' && item.length <= MAX_ITEM_NAME_LENGTH && /^[a-z0-9]+$/.test(item))) {
    return 'items must be lower-case item names';
  }
  return undefined;
}

function checkCounters(raw: Record<string, unknown>): string | undefined {
  for (const key of COUNTER_KEYS) if (!isCount(raw[key])) return `${key} must be a non-negative integer`;
  const last = raw['lastRequestAt'];
  if (!(last === null || isTime(last))) return 'lastRequestAt must be epoch milliseconds or null';
  return undefined;
}

function checkStatusReply(raw: Record<string, unknown>): string | undefined {
  const bad = extraKeys(raw, ['v', 'type', 'pid', 'startedAt', 'intervalMs', 'seq', 'takenAt', 'vmcount', 'vms']);
  if (bad !== undefined) return bad;
  if (!isCount(raw['pid']) || !isTime(raw['startedAt']) || !isTime(raw['intervalMs']) || !isCount(raw['vmcount'])) return 'pid, startedAt, intervalMs, vmcount must be numbers';
  if (!(raw['seq'] === null || isCount(raw['seq'])) || !(raw['takenAt'] === null || isTime(raw['takenAt']))) return 'seq and takenAt must be numbers or null';
  const vms = raw['vms'];
  if (!Array.isArray(vms)) return 'vms must be an array';
  for (const entry of vms) {
    if (!isPlainObject(entry)) return 'vms entries must be objects';
    const problem = extraKeys(entry, ['vm', 'items', 'subscribedAt', 'counters', 'reportedAt']) ?? checkVm(entry['vm']) ??
      (Array.isArray(entry['items']) && entry['items'].every((item) => typeof item === 'string' && isHostItemName(item)) ? undefined : 'items are not host item names') ??
      (isTime(entry['subscribedAt']) ? undefined : 'subscribedAt is not a time') ??
      (entry['reportedAt'] === null || isTime(entry['reportedAt']) ? undefined : 'reportedAt is not a time') ??
      (entry['counters'] === null || (isPlainObject(entry['counters']) && extraKeys(entry['counters'], [...COUNTER_KEYS, 'lastRequestAt']) === undefined && checkCounters(entry['counters']) === undefined) ? undefined : 'counters are malformed');
    if (problem !== undefined) return `vms: ${problem}`;
  }
  return undefined;
}
