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
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
/** REPLY_PREFIX as bytes: the reply shape is checked on the raw bytes, without decoding them. */
const PREFIX_BYTES = Uint8Array.from(REPLY_PREFIX, (char) => char.charCodeAt(0));

/** True for bytes that start like a reply (`<version> <3 digits>`, then a space or the end): checked on raw bytes, before validation. */
export function looksLikeReply(bytes: Uint8Array): boolean {
  const prefix = PREFIX_BYTES.length;
  if (bytes.length < prefix + 3) return false;
  for (let i = 0; i < prefix; i += 1) if (bytes[i] !== PREFIX_BYTES[i]) return false;
  for (let i = prefix; i < prefix + 3; i += 1) {
    const byte = bytes[i] as number;
    if (byte < DIGIT_0 || byte > DIGIT_9) return false;
  }
  return bytes.length === prefix + 3 || bytes[prefix + 3] === SPACE;
}

/**
 * One pass over the bytes for the checks every request needs (blank, printable, quoted), then
 * the tokenizer on the decoded text. It runs for every line a guest sends, so it allocates
 * nothing it does not return.
 */
export function parseRequestLine(bytes: Uint8Array): ParsedLine {
  let blank = true;
  for (let i = 0; i < bytes.length; i += 1) {
    if (bytes[i] !== SPACE) {
      blank = false;
      break;
    }
  }
  if (blank) return EMPTY;
  if (looksLikeReply(bytes)) return ECHO;
  let quoted = false;
  for (let i = 0; i < bytes.length; i += 1) {
    const byte = bytes[i] as number;
    if (byte < 0x20 || byte > 0x7e) return { kind: 'invalid', reason: `byte 0x${byte.toString(16).padStart(2, '0')} at column ${i + 1} is not printable ASCII` };
    if (byte === QUOTE || byte === BACKSLASH) quoted = true;
  }
  // Printable ASCII: one character per byte, whatever the decoding.
  const line = String.fromCharCode.apply(null, bytes as unknown as number[]);
  return quoted ? tokenize(line) : splitBare(line);
}

const EMPTY: ParsedLine = Object.freeze({ kind: 'empty' });
const ECHO: ParsedLine = Object.freeze({ kind: 'echo' });

/** A line without quotes or backslashes: words between runs of spaces, as tokenize would find them. */
function splitBare(line: string): ParsedLine {
  let command: string | undefined;
  const args: string[] = [];
  let at = 0;
  while (at < line.length) {
    if (line.charCodeAt(at) === SPACE) {
      at += 1;
      continue;
    }
    let end = at + 1;
    while (end < line.length && line.charCodeAt(end) !== SPACE) end += 1;
    const word = line.slice(at, end);
    if (command === undefined) command = word;
    else args.push(word);
    at = end;
  }
  // Not blank (checked first), so there is a word.
  return { kind: 'request', command: (command as string).toLowerCase(), args };
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
  if (command === undefined) return EMPTY;
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
