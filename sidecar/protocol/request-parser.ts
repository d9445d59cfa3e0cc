// Turns one request line (bytes, LF already removed) into a command and its arguments. Pure.
// Grammar: COMMAND [ARG ...], separated by spaces; an argument is a bare word or a double-quoted
// string in which only \" and \\ are escapes. Only printable ASCII (0x20-0x7e) is accepted.

import { REPLY_PREFIX } from './version.js';

export type ParsedLine =
  /** Blank or spaces only: a guest resynchronising. No reply. */
  | { readonly kind: 'empty' }
  /** Shaped like one of our replies: the echo of a guest tty in cooked mode. No reply. */
  | { readonly kind: 'echo' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /** `command` is lower-cased; `args` are unquoted. */
  | { readonly kind: 'request'; readonly command: string; readonly args: readonly string[] };

const SPACE = 0x20;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const REPLY_SHAPE = new RegExp(`^${REPLY_PREFIX.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[0-9]{3}(?: |$)`);
/** Enough of a line to hold the prefix, three digits and the space after them. */
const REPLY_SHAPE_BYTES = REPLY_PREFIX.length + 4;

/** True for bytes that start like a reply (`<version> <3 digits>`): checked on raw bytes, before validation. */
export function looksLikeReply(bytes: Uint8Array): boolean {
  return REPLY_SHAPE.test(Buffer.from(bytes.subarray(0, REPLY_SHAPE_BYTES)).toString('latin1'));
}

export function parseRequestLine(bytes: Uint8Array): ParsedLine {
  if (bytes.every((byte) => byte === SPACE)) return { kind: 'empty' };
  if (looksLikeReply(bytes)) return { kind: 'echo' };
  const bad = bytes.findIndex((byte) => byte < 0x20 || byte > 0x7e);
  if (bad !== -1) {
    const hex = (bytes[bad] ?? 0).toString(16).padStart(2, '0');
    return { kind: 'invalid', reason: `byte 0x${hex} at column ${bad + 1} is not printable ASCII` };
  }
  return tokenize(Buffer.from(bytes).toString('latin1'));
}

function tokenize(line: string): ParsedLine {
  const words: { text: string; quoted: boolean }[] = [];
  let at = 0;
  while (at < line.length) {
    if (line.charCodeAt(at) === SPACE) {
      at += 1;
      continue;
    }
    const word = line.charCodeAt(at) === QUOTE ? readQuoted(line, at) : readBare(line, at);
    if ('reason' in word) return { kind: 'invalid', reason: word.reason };
    words.push({ text: word.text, quoted: word.quoted });
    at = word.next;
  }
  const [command, ...args] = words;
  if (command === undefined) return { kind: 'empty' };
  if (command.quoted) return { kind: 'invalid', reason: 'the command must be a bare word' };
  return { kind: 'request', command: command.text.toLowerCase(), args: args.map((arg) => arg.text) };
}

type Word = { text: string; quoted: boolean; next: number } | { reason: string };

function readBare(line: string, start: number): Word {
  let end = start;
  while (end < line.length && line.charCodeAt(end) !== SPACE) {
    if (line.charCodeAt(end) === QUOTE) return { reason: `quote inside a bare word at column ${end + 1}` };
    end += 1;
  }
  return { text: line.slice(start, end), quoted: false, next: end };
}

function readQuoted(line: string, start: number): Word {
  let text = '';
  let at = start + 1;
  while (at < line.length) {
    const code = line.charCodeAt(at);
    if (code === QUOTE) {
      const next = at + 1;
      if (next < line.length && line.charCodeAt(next) !== SPACE) {
        return { reason: `a space must follow the closing quote at column ${at + 1}` };
      }
      return { text, quoted: true, next };
    }
    if (code === BACKSLASH) {
      const escaped = line.charCodeAt(at + 1);
      if (escaped !== QUOTE && escaped !== BACKSLASH) {
        return { reason: `only \\" and \\\\ are escapes (column ${at + 1})` };
      }
      text += String.fromCharCode(escaped);
      at += 2;
      continue;
    }
    text += line[at];
    at += 1;
  }
  return { reason: `unterminated quoted string starting at column ${start + 1}` };
}
