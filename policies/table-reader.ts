// Typed, validating access to one TOML table. Both the host config and the per-VM policies read
// through it, so every key in every file is checked the same way and every error carries file,
// line, key, expected and received.

import { ConfigError, showValue } from './config-error.js';
import { lineOfKey, typeName, type TomlTable } from './toml-file.js';

export class TableReader {
  readonly #table: TomlTable;
  readonly #text: string;
  readonly #file: string;
  readonly #tableName: string | undefined;

  constructor(table: TomlTable, text: string, file: string, tableName?: string) {
    this.#table = table;
    this.#text = text;
    this.#file = file;
    this.#tableName = tableName;
  }

  /** Rejects any key not in `known`: a typo must not silently become a default. */
  rejectUnknownKeys(known: readonly string[]): void {
    for (const key of Object.keys(this.#table)) {
      if (!known.includes(key)) {
        throw this.error('CONFIG_UNKNOWN_KEY', key, `one of ${known.join(', ')}`, JSON.stringify(key), 'unknown key');
      }
    }
  }

  has(key: string): boolean {
    return Object.hasOwn(this.#table, key);
  }

  boolean(key: string, fallback: boolean): boolean {
    if (!this.has(key)) return fallback;
    const value = this.#table[key];
    if (typeof value !== 'boolean') throw this.#typeError(key, 'a boolean (true or false)', value);
    return value;
  }

  string(key: string, fallback: string): string {
    if (!this.has(key)) return fallback;
    const value = this.#table[key];
    if (typeof value !== 'string') throw this.#typeError(key, 'a string', value);
    if (value.length === 0) throw this.error('CONFIG_RANGE', key, 'a non-empty string', '""');
    return value;
  }

  /** A finite number of seconds greater than zero; TOML integers and floats both accepted. */
  positiveSeconds(key: string, fallback: number): number {
    if (!this.has(key)) return fallback;
    const value = this.#table[key];
    if (typeof value !== 'number') throw this.#typeError(key, 'a number of seconds', value);
    if (!Number.isFinite(value) || value <= 0) {
      throw this.error('CONFIG_RANGE', key, 'a finite number of seconds greater than 0', showValue(value));
    }
    return value;
  }

  integerAtLeast(key: string, minimum: number, fallback: number): number {
    if (!this.has(key)) return fallback;
    const value = this.#table[key];
    if (typeof value !== 'number' || !Number.isInteger(value)) throw this.#typeError(key, `an integer >= ${minimum}`, value);
    if (value < minimum || !Number.isSafeInteger(value)) {
      throw this.error('CONFIG_RANGE', key, `an integer >= ${minimum}`, showValue(value));
    }
    return value;
  }

  /** Returns undefined when the key is absent, so callers can tell "omitted" from "empty". */
  stringArray(key: string): readonly string[] | undefined {
    if (!this.has(key)) return undefined;
    const value = this.#table[key];
    if (!Array.isArray(value)) throw this.#typeError(key, 'an array of strings', value);
    value.forEach((element: unknown, index) => {
      if (typeof element !== 'string') throw this.#typeError(`${key}[${index}]`, 'a string', element, key);
    });
    return value as string[];
  }

  subTable(key: string): TableReader | undefined {
    if (!this.has(key)) return undefined;
    const value = this.#table[key];
    if (typeName(value) !== 'table') throw this.#typeError(key, 'a table', value);
    return new TableReader(value as TomlTable, this.#text, this.#file, key);
  }

  /** `lineKey` names the key whose line to report when `key` is an element path like allow[2]. */
  error(code: ConfigError['code'], key: string, expected: string, received: string, problem?: string, lineKey = key): ConfigError {
    const qualified = this.#tableName === undefined ? key : `${this.#tableName}.${key}`;
    return new ConfigError(code, {
      file: this.#file,
      line: lineOfKey(this.#text, lineKey, this.#tableName),
      key: qualified,
      expected,
      received,
    }, problem);
  }

  #typeError(key: string, expected: string, value: unknown, lineKey = key): ConfigError {
    return this.error('CONFIG_TYPE', key, expected, `${typeName(value)} ${showValue(value)}`, undefined, lineKey);
  }
}
