// The one way flags are parsed here: node:util's parseArgs, strict, with its error turned into a
// message for the caller's usage line instead of an exception. Positionals (hostinfo-ctl's verbs
// and their operands) only where a command asks for them. The launcher, whose mistakes are mostly
// QEMU arguments given before `--`, reads parseArgs' tokens instead, to say which argument it was.

import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
export type FlagValues<O extends Options> = ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: false }>>['values'];

export type ParsedFlagValues<O extends Options> =
  | { readonly ok: true; readonly values: FlagValues<O>; readonly positionals: readonly string[] }
  | { readonly ok: false; readonly message: string };

export function parseFlagValues<O extends Options>(argv: readonly string[], options: O, settings: { readonly positionals?: boolean } = {}): ParsedFlagValues<O> {
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: settings.positionals === true });
    return { ok: true, values: values as FlagValues<O>, positionals };
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
}

export type FlagToken = NonNullable<ReturnType<typeof parseArgs<{ options: Options; strict: false; allowPositionals: true; tokens: true }>>['tokens']>[number];

/** parseArgs' tokens, unvalidated: for a caller that explains each mistake itself. */
export function flagTokens(argv: readonly string[], options: Options): readonly FlagToken[] {
  return parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true }).tokens;
}
