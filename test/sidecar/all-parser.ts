// A reader of the ALL reply written from the README's grammar, not from the encoder: the text after
// `1.0 200 ` is `name=value` words separated by one space; a value is bare (no space, no quote,
// not empty) or double-quoted with \" and \\ as its only escapes. Used by the unit, fuzz and
// end-to-end tests to read back what the sidecar wrote.

export interface AllWord {
  readonly name: string;
  readonly value: string;
  readonly quoted: boolean;
}

/** The words of an ALL text, in order; throws with the column when it is not well-formed. */
export function parseAllText(text: string): AllWord[] {
  const words: AllWord[] = [];
  let at = 0;
  while (at < text.length) {
    if (words.length > 0) {
      if (text[at] !== ' ') throw new Error(`expected one space at column ${at + 1}`);
      at += 1;
    }
    const eq = text.indexOf('=', at);
    if (eq === -1) throw new Error(`no = after column ${at + 1}`);
    const name = text.slice(at, eq);
    if (!/^[a-z]+$/.test(name)) throw new Error(`bad item name ${JSON.stringify(name)}`);
    at = eq + 1;
    if (text[at] === '"') {
      let value = '';
      at += 1;
      for (;;) {
        const char = text[at];
        if (char === undefined) throw new Error(`unterminated quoted value of ${name}`);
        if (char === '"') break;
        if (char === '\\') {
          const escaped = text[at + 1];
          if (escaped !== '"' && escaped !== '\\') throw new Error(`bad escape at column ${at + 1}`);
          value += escaped;
          at += 2;
          continue;
        }
        value += char;
        at += 1;
      }
      at += 1;
      if (at < text.length && text[at] !== ' ') throw new Error(`no space after the quoted value of ${name}`);
      words.push({ name, value, quoted: true });
    } else {
      const end = text.indexOf(' ', at) === -1 ? text.length : text.indexOf(' ', at);
      const value = text.slice(at, end);
      if (value === '' || value.includes('"')) throw new Error(`bad bare value of ${name}: ${JSON.stringify(value)}`);
      words.push({ name, value, quoted: false });
      at = end;
    }
  }
  return words;
}

/** The ALL text of a reply line (`1.0 200 ...\n`), parsed. */
export function parseAllReply(reply: string): AllWord[] {
  const match = /^1\.0 200 ([^\n]*)\n?$/.exec(reply);
  if (match === null) throw new Error(`not a 200 line: ${JSON.stringify(reply.slice(0, 80))}`);
  return parseAllText(match[1] ?? '');
}
