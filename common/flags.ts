// The one way flags are parsed here: node:util's parseArgs, strict, no positionals, with its
// error turned into a message for the caller's usage line instead of an exception.

import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
export type FlagValues<O extends Options> = ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: false }>>['values'];

export function parseFlagValues<O extends Options>(argv: readonly string[], options: O): { readonly ok: true; readonly values: FlagValues<O> } | { readonly ok: false; readonly message: string } {
  try {
    const { values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
    return { ok: true, values: values as FlagValues<O> };
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
}
