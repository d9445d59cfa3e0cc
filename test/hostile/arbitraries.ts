// fast-check generators for what a hostile guest can write to its serial port. Every generator
// yields raw bytes; a "session" is a list of such pieces written back to back, and a chunking that
// decides how the stream reaches the sidecar (whole, one byte at a time, or random splits).

import fc from 'fast-check';
import { ITEM_NAMES } from '../../policies/items.js';

export const COMMANDS: readonly string[] = [...ITEM_NAMES, 'ping', 'help', 'version'];

/** Fixed in CI; HOSTINFO_FUZZ_SEED overrides it to replay or explore. */
export function fuzzSeed(fallback: number): number {
  const text = process.env['HOSTINFO_FUZZ_SEED'];
  if (text === undefined || text === '') return fallback;
  const seed = Number(text);
  if (!Number.isSafeInteger(seed)) throw new Error(`HOSTINFO_FUZZ_SEED must be an integer, got ${JSON.stringify(text)}`);
  return seed;
}

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

/** A command name in random letter case. */
const anyCaseCommand = fc.tuple(fc.constantFrom(...COMMANDS), fc.nat()).map(([name, bits]) =>
  [...name].map((char, index) => ((bits >> (index % 30)) & 1 ? char.toUpperCase() : char)).join(''));

const printable = fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code));
const nastyByte = fc.oneof(
  fc.constantFrom(0x00, 0x0d, 0x09, 0x1b, 0x7f, 0x80, 0xff, 0xc3, 0x22, 0x5c, 0x0a),
  fc.integer({ min: 0, max: 255 }),
);

/** An argument: bare word, quoted (escapes, maybe unbalanced), or anything printable. */
const argument = fc.oneof(
  fc.string({ unit: printable, maxLength: 12 }).map((s) => s.replace(/[ "]/g, '_')),
  fc.string({ unit: printable, maxLength: 20 }).map((s) => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`),
  fc.string({ unit: printable, maxLength: 20 }).map((s) => `"${s}`),
  fc.string({ unit: fc.constantFrom('"', '\\', ' ', 'a'), maxLength: 10 }),
  fc.string({ unit: printable, maxLength: 30 }),
);

const terminator = fc.constantFrom('\n', '\n', '\n', '\r\n', '\r\n', '\r\r\n', '\n\r', '\n\n', '', '\r', ' \n');

/** A well-meant or almost well-meant request: a command with random arguments. */
const commandLine = fc
  .tuple(fc.constantFrom('', '', '', ' ', '   '), anyCaseCommand, fc.oneof(fc.constant([]), fc.array(argument, { maxLength: 4 })), terminator)
  .map(([lead, command, args, end]) => latin1(`${lead}${[command, ...args].join(' ')}${end}`));

/** A command with NULs, control and high bytes spliced in. */
const taintedLine = fc
  .tuple(commandLine, fc.array(fc.tuple(fc.nat(), nastyByte), { minLength: 1, maxLength: 4 }))
  .map(([line, taints]) => {
    const bytes = Buffer.from(line);
    for (const [at, byte] of taints) if (bytes.length > 0) bytes[at % bytes.length] = byte;
    return bytes;
  });

const randomBytes = fc.uint8Array({ maxLength: 80 }).map((bytes) => Buffer.from(bytes));

/** Lines at and around the 256-byte limit and far past it, with and without their LF. */
const hugeLine = fc
  .tuple(
    fc.oneof(fc.integer({ min: 250, max: 260 }), fc.integer({ min: 256, max: 1024 }), fc.integer({ min: 1024, max: 8192 })),
    fc.constantFrom('a', ' ', 'P', '1.0 200 ', 'ping "', '\x00', '\xff'),
    fc.constantFrom('\n', '\r\n', '', 'x\n'),
  )
  .map(([length, fill, end]) => {
    const head = fill.length > 1 ? fill : '';
    const body = head + (fill.length > 1 ? 'y' : fill).repeat(Math.max(0, length - head.length));
    return latin1(body + end);
  });

/** What a cooked guest tty sends back: our own reply lines. */
const echoLine = fc
  .tuple(fc.constantFrom('200', '403', '429', '999', '20'), fc.string({ unit: printable, maxLength: 30 }), fc.constantFrom('\n', '\r\n', ''))
  .map(([status, text, end]) => latin1(`1.0 ${status} ${text}${end}`));

const blankLine = fc.constantFrom('\n', '  \n', '\r\n', ' \r\n', '\n\n\n').map(latin1);

const unbalancedQuotes = fc
  .tuple(anyCaseCommand, fc.string({ unit: fc.constantFrom('"', '\\', 'x', ' '), minLength: 1, maxLength: 16 }), terminator)
  .map(([command, junk, end]) => latin1(`${command} ${junk}${end}`));

export const piece = fc.oneof(
  { weight: 8, arbitrary: commandLine },
  { weight: 2, arbitrary: taintedLine },
  { weight: 2, arbitrary: randomBytes },
  { weight: 1, arbitrary: hugeLine },
  { weight: 1, arbitrary: echoLine },
  { weight: 1, arbitrary: blankLine },
  { weight: 2, arbitrary: unbalancedQuotes },
);

export type Chunking = { readonly kind: 'whole' } | { readonly kind: 'bytes' } | { readonly kind: 'sizes'; readonly sizes: readonly number[] };

export const chunking: fc.Arbitrary<Chunking> = fc.oneof(
  { weight: 2, arbitrary: fc.constant<Chunking>({ kind: 'whole' }) },
  { weight: 1, arbitrary: fc.constant<Chunking>({ kind: 'bytes' }) },
  { weight: 3, arbitrary: fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 8 }).map((sizes): Chunking => ({ kind: 'sizes', sizes })) },
);

/** Cuts a stream into the chunks a socket might deliver. */
export function cut(stream: Buffer, how: Chunking): Buffer[] {
  if (how.kind === 'whole') return [stream];
  const chunks: Buffer[] = [];
  let at = 0;
  for (let index = 0; at < stream.length; index += 1) {
    const size = how.kind === 'bytes' ? 1 : (how.sizes[index % how.sizes.length] ?? 1);
    chunks.push(stream.subarray(at, at + size));
    at += size;
  }
  return chunks;
}
