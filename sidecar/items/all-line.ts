// The text of the line protocol's ALL reply: every item this VM may read, in catalogue order, as
// `name=value` words separated by one space. A value is written bare unless it holds a space or a
// quote (or is empty, or is the word `unavailable`); then it is double-quoted with the request
// grammar's escapes, \" and \\ (sidecar/protocol/request-parser.ts). A bare `unavailable` means
// the item is permitted but has no value now.
//
// The line never exceeds MAX_REPLY_BYTES and is never cut inside a value: every real value fits
// (test/sidecar/all-line.test.ts computes the worst case), and should longer ones ever arrive
// (a sample string may be 256 characters) the longest values are written as `unavailable` until
// the line fits, so each permitted item still appears exactly once and a parser never sees half
// a quoted string.

import type { ItemName } from '../../policies/items.js';
import { MAX_REPLY_BYTES } from '../protocol/limits.js';
import { printableAscii } from '../protocol/reply.js';
import { REPLY_PREFIX } from '../protocol/version.js';

export const UNAVAILABLE_WORD = 'unavailable';
/** Characters an ALL text may have: a 200 line less its version, status and LF. */
export const ALL_TEXT_ROOM = MAX_REPLY_BYTES - `${REPLY_PREFIX}200 `.length - 1;

export interface AllEntry {
  readonly item: ItemName;
  /** The item's reply text; undefined when it is unavailable. */
  readonly text: string | undefined;
}


/** One value as the request grammar reads it: bare when it can be, else quoted with \" and \\. */
export function encodeValue(text: string): string {
  const clean = printableAscii(text);
  if (clean !== '' && clean !== UNAVAILABLE_WORD && !/[ "]/.test(clean)) return clean;
  return `"${clean.replace(/["\\]/g, (char) => `\\${char}`)}"`;
}

export function allText(entries: readonly AllEntry[]): string {
  const words = entries.map(({ item, text }) => `${item}=${text === undefined ? UNAVAILABLE_WORD : encodeValue(text)}`);
  let length = words.reduce((sum, word) => sum + word.length, Math.max(0, words.length - 1));
  if (length > ALL_TEXT_ROOM) {
    // Longest values first: the values that do not fit are the outliers, not whichever come last.
    const cuts = entries.map(({ item }, index) => ({ index, shorter: `${item}=${UNAVAILABLE_WORD}`, saves: (words[index] as string).length - item.length - 1 - UNAVAILABLE_WORD.length }))
      .sort((a, b) => b.saves - a.saves || a.index - b.index);
    for (const { index, shorter, saves } of cuts) {
      if (length <= ALL_TEXT_ROOM || saves <= 0) break;
      words[index] = shorter;
      length -= saves;
    }
    // Every catalogue item as `name=unavailable` fits with room to spare (checked by a test).
    if (length > ALL_TEXT_ROOM) throw new Error(`ALL needs ${length} characters, more than ${ALL_TEXT_ROOM}`);
  }
  return words.join(' ');
}
