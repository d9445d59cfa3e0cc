// The daemon's wire protocol: versioned JSON text frames over WebSocket. Two kinds of peer speak
// it: a sidecar, over the socket pair the daemon spawned it with (so the daemon knows which VM it
// speaks for without believing anything it says), and an administrator on the owner-only control
// socket. Every frame is size-checked before JSON.parse and then validated field by field (keys a
// newer peer added are ignored, never passed on); a peer that sends anything else gets one `error`
// frame and is disconnected. Versions are negotiated: see VersionRange.

import { CodedError } from '../common/coded-error.js';
import { isHostItemName, type HostItemName, type ItemName, isItemName } from '../policies/items.js';
import { type HostSnapshot, type PartialHostValues, parseHostValues } from './sample.js';

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
  readonly v: number;
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

export interface HelloMessage { readonly v: number; readonly type: 'hello'; readonly qmp: { readonly name: string | null; readonly uuid: string | null; readonly version: string } }
export interface CountersMessage extends VmCounters { readonly v: number; readonly type: 'counters' }
export interface StatusRequest { readonly v: number; readonly type: 'status' }
/** A sidecar that refuses the daemon (no common version) says why before it closes. */
export interface SidecarErrorMessage { readonly v: number; readonly type: 'error'; readonly code: string; readonly message: string }
export type SidecarMessage = HelloMessage | CountersMessage | SidecarErrorMessage;

export interface SampleMessage { readonly v: number; readonly type: 'sample'; readonly seq: number; readonly takenAt: number; readonly values: PartialHostValues }
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
  readonly v: number;
  readonly type: 'status';
  readonly pid: number;
  readonly startedAt: number;
  readonly intervalMs: number;
  readonly seq: number | null;
  readonly takenAt: number | null;
  readonly vmcount: number;
  readonly vms: readonly VmStatus[];
}
/** `code` is a ProtocolErrorCode from this daemon; from another version, any short string. */
export interface ErrorMessage { readonly v: number; readonly type: 'error'; readonly code: string; readonly message: string }
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

/**
 * Protocol versions: an inclusive range of integers. The daemon outlives upgrades of the sidecar's
 * files (the running daemon spawns whatever file is installed now), so peers negotiate: the
 * daemon's first frame (`access`) and the sidecar's `hello` carry `range`, each side then writes
 * the highest version both speak. A frame without `range` is from a peer that speaks only its `v`.
 * Unknown keys are ignored (a newer peer may add some), known keys are validated strictly, and an
 * unknown message type is still refused.
 */
export interface VersionRange {
  readonly min: number;
  readonly max: number;
}

/** What this side (daemon and sidecar alike, they ship together) speaks. */
export const DAEMON_PROTOCOL: VersionRange = { min: 2, max: 2 };
/** The version this side writes before negotiating, and what the control client sends. */
export const DAEMON_PROTOCOL_VERSION = DAEMON_PROTOCOL.max;
/** Bound on a version number or range bound a peer may announce. */
const MAX_VERSION = 1_000_000;

export const formatRange = (range: VersionRange): string => (range.min === range.max ? `${range.min}` : `${range.min}..${range.max}`);

/** The highest version in both ranges, or a BAD_VERSION error naming both. */
export function negotiate(mine: VersionRange, theirs: VersionRange, names: { readonly mine: string; readonly theirs: string }): { ok: true; version: number } | { ok: false; error: ProtocolError } {
  const version = Math.min(mine.max, theirs.max);
  if (version >= Math.max(mine.min, theirs.min)) return { ok: true, version };
  return fail('BAD_VERSION', `no common protocol version: ${names.mine} speaks ${formatRange(mine)}, ${names.theirs} speaks ${formatRange(theirs)}`);
}

/** A frame's version-independent part: what every version agrees on, read before the body. */
export interface Envelope {
  readonly v: number;
  readonly type: string;
  /** The versions the sender speaks: its `range`, or just `v` for a peer that sent none. */
  readonly range: VersionRange;
  /** Whether the sender announced a range (an old peer did not, and rejects keys it does not know). */
  readonly announced: boolean;
  readonly raw: Record<string, unknown>;
}

const isVersion = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= MAX_VERSION;

/** Size check, JSON.parse, and the envelope every message shares: an object with v, type and maybe range. */
export function readEnvelope(text: string, limit: number): Parsed<Envelope> {
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
  const v = raw['v'];
  if (!isVersion(v)) return fail('BAD_VERSION', `protocol version ${String(JSON.stringify(v)).slice(0, 40)} is not a version number; this side speaks ${formatRange(DAEMON_PROTOCOL)}`);
  if (typeof raw['type'] !== 'string') return fail('INVALID_MESSAGE', 'message has no type');
  const range = raw['range'];
  if (range === undefined) return { ok: true, message: { v, type: raw['type'], range: { min: v, max: v }, announced: false, raw } };
  if (!isPlainObject(range) || !isVersion(range['min']) || !isVersion(range['max']) || range['min'] > range['max']) {
    return fail('INVALID_MESSAGE', 'range must be {min, max}, version numbers with min <= max');
  }
  if (v < range['min'] || v > range['max']) return fail('BAD_VERSION', `frame written in version ${v}, outside its own range ${formatRange({ min: range['min'], max: range['max'] })}`);
  return { ok: true, message: { v, type: raw['type'], range: { min: range['min'], max: range['max'] }, announced: true, raw } };
}

/** The envelope, with v one this side speaks: for frames read without a negotiated version. */
function supported(text: string, limit: number): Parsed<Envelope> {
  const parsed = readEnvelope(text, limit);
  if (!parsed.ok) return parsed;
  const { v } = parsed.message;
  if (v < DAEMON_PROTOCOL.min || v > DAEMON_PROTOCOL.max) return fail('BAD_VERSION', `unsupported protocol version ${v}; this side speaks ${formatRange(DAEMON_PROTOCOL)}`);
  return parsed;
}

/** What a sidecar may send, checked by the rules of `version` (the negotiated one). */
export function sidecarMessageOf(envelope: Envelope, version: number): Parsed<SidecarMessage> {
  const raw = envelope.raw;
  switch (envelope.type) {
    case 'hello': {
      const bad = checkQmpIdentity(raw['qmp']);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `hello: ${bad}`);
      const qmp = raw['qmp'] as Record<string, unknown>;
      return { ok: true, message: { v: version, type: 'hello', qmp: { name: qmp['name'] as string | null, uuid: qmp['uuid'] as string | null, version: qmp['version'] as string } } };
    }
    case 'counters': {
      const bad = checkCounters(raw);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `counters: ${bad}`);
      const counters = Object.fromEntries(COUNTER_KEYS.map((key) => [key, raw[key] as number])) as Record<(typeof COUNTER_KEYS)[number], number>;
      return { ok: true, message: { v: version, type: 'counters', ...counters, lastRequestAt: raw['lastRequestAt'] as number | null } };
    }
    case 'error': {
      const bad = checkError(raw);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `error: ${bad}`);
      return { ok: true, message: { v: version, type: 'error', code: raw['code'] as string, message: raw['message'] as string } };
    }
    default:
      return fail('UNKNOWN_TYPE', `unknown message type ${JSON.stringify(envelope.type).slice(0, 40)}`);
  }
}

/** A sidecar frame in a version this side speaks (no negotiation: tests and tools). */
export function parseSidecarMessage(text: string): Parsed<SidecarMessage> {
  const parsed = supported(text, MAX_CLIENT_MESSAGE_BYTES);
  return parsed.ok ? sidecarMessageOf(parsed.message, parsed.message.v) : parsed;
}

/**
 * What an administrator may send on the control socket: a status request in any version range
 * that includes one this daemon speaks; the reply is written in the highest common one.
 */
export function parseControlMessage(text: string): Parsed<StatusRequest> {
  const parsed = readEnvelope(text, MAX_CLIENT_MESSAGE_BYTES);
  if (!parsed.ok) return parsed;
  const envelope = parsed.message;
  const agreed = negotiate(DAEMON_PROTOCOL, envelope.range, { mine: 'hostinfod', theirs: 'this client' });
  if (!agreed.ok) return agreed;
  if (envelope.type !== 'status') return fail('NOT_ALLOWED', `the control socket answers status only, not ${JSON.stringify(envelope.type).slice(0, 40)}`);
  return { ok: true, message: { v: agreed.version, type: 'status' } };
}

/** What a sidecar receives, by the rules of `version`: checked as strictly, since a sidecar trusts nothing either. */
export function toSidecarMessageOf(envelope: Envelope, version: number): Parsed<ToSidecarMessage> {
  const raw = envelope.raw;
  switch (envelope.type) {
    case 'sample': {
      const bad = (isCount(raw['seq']) ? undefined : 'seq is not a count') ??
        (isTime(raw['takenAt']) ? undefined : 'takenAt is not a time');
      if (bad !== undefined) return fail('INVALID_MESSAGE', `sample: ${bad}`);
      const values = parseHostValues(raw['values']);
      if (!values.ok) return fail('INVALID_MESSAGE', `sample: ${values.problem.key}: ${values.problem.reason}`);
      return { ok: true, message: { v: version, type: 'sample', seq: raw['seq'] as number, takenAt: raw['takenAt'] as number, values: values.values } };
    }
    case 'access': {
      const bad = checkAccess(raw);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `access: ${bad}`);
      return { ok: true, message: accessOf(raw, version) };
    }
    case 'error': {
      const bad = checkError(raw);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `error: ${bad}`);
      return { ok: true, message: { v: version, type: 'error', code: raw['code'] as string, message: raw['message'] as string } };
    }
    default:
      return fail('UNKNOWN_TYPE', `unknown message type ${JSON.stringify(envelope.type).slice(0, 40)}`);
  }
}

/** A daemon frame in a version this side speaks (no negotiation: tests and tools). */
export function parseToSidecarMessage(text: string): Parsed<ToSidecarMessage> {
  const parsed = supported(text, MAX_SERVER_MESSAGE_BYTES);
  return parsed.ok ? toSidecarMessageOf(parsed.message, parsed.message.v) : parsed;
}

/** The host items among a VM's allowed items, in catalogue order: all the daemon ever sends it. */
export function hostItemsOf(items: readonly ItemName[]): HostItemName[] {
  return items.filter((item): item is HostItemName => isHostItemName(item));
}

export function sampleMessage(seq: number, snapshot: HostSnapshot, values: PartialHostValues, v: number = DAEMON_PROTOCOL_VERSION): SampleMessage {
  return { v, type: 'sample', seq, takenAt: snapshot.takenAt, values };
}

export function errorMessage(error: ProtocolError, v: number = DAEMON_PROTOCOL_VERSION): ErrorMessage {
  return { v, type: 'error', code: error.code, message: error.message };
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

function checkError(raw: Record<string, unknown>): string | undefined {
  return typeof raw['code'] === 'string' && raw['code'].length <= 64 && typeof raw['message'] === 'string' && raw['message'].length <= 8192
    ? undefined
    : 'code and message must be strings';
}

function checkQmpIdentity(qmp: unknown): string | undefined {
  if (!isPlainObject(qmp)) return 'qmp must be an object';
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

/** A checked access frame, rebuilt from its known keys only. */
function accessOf(raw: Record<string, unknown>, version: number): AccessMessage {
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
