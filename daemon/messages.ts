// The daemon's wire protocol: versioned JSON text frames over WebSocket. Two kinds of peer speak
// it: a sidecar, over the socket pair the daemon spawned it with (so the daemon knows which VM it
// speaks for without believing anything it says), and an administrator on the owner-only control
// socket. Every frame is size-checked before JSON.parse and then validated field by field; a peer
// that sends anything else gets one `error` frame and is disconnected.

import { CodedError } from '../common/coded-error.js';
import { isHostItemName, type HostItemName, type ItemName, isItemName } from '../policies/items.js';
import { type HostSnapshot, type PartialHostValues, parseHostValues } from './sample.js';

export const DAEMON_PROTOCOL_VERSION = 2;

/** Largest frame a peer may send; a hello or counters report is a few hundred bytes. */
export const MAX_CLIENT_MESSAGE_BYTES = 8 * 1024;
/** ws's own limit, above MAX_CLIENT_MESSAGE_BYTES so oversized frames still get an explanatory error frame. */
export const MAX_CLIENT_PAYLOAD_BYTES = 64 * 1024;
/** Largest frame the daemon sends: a status reply for a host full of VMs. */
export const MAX_SERVER_MESSAGE_BYTES = 4 * 1024 * 1024;
export const MAX_QMP_TEXT = 256;

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
  /** Guest input past the flood budget, dropped unread. */
  readonly droppedBytes: number;
  readonly droppedLines: number;
  /** Epoch ms of the guest's latest request, null before the first. */
  readonly lastRequestAt: number | null;
}
export const COUNTER_KEYS = ['requests', 'ok', 'denied', 'rateLimited', 'errors', 'droppedBytes', 'droppedLines'] as const;

/** What the daemon decided for this VM, and the host settings the sidecar applies. */
export interface AccessMessage {
  readonly v: 2;
  readonly type: 'access';
  readonly vm: VmIdentity;
  readonly served: boolean;
  /** Served: items and rate; not served: why (for the sidecar's log; the guest hears 403). */
  readonly items: readonly ItemName[];
  readonly limit: { readonly intervalMs: number; readonly burst: number };
  readonly file: string | null;
  readonly reason: string | null;
  readonly maxAgeMs: number;
  readonly sampleIntervalMs: number;
  readonly guest: { readonly linesPerSecond: number; readonly bytesPerSecond: number };
}

export interface HelloMessage { readonly v: 2; readonly type: 'hello'; readonly qmp: { readonly name: string | null; readonly uuid: string | null; readonly version: string } }
export interface CountersMessage extends VmCounters { readonly v: 2; readonly type: 'counters' }
export interface StatusRequest { readonly v: 2; readonly type: 'status' }
export type SidecarMessage = HelloMessage | CountersMessage;

export interface SampleMessage { readonly v: 2; readonly type: 'sample'; readonly seq: number; readonly takenAt: number; readonly values: PartialHostValues }
export interface VmStatus {
  readonly id: string;
  readonly vm: VmIdentity;
  readonly guestDevice: string;
  readonly served: boolean;
  readonly reason: string | null;
  readonly items: readonly ItemName[];
  readonly sidecar: { readonly pid: number | null; readonly uid: number | null; readonly restarts: number; readonly connected: boolean };
  readonly counters: VmCounters | null;
}
export interface StatusReply {
  readonly v: 2;
  readonly type: 'status';
  readonly pid: number;
  readonly startedAt: number;
  readonly intervalMs: number;
  readonly seq: number | null;
  readonly takenAt: number | null;
  readonly vmcount: number;
  readonly vms: readonly VmStatus[];
}
export interface ErrorMessage { readonly v: 2; readonly type: 'error'; readonly code: ProtocolErrorCode; readonly message: string }
export type ToSidecarMessage = AccessMessage | SampleMessage | ErrorMessage;

export type ProtocolErrorCode =
  | 'TOO_LARGE'
  | 'BINARY_FRAME'
  | 'MALFORMED_JSON'
  | 'BAD_VERSION'
  | 'UNKNOWN_TYPE'
  | 'INVALID_MESSAGE'
  | 'NOT_ALLOWED'
  | 'SERVER_FULL'
  | 'IDLE';

export class ProtocolError extends CodedError<ProtocolErrorCode> {
  override readonly name = 'ProtocolError';
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
  if (raw['v'] !== DAEMON_PROTOCOL_VERSION) return fail('BAD_VERSION', `unsupported protocol version ${JSON.stringify(raw['v'])}; this daemon speaks ${DAEMON_PROTOCOL_VERSION}`);
  if (typeof raw['type'] !== 'string') return fail('INVALID_MESSAGE', 'message has no type');
  return { ok: true, message: raw };
}

/** What a sidecar may send. */
export function parseSidecarMessage(text: string): Parsed<SidecarMessage> {
  const parsed = envelope(text, MAX_CLIENT_MESSAGE_BYTES);
  if (!parsed.ok) return parsed;
  const raw = parsed.message;
  switch (raw['type']) {
    case 'hello': {
      const bad = extraKeys(raw, ['v', 'type', 'qmp']) ?? checkQmpIdentity(raw['qmp']);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `hello: ${bad}`);
      return { ok: true, message: raw as unknown as HelloMessage };
    }
    case 'counters': {
      const bad = extraKeys(raw, ['v', 'type', ...COUNTER_KEYS, 'lastRequestAt']) ?? checkCounters(raw);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `counters: ${bad}`);
      return { ok: true, message: raw as unknown as CountersMessage };
    }
    default:
      return fail('UNKNOWN_TYPE', `unknown message type ${JSON.stringify(raw['type']).slice(0, 40)}`);
  }
}

/** What an administrator may send on the control socket. */
export function parseControlMessage(text: string): Parsed<StatusRequest> {
  const parsed = envelope(text, MAX_CLIENT_MESSAGE_BYTES);
  if (!parsed.ok) return parsed;
  const raw = parsed.message;
  if (raw['type'] !== 'status') return fail('NOT_ALLOWED', `the control socket answers status only, not ${JSON.stringify(raw['type']).slice(0, 40)}`);
  const bad = extraKeys(raw, ['v', 'type']);
  if (bad !== undefined) return fail('INVALID_MESSAGE', `status: ${bad}`);
  return { ok: true, message: { v: 2, type: 'status' } };
}

/** What a sidecar receives: checked as strictly, since a sidecar trusts nothing either. */
export function parseToSidecarMessage(text: string): Parsed<ToSidecarMessage> {
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
      return { ok: true, message: { v: 2, type: 'sample', seq: raw['seq'] as number, takenAt: raw['takenAt'] as number, values: values.values } };
    }
    case 'access': {
      const bad = checkAccess(raw);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `access: ${bad}`);
      return { ok: true, message: raw as unknown as AccessMessage };
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

/** The host items among a VM's allowed items, in catalogue order: all the daemon ever sends it. */
export function hostItemsOf(items: readonly ItemName[]): HostItemName[] {
  return items.filter((item): item is HostItemName => isHostItemName(item));
}

export function sampleMessage(seq: number, snapshot: HostSnapshot, values: PartialHostValues): SampleMessage {
  return { v: 2, type: 'sample', seq, takenAt: snapshot.takenAt, values };
}

export function errorMessage(error: ProtocolError): ErrorMessage {
  return { v: 2, type: 'error', code: error.code, message: error.message };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}
const isNullableText = (value: unknown, max: number): boolean => value === null || (typeof value === 'string' && value.length <= max);

function extraKeys(raw: Record<string, unknown>, allowed: readonly string[]): string | undefined {
  const extra = Object.keys(raw).find((key) => !allowed.includes(key));
  return extra === undefined ? undefined : `unexpected key ${JSON.stringify(extra).slice(0, 40)}`;
}

function checkQmpIdentity(qmp: unknown): string | undefined {
  if (!isPlainObject(qmp)) return 'qmp must be an object';
  const extra = extraKeys(qmp, ['name', 'uuid', 'version']);
  if (extra !== undefined) return `qmp: ${extra}`;
  if (!isNullableText(qmp['name'], MAX_QMP_TEXT) || !isNullableText(qmp['uuid'], MAX_QMP_TEXT)) return `qmp.name and qmp.uuid must be null or strings of at most ${MAX_QMP_TEXT}`;
  if (!(typeof qmp['version'] === 'string' && qmp['version'].length <= MAX_QMP_TEXT)) return 'qmp.version must be a string';
  return undefined;
}

function checkCounters(raw: Record<string, unknown>): string | undefined {
  for (const key of COUNTER_KEYS) if (!isCount(raw[key])) return `${key} must be a non-negative integer`;
  const last = raw['lastRequestAt'];
  if (!(last === null || isTime(last))) return 'lastRequestAt must be epoch milliseconds or null';
  return undefined;
}

function checkAccess(raw: Record<string, unknown>): string | undefined {
  const bad = extraKeys(raw, ['v', 'type', 'vm', 'served', 'items', 'limit', 'file', 'reason', 'maxAgeMs', 'sampleIntervalMs', 'guest']);
  if (bad !== undefined) return bad;
  const vm = raw['vm'];
  if (!isPlainObject(vm) || typeof vm['name'] !== 'string' || typeof vm['uuid'] !== 'string' || !isCount(vm['pid'])) return 'vm must be {name, uuid, pid}';
  if (typeof raw['served'] !== 'boolean') return 'served must be a boolean';
  const items = raw['items'];
  if (!Array.isArray(items) || !items.every((item) => typeof item === 'string' && isItemName(item))) return 'items must be item names';
  const limit = raw['limit'];
  if (!isPlainObject(limit) || !(isTime(limit['intervalMs']) && (limit['intervalMs'] as number) > 0) || !(isCount(limit['burst']) && (limit['burst'] as number) >= 1)) return 'limit must be {intervalMs > 0, burst >= 1}';
  if (!isNullableText(raw['file'], 4096) || !isNullableText(raw['reason'], 8192)) return 'file and reason must be null or strings';
  if (!(isTime(raw['maxAgeMs']) && isTime(raw['sampleIntervalMs']))) return 'maxAgeMs and sampleIntervalMs must be numbers';
  const guest = raw['guest'];
  if (!isPlainObject(guest) || !(isCount(guest['linesPerSecond']) && isCount(guest['bytesPerSecond']))) return 'guest must be {linesPerSecond, bytesPerSecond}';
  return undefined;
}
