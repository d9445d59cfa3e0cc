// QEMU's option strings (`key=value,key2=value2`), read the way QEMU 7.2's QemuOpts parser
// (util/qemu-option.c, get_opt_name_value) reads them, so that what the launcher believes about
// the user's `-name`, `-device` or `-serial` is what QEMU will believe:
//   - a value runs to the next single comma; `,,` inside a value is one literal comma
//     (`-name a,,b` is the name "a,b": checked with query-name on QEMU 7.2);
//   - keys are not unescaped and end at `=` or `,`;
//   - when the first element has no `=` before its first comma and the option has an implied
//     key (`-name foo` = `guest=foo`, `-device isa-serial` = `driver=isa-serial`), the whole
//     element is that key's value; an element with `=` is never implied (`-name x=y` sets key x);
//   - a later element without `=` is a flag: `foo` = `foo=on`, `nofoo` = `foo=off`.
// Repeated keys: the last one wins, as QemuOpts lookups return the last occurrence.

export interface OptionPair {
  readonly key: string;
  readonly value: string;
}

/** Reads a value from `start` up to an unescaped comma; returns the value and where it stopped. */
function readValue(text: string, start: number): { value: string; end: number } {
  let value = '';
  let i = start;
  while (i < text.length) {
    const ch = text[i];
    if (ch === ',') {
      if (text[i + 1] !== ',') break;
      value += ',';
      i += 2;
      continue;
    }
    value += ch;
    i += 1;
  }
  return { value, end: i };
}

/** All `key=value` pairs in order, duplicates kept (merge with `lastValues` or `optionValue`). */
export function parseOptionString(text: string, impliedKey?: string): OptionPair[] {
  const pairs: OptionPair[] = [];
  let i = 0;
  let first = true;
  while (i < text.length) {
    const rest = text.slice(i);
    const keyEnd = rest.search(/[=,]/);
    const keyLength = keyEnd === -1 ? rest.length : keyEnd;
    if (rest[keyLength] === '=') {
      const { value, end } = readValue(text, i + keyLength + 1);
      pairs.push({ key: rest.slice(0, keyLength), value });
      i = end;
    } else if (first && impliedKey !== undefined) {
      const { value, end } = readValue(text, i);
      pairs.push({ key: impliedKey, value });
      i = end;
    } else {
      const flag = rest.slice(0, keyLength);
      pairs.push(flag.startsWith('no') ? { key: flag.slice(2), value: 'off' } : { key: flag, value: 'on' });
      i += keyLength;
    }
    first = false;
    if (text[i] === ',') i += 1;
  }
  return pairs;
}

/** The value QEMU would see for `key`: the last occurrence wins. */
export function optionValue(pairs: readonly OptionPair[], key: string): string | undefined {
  let found: string | undefined;
  for (const pair of pairs) if (pair.key === key) found = pair.value;
  return found;
}

/** Writes a value so QemuOpts reads it back unchanged (commas doubled). */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** QEMU's is_help_option(): `help` and `?` ask for a listing instead of doing anything. */
export function isHelpWord(word: string | undefined): boolean {
  return word === 'help' || word === '?';
}

/** True when an option string asks for help: as the implied value (`-device help`) or a flag (`-device e1000,help`). */
export function asksForHelp(text: string, impliedKey?: string): boolean {
  return parseOptionString(text, impliedKey).some(
    (pair) => (pair.key === impliedKey && isHelpWord(pair.value)) || (isHelpWord(pair.key) && pair.value === 'on'),
  );
}
