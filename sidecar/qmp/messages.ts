// Shapes of what a QMP server sends (docs/interop/qmp-spec.rst), and validators that turn an
// untrusted JSON object into one of them. Member order is not significant in QMP, and servers
// may add members, so validators check what we rely on and ignore the rest.

import { isCount, isPlainObject } from '../../common/json-checks.js';
import type { QmpJsonObject } from './framing.js';

export interface QmpVersionTriple {
  readonly major: number;
  readonly minor: number;
  readonly micro: number;
}

/** `{"QMP": {"version": {"qemu": {...}, "package": "..."}, "capabilities": [...]}}` */
export interface QmpGreeting {
  readonly version: { readonly qemu: QmpVersionTriple; readonly package: string };
  readonly capabilities: readonly string[];
}

/** Success reply. `id` is absent when the command carried none. */
export interface QmpReturn {
  readonly kind: 'return';
  readonly id: unknown;
  readonly value: unknown;
}

/** Error reply. A reply without `id` means QEMU could not even parse the request. */
export interface QmpErrorReply {
  readonly kind: 'error';
  readonly id: unknown;
  readonly errorClass: string;
  readonly desc: string;
}

export interface QmpEvent {
  readonly kind: 'event';
  readonly event: string;
  readonly data: QmpJsonObject | undefined;
  /** Host wall-clock time QEMU stamped on the event. */
  readonly timestamp: { readonly seconds: number; readonly microseconds: number };
}

export type QmpServerMessage = QmpReturn | QmpErrorReply | QmpEvent;

const isObject = (value: unknown): value is QmpJsonObject => isPlainObject(value);

/** The greeting's payload, or a reason it is unusable. */
export function parseGreeting(message: QmpJsonObject): QmpGreeting | string {
  const qmp = message['QMP'];
  if (!isObject(qmp)) return 'no "QMP" object';
  const version = qmp['version'];
  if (!isObject(version)) return 'no QMP.version object';
  const qemu = version['qemu'];
  if (!isObject(qemu)) return 'no QMP.version.qemu object';
  const { major, minor, micro } = qemu;
  if (!isCount(major) || !isCount(minor) || !isCount(micro)) return 'QMP.version.qemu is not {major, minor, micro}';
  const pkg = version['package'];
  // The spec makes "package" mandatory, but it carries nothing we depend on: tolerate its absence.
  if (pkg !== undefined && typeof pkg !== 'string') return 'QMP.version.package is not a string';
  const capabilities = qmp['capabilities'];
  if (!Array.isArray(capabilities) || !capabilities.every((c) => typeof c === 'string')) {
    return 'QMP.capabilities is not an array of strings';
  }
  return { version: { qemu: { major, minor, micro }, package: pkg ?? '' }, capabilities };
}

/** A reply or event, or a reason the object is neither. */
export function parseServerMessage(message: QmpJsonObject): QmpServerMessage | string {
  if ('return' in message) return { kind: 'return', id: message['id'], value: message['return'] };
  if ('error' in message) {
    const error = message['error'];
    if (!isObject(error) || typeof error['class'] !== 'string' || typeof error['desc'] !== 'string') {
      return 'error reply without string class and desc';
    }
    return { kind: 'error', id: message['id'], errorClass: error['class'], desc: error['desc'] };
  }
  if ('event' in message) {
    const { event, data, timestamp } = message;
    if (typeof event !== 'string') return 'event name is not a string';
    if (data !== undefined && !isObject(data)) return `event ${event} data is not an object`;
    // QEMU always stamps events; a missing stamp is tolerated as 0 rather than dropping the event.
    const seconds = isObject(timestamp) && typeof timestamp['seconds'] === 'number' ? timestamp['seconds'] : 0;
    const microseconds = isObject(timestamp) && typeof timestamp['microseconds'] === 'number' ? timestamp['microseconds'] : 0;
    return { kind: 'event', event, data, timestamp: { seconds, microseconds } };
  }
  if ('QMP' in message) return 'unexpected second greeting';
  return 'message is neither a reply nor an event';
}

/** Wire form of a command. Arguments are omitted, not sent as null, when there are none. */
export function encodeCommand(execute: string, args: QmpJsonObject | undefined, id: string): string {
  const command: QmpJsonObject = { execute };
  if (args !== undefined) command['arguments'] = args;
  command['id'] = id;
  return `${JSON.stringify(command)}\n`;
}
