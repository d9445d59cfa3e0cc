// The daemon protocol's shapes and limits: what each frame holds, as both ends see it. The
// parsing and negotiation are in messages.ts, the field checks in message-fields.ts.

import { CodedError } from '../common/coded-error.js';
import type { Transport } from '../common/vm-record.js';
import type { ItemName } from '../policies/items.js';
import type { PartialHostValues } from './sample.js';

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

/**
 * `qmp` null: the VM was attached without a QMP socket, so the sidecar learnt nothing from QEMU.
 * `features`: what this sidecar understands beyond the version's base (['query']); absent from an
 * older one, which the daemon then never sends such frames.
 */
export interface HelloMessage {
  readonly v: number;
  readonly type: 'hello';
  readonly qmp: { readonly name: string | null; readonly uuid: string | null; readonly version: string } | null;
  readonly features: readonly SidecarFeature[];
}
export const SIDECAR_FEATURES = ['query'] as const;
export type SidecarFeature = (typeof SIDECAR_FEATURES)[number];
/** hostinfo-ctl query: the reply the guest would get to `line` now, its token untouched. */
export interface QueryMessage { readonly v: number; readonly type: 'query'; readonly id: number; readonly line: string }
export interface QueryReplyMessage { readonly v: number; readonly type: 'query-reply'; readonly id: number; readonly reply: string }
/** A query line is one guest request without its LF; a reply at most one guest reply line. */
export const MAX_QUERY_LINE = 255;
/** One guest request without its LF: 1 to MAX_QUERY_LINE printable ASCII characters. */
export const isQueryLine = (value: unknown): value is string => typeof value === 'string' && value.length >= 1 && value.length <= MAX_QUERY_LINE && /^[\x20-\x7e]*$/.test(value);
export const MAX_QUERY_REPLY = 1024;
export interface CountersMessage extends VmCounters { readonly v: number; readonly type: 'counters' }
/** A sidecar that refuses the daemon (no common version) says why before it closes. */
export interface SidecarErrorMessage { readonly v: number; readonly type: 'error'; readonly code: string; readonly message: string }
export type SidecarMessage = HelloMessage | CountersMessage | QueryReplyMessage | SidecarErrorMessage;

export interface SampleMessage { readonly v: number; readonly type: 'sample'; readonly seq: number; readonly takenAt: number; readonly values: PartialHostValues }
export interface VmStatus {
  readonly id: string;
  /** How logs, metrics and the sidecar name the VM: a missing name or uuid filled in. */
  readonly vm: VmIdentity;
  /**
   * The name and uuid as registered (QEMU's -name/-uuid, or the attach request), null where none
   * was given: what its policy is looked up by. Absent from a daemon older than this field.
   */
  readonly registered?: { readonly name: string | null; readonly uuid: string | null };
  readonly guestDevice: string;
  readonly transport: Transport;
  /** Attached (hostinfo-ctl attach) rather than launched through hostinfo. */
  readonly attached: boolean;
  /** It also has vhostmd's port (org.github.vhostmd.1); absent from a daemon older than that port. */
  readonly vhostmd?: boolean;
  readonly served: boolean;
  readonly reason: string | null;
  /** The policy file that decided, and its rate limit, when served. */
  readonly file: string | null;
  readonly limit: { readonly intervalMs: number; readonly burst: number } | null;
  readonly items: readonly ItemName[];
  readonly sidecar: { readonly pid: number | null; readonly uid: number | null; readonly restarts: number; readonly connected: boolean };
  readonly counters: VmCounters | null;
}
export interface StatusReply {
  readonly v: number;
  readonly type: 'status';
  /** hostinfod's HOSTINFO_VERSION. */
  readonly version: string;
  readonly pid: number;
  readonly startedAt: number;
  readonly intervalMs: number;
  readonly seq: number | null;
  readonly takenAt: number | null;
  /** How long taking the latest sample took (monotonic ms); null before the first. */
  readonly sampleDurationMs: number | null;
  readonly vmcount: number;
  readonly vms: readonly VmStatus[];
}
/** `code` is a ProtocolErrorCode from this daemon; from another version, any short string. */
export interface ErrorMessage { readonly v: number; readonly type: 'error'; readonly code: string; readonly message: string }
export type ToSidecarMessage = AccessMessage | SampleMessage | QueryMessage | ErrorMessage;

export type ProtocolErrorCode =
  | 'TOO_LARGE'
  | 'BINARY_FRAME'
  | 'MALFORMED_JSON'
  | 'BAD_VERSION'
  | 'UNKNOWN_TYPE'
  | 'INVALID_MESSAGE'
  | 'NOT_ALLOWED'
  | 'SERVER_FULL'
  | 'IDLE'
  /** A control request understood and declined (attach of a pid that is not running, say). */
  | 'REFUSED'
  | 'NO_SUCH_VM'
  /** A name or uuid more than one served VM has. */
  | 'AMBIGUOUS_VM';

export class ProtocolError extends CodedError<ProtocolErrorCode> {
  override readonly name = 'ProtocolError';
}
