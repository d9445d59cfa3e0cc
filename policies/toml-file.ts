// Reading a TOML document into a plain table, with syntax errors turned into ConfigErrors and a
// best-effort line lookup for semantic errors (the parser keeps no positions for values).

import { parse, TomlError } from 'smol-toml';
import { ConfigError } from './config-error.js';

export type TomlTable = Record<string, unknown>;

/** Policy and config files are a few hundred bytes; anything this large is a mistake or hostile. */
export const MAX_CONFIG_BYTES = 64 * 1024;

export function parseTomlDocument(text: string, file: string): TomlTable {
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) {
    throw new ConfigError('CONFIG_RANGE', { file, expected: `at most ${MAX_CONFIG_BYTES} bytes`, received: `${Buffer.byteLength(text)} bytes` }, 'file too large');
  }
  try {
    return parse(text) as TomlTable;
  } catch (error) {
    if (error instanceof TomlError) {
      const firstLine = error.message.split('\n', 1)[0] ?? 'invalid TOML';
      throw new ConfigError('CONFIG_SYNTAX', { file, line: error.line }, firstLine.replace(/^Invalid TOML document: /, 'invalid TOML: '));
    }
    throw error;
  }
}

/**
 * The 1-based line on which `key` is assigned, in `table` (undefined for the top level). Only
 * plain `key =` lines and `[table]` headers (the line of a top-level table key) are recognised;
 * anything fancier yields undefined, and the error is still precise without a line.
 */
export function lineOfKey(text: string, key: string, table?: string): number | undefined {
  const lines = text.split('\n');
  let current: string | undefined;
  for (let index = 0; index < lines.length; index += 1) {
    const line = (lines[index] ?? '').trim();
    const header = /^\[\s*([A-Za-z0-9_-]+)\s*\]/.exec(line);
    if (header) {
      if (table === undefined && header[1] === key) return index + 1;
      current = header[1];
      continue;
    }
    if (current !== table) continue;
    const assignment = /^"?([A-Za-z0-9_-]+)"?\s*=/.exec(line);
    if (assignment?.[1] === key) return index + 1;
  }
  return undefined;
}

export function typeName(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value instanceof Date) return 'date';
  if (typeof value === 'object' && value !== null) return 'table';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'float';
  return typeof value;
}
