// Every configuration problem, host config or per-VM policy, is one ConfigError: it names the
// file, the line where known, the key, what was expected and what was received, so an
// administrator can fix it from the message alone. `code` is stable for programs and tests.

import { CodedError } from '../common/coded-error.js';

export type ConfigErrorCode =
  | 'CONFIG_READ'
  | 'CONFIG_SYNTAX'
  | 'CONFIG_UNKNOWN_KEY'
  | 'CONFIG_TYPE'
  | 'CONFIG_RANGE'
  | 'CONFIG_UNKNOWN_ITEM';

export interface ConfigErrorDetails {
  readonly file: string;
  readonly line?: number | undefined;
  readonly key?: string | undefined;
  readonly expected?: string | undefined;
  readonly received?: string | undefined;
}

export class ConfigError extends CodedError<ConfigErrorCode> {
  override readonly name = 'ConfigError';
  readonly file: string;
  readonly line: number | undefined;
  readonly key: string | undefined;
  readonly expected: string | undefined;
  readonly received: string | undefined;

  constructor(code: ConfigErrorCode, details: ConfigErrorDetails, problem?: string) {
    super(code, describe(details, problem));
    this.file = details.file;
    this.line = details.line;
    this.key = details.key;
    this.expected = details.expected;
    this.received = details.received;
  }
}

function describe(d: ConfigErrorDetails, problem: string | undefined): string {
  const where = d.line === undefined ? d.file : `${d.file}:${d.line}`;
  const parts: string[] = [];
  if (d.key !== undefined) parts.push(`key "${d.key}"`);
  if (problem !== undefined) parts.push(problem);
  if (d.expected !== undefined) parts.push(`expected ${d.expected}`);
  if (d.received !== undefined) parts.push(`received ${d.received}`);
  return `${where}: ${parts.join(': ')}`;
}

/** How a received value is shown in an error: its TOML-ish rendering, bounded in length. */
export function showValue(value: unknown): string {
  let shown: string;
  if (typeof value === 'string') shown = JSON.stringify(value);
  else if (Array.isArray(value)) shown = `[${value.map(showValue).join(', ')}]`;
  else if (value instanceof Date) shown = `date ${value.toISOString()}`;
  else if (typeof value === 'object' && value !== null) shown = 'a table';
  else shown = String(value);
  return shown.length > 80 ? `${shown.slice(0, 77)}...` : shown;
}
