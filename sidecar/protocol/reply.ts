// Formats one reply line. Whatever text it is given (a host CPU model string, a guest's PING
// text), what leaves is a single line of printable ASCII within MAX_REPLY_BYTES.

import { MAX_REPLY_BYTES } from './limits.js';
import { REPLY_PREFIX } from './version.js';

export const STATUS = {
  ok: 200,
  badRequest: 400,
  forbidden: 403,
  unknownCommand: 404,
  rateLimited: 429,
  internalError: 500,
  unavailable: 503,
} as const;

export type Status = (typeof STATUS)[keyof typeof STATUS];

export interface Reply {
  readonly status: Status;
  readonly text: string;
}

const NOT_PRINTABLE = /[^\x20-\x7e]/;
const NOT_PRINTABLE_ALL = /[^\x20-\x7e]/g;

/** Printable ASCII, one byte per character: every other code unit becomes `?`. */
export const printableAscii = (text: string): string => (NOT_PRINTABLE.test(text) ? text.replace(NOT_PRINTABLE_ALL, '?') : text);

/** Each status's reply prefix (REPLY_PREFIX, status, space), built once. */
const PREFIXES: ReadonlyMap<number, string> = new Map(Object.values(STATUS).map((status) => [status, `${REPLY_PREFIX}${status} `]));

export function formatReply(reply: Reply): string {
  const prefix = PREFIXES.get(reply.status) ?? `${REPLY_PREFIX}${reply.status} `;
  const room = MAX_REPLY_BYTES - prefix.length - 1;
  // Replacing every non-printable code unit keeps one character per byte, so slicing by
  // characters below is slicing by bytes.
  const printable = printableAscii(reply.text);
  return `${prefix}${printable.length > room ? printable.slice(0, room) : printable}\n`;
}
