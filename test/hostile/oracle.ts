// An independent reading of guest protocol 1.0 (README "Guest protocol 1.0"), written from the
// spec and not from the decoder: which request lines must get exactly one reply, and what a reply
// line must look like. Used by the pure and the live fuzz tests.

import { ITEM_NAMES, ITEMS, type ItemName } from '../../policies/items.js';

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
/** Content bytes of a request line (before the LF, CR included) the protocol accepts. */
export const MAX_LINE_CONTENT = 255;
export const MAX_REPLY = 1024;
export const KNOWN_STATUSES = new Set([200, 400, 403, 404, 429, 500, 503]);

export interface ExpectedLine {
  /** The raw line, without its LF. */
  readonly raw: Buffer;
  /** True when the protocol requires one reply to this line. */
  readonly answered: boolean;
}

/** Shaped like `1.0 <3 digits>` followed by a space or the end: a cooked tty's echo of a reply. */
function echoShaped(bytes: Buffer): boolean {
  const text = bytes.toString('latin1');
  return /^1\.0 [0-9]{3}( |$)/.test(text);
}

/**
 * Splits a guest byte stream on LF; the tail after the last LF is not a line yet. `connectionStart`:
 * the stream is the first the host end receives on its connection (else lines came before it).
 */
export function splitLines(stream: Buffer, { connectionStart = true } = {}): { lines: ExpectedLine[]; tail: number } {
  const lines: ExpectedLine[] = [];
  let start = 0;
  for (let at = stream.indexOf(LF); at !== -1; at = stream.indexOf(LF, start)) {
    const raw = stream.subarray(start, at);
    const first = connectionStart && start === 0;
    lines.push({ raw, answered: needsReply(raw) && (!first || raw.length > MAX_LINE_CONTENT || firstWordKnown(raw)) });
    start = at + 1;
  }
  return { lines, tail: stream.length - start };
}

/**
 * The stream's first line may be the tail of something the guest sent before this connection: it
 * is answered only when its first word is a command or an item name (README, guest protocol).
 */
function firstWordKnown(raw: Buffer): boolean {
  const word = /^ *([^ ]*)/.exec(raw.toString('latin1').replace(/\r$/, ''))?.[1]?.toLowerCase() ?? '';
  return ['ping', 'help', 'version', 'all', ...ITEM_NAMES].includes(word);
}

export function needsReply(raw: Buffer): boolean {
  if (raw.length > MAX_LINE_CONTENT) return !echoShaped(raw);
  const line = raw.length > 0 && raw[raw.length - 1] === CR ? raw.subarray(0, raw.length - 1) : raw;
  if (line.every((byte) => byte === SPACE)) return false;
  return !echoShaped(line);
}

/** Why a reply line is malformed, or undefined when it is well-formed. */
export function malformed(reply: string): string | undefined {
  if (Buffer.byteLength(reply, 'latin1') > MAX_REPLY) return `reply of ${reply.length} bytes`;
  const match = /^1\.0 ([0-9]{3}) [\x20-\x7e]*\n$/.exec(reply);
  if (match === null) return `not "1.0 <status> <printable ASCII>\\n": ${JSON.stringify(reply.slice(0, 200))}`;
  if (!KNOWN_STATUSES.has(Number(match[1]))) return `unknown status ${match[1]}`;
  return undefined;
}

export const statusOf = (reply: string): number => Number(reply.slice(4, 7));

/** The first word of a request line, lower-cased, if that word is an item name. */
export function requestedItem(raw: Buffer): ItemName | undefined {
  const word = /^ *([^ ]*)/.exec(raw.toString('latin1'))?.[1]?.replace(/\r$/, '').toLowerCase() ?? '';
  return (ITEM_NAMES as readonly string[]).includes(word) ? (word as ItemName) : undefined;
}

export const SENSITIVE_ITEMS: readonly ItemName[] = ITEM_NAMES.filter((name) => ITEMS[name].sensitive);
