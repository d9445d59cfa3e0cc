// Splits QMP's server stream into JSON objects. QMP is one JSON value per line; QEMU ends lines
// with "\r\n", the spec only promises a newline, so one CR before the LF is dropped either way.
// Fed bytes, never touches a socket, so every framing fault can be tested without I/O.
//
// The size bound is enforced while buffering, before any JSON.parse: a server (or something
// impersonating one on the socket) cannot make us hold or parse more than MAX_QMP_MESSAGE_BYTES
// for one message. The largest reply we know of, query-qmp-schema on QEMU 7.2, is ~207 KB.

import { QmpOversizeError, QmpProtocolError } from './errors.js';

export const MAX_QMP_MESSAGE_BYTES = 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;

export type QmpJsonObject = Record<string, unknown>;

export type QmpFrame =
  | { readonly kind: 'message'; readonly message: QmpJsonObject }
  /** Terminal: after an error frame the decoder ignores all further input. */
  | { readonly kind: 'error'; readonly error: QmpProtocolError };

export class QmpFrameDecoder {
  readonly #limit: number;
  #chunks: Buffer[] = [];
  #length = 0;
  #failed = false;

  /** `limit` counts a line's bytes without its LF (a CR before the LF counts). */
  constructor(limit: number = MAX_QMP_MESSAGE_BYTES) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`bad QMP message limit ${limit}`);
    this.#limit = limit;
  }

  get failed(): boolean {
    return this.#failed;
  }

  /** Bytes held for an unfinished line; never more than the limit. */
  get bufferedBytes(): number {
    return this.#length;
  }

  push(chunk: Uint8Array): QmpFrame[] {
    const frames: QmpFrame[] = [];
    let start = 0;
    while (!this.#failed && start < chunk.length) {
      const lf = chunk.indexOf(LF, start);
      const end = lf === -1 ? chunk.length : lf;
      if (this.#length + (end - start) > this.#limit) {
        frames.push(this.#fail(new QmpOversizeError(this.#limit)));
        break;
      }
      if (end > start) {
        this.#chunks.push(Buffer.from(chunk.subarray(start, end)));
        this.#length += end - start;
      }
      if (lf === -1) break;
      const line = this.#takeLine();
      start = lf + 1;
      if (line.trim() === '') continue; // tolerate blank lines; they carry nothing
      frames.push(this.#parse(line));
    }
    return frames;
  }

  #takeLine(): string {
    let bytes = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#length);
    this.#chunks = [];
    this.#length = 0;
    if (bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, bytes.length - 1);
    return bytes.toString('utf8');
  }

  #parse(line: string): QmpFrame {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (cause) {
      return this.#fail(new QmpProtocolError(`QMP server sent a line that is not JSON: ${preview(line)}`, { cause }));
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return this.#fail(new QmpProtocolError(`QMP server sent JSON that is not an object: ${preview(line)}`));
    }
    return { kind: 'message', message: value as QmpJsonObject };
  }

  #fail(error: QmpProtocolError): QmpFrame {
    this.#failed = true;
    this.#chunks = [];
    this.#length = 0;
    return { kind: 'error', error };
  }
}

// Error messages end up in logs; never copy a whole hostile line into one.
const preview = (line: string): string => JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line);
