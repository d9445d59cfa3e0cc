// The daemon's wire protocol: versioned JSON text frames over WebSocket. Two kinds of peer speak
// it: a sidecar, over the socket pair the daemon spawned it with (so the daemon knows which VM it
// speaks for without believing anything it says), and an administrator on the owner-only control
// socket (its requests: control-messages.ts). Every frame is size-checked before JSON.parse and then validated field by field (keys a
// newer peer added are ignored, never passed on); a peer that sends anything else gets one `error`
// frame and is disconnected. Versions are negotiated: see VersionRange.

import { isAmount, isCount, isPlainObject } from '../common/json-checks.js';
import { isHostItemName, type HostItemName, type ItemName } from '../policies/items.js';
import { type HostSnapshot, type PartialHostValues, parseHostValues } from './sample.js';
import { accessOf, checkAccess, checkCounters, checkError, checkQmpIdentity } from './message-fields.js';
import {
  COUNTER_KEYS, MAX_CLIENT_MESSAGE_BYTES, MAX_QUERY_LINE, MAX_QUERY_REPLY, MAX_SERVER_MESSAGE_BYTES, isQueryLine, SIDECAR_FEATURES, type ErrorMessage, ProtocolError, type ProtocolErrorCode,
  type SampleMessage, type SidecarMessage, type ToSidecarMessage,
} from './message-types.js';

export * from './message-types.js';

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
      // Features this side does not know are a newer sidecar's: ignored, like unknown keys.
      const features = Array.isArray(raw['features']) ? SIDECAR_FEATURES.filter((feature) => (raw['features'] as unknown[]).includes(feature)) : [];
      // qmp null: a sidecar of an attached VM without a QMP socket of its own.
      if (raw['qmp'] === null) return { ok: true, message: { v: version, type: 'hello', qmp: null, features } };
      const bad = checkQmpIdentity(raw['qmp']);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `hello: ${bad}`);
      const qmp = raw['qmp'] as Record<string, unknown>;
      return { ok: true, message: { v: version, type: 'hello', qmp: { name: qmp['name'] as string | null, uuid: qmp['uuid'] as string | null, version: qmp['version'] as string }, features } };
    }
    case 'counters': {
      const bad = checkCounters(raw);
      if (bad !== undefined) return fail('INVALID_MESSAGE', `counters: ${bad}`);
      const counters = Object.fromEntries(COUNTER_KEYS.map((key) => [key, raw[key] as number])) as Record<(typeof COUNTER_KEYS)[number], number>;
      return { ok: true, message: { v: version, type: 'counters', ...counters, lastRequestAt: raw['lastRequestAt'] as number | null } };
    }
    case 'query-reply': {
      const reply = raw['reply'];
      if (!isCount(raw['id']) || !(typeof reply === 'string' && reply.length <= MAX_QUERY_REPLY)) return fail('INVALID_MESSAGE', `query-reply: id must be a count and reply a string of at most ${MAX_QUERY_REPLY}`);
      return { ok: true, message: { v: version, type: 'query-reply', id: raw['id'] as number, reply } };
    }
    case 'error':
      return errorFrameOf(raw, version);
    default:
      return unknownType(envelope);
  }
}

/** Either end may send one error frame before it closes. */
function errorFrameOf(raw: Record<string, unknown>, version: number): Parsed<ErrorMessage> {
  const bad = checkError(raw);
  if (bad !== undefined) return fail('INVALID_MESSAGE', `error: ${bad}`);
  return { ok: true, message: { v: version, type: 'error', code: raw['code'] as string, message: raw['message'] as string } };
}

const unknownType = (envelope: Envelope): { ok: false; error: ProtocolError } => fail('UNKNOWN_TYPE', `unknown message type ${JSON.stringify(envelope.type).slice(0, 40)}`);

/** A sidecar frame in a version this side speaks (no negotiation: tests and tools). */
export function parseSidecarMessage(text: string): Parsed<SidecarMessage> {
  const parsed = supported(text, MAX_CLIENT_MESSAGE_BYTES);
  return parsed.ok ? sidecarMessageOf(parsed.message, parsed.message.v) : parsed;
}

/** What a sidecar receives, by the rules of `version`: checked as strictly, since a sidecar trusts nothing either. */
export function toSidecarMessageOf(envelope: Envelope, version: number): Parsed<ToSidecarMessage> {
  const raw = envelope.raw;
  switch (envelope.type) {
    case 'sample': {
      const bad = (isCount(raw['seq']) ? undefined : 'seq is not a count') ??
        (isAmount(raw['takenAt']) ? undefined : 'takenAt is not a time');
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
    case 'query': {
      const line = raw['line'];
      if (!isCount(raw['id']) || !isQueryLine(line)) return fail('INVALID_MESSAGE', `query: id must be a count and line printable ASCII of at most ${MAX_QUERY_LINE}`);
      return { ok: true, message: { v: version, type: 'query', id: raw['id'] as number, line } };
    }
    case 'error':
      return errorFrameOf(raw, version);
    default:
      return unknownType(envelope);
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
