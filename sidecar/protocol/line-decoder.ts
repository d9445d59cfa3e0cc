// Splits the guest's byte stream into request lines. Fed bytes, never touches a socket. Memory is
// bounded by MAX_REQUEST_BYTES whatever the guest sends: a line that outgrows the limit is
// discarded up to its LF and reported once, at that LF. Not earlier: a guest tty in cooked mode
// echoes what it receives into what it is still sending, so a reply that arrived mid-line would
// come back inside the rest of that line and cut it in two.

import { MAX_REQUEST_BYTES } from './limits.js';

const LF = 0x0a;
const CR = 0x0d;
/**
 * V8's own TypedArray search. Buffer#indexOf validates its arguments through Node's error-wrapping
 * helpers on every call, which profiled as a visible share of a request under the 100-VM load.
 */
const indexOf = Uint8Array.prototype.indexOf;

/** `chunk[start, end)` as a Buffer over the same memory: socket chunks are never written again. */
function view(chunk: Uint8Array, start: number, end: number): Buffer {
  return chunk instanceof Buffer ? chunk.subarray(start, end) : Buffer.from(chunk.buffer, chunk.byteOffset + start, end - start);
}

export type GuestFrame =
  /**
   * A complete line without its LF (and without one CR right before the LF); may share the pushed
   * chunk's memory. `maybeTail`: the first line of the stream, whose start this decoder did not
   * see: the guest's tty may have sent its beginning to the host end before this one (the echo of
   * a reply, split by a live migration's switch-over or a sidecar restart).
   */
  | { readonly kind: 'line'; readonly bytes: Buffer; readonly maybeTail: boolean }
  /** A line that exceeded MAX_REQUEST_BYTES, at its LF; `head` is its first bytes, for echo detection. */
  | { readonly kind: 'oversize'; readonly head: Buffer };

export class GuestLineDecoder {
  readonly #pending = Buffer.alloc(MAX_REQUEST_BYTES);
  #length = 0;
  /** No LF seen yet: the line in progress may have begun before this decoder's stream did. */
  #atStart = true;
  #discarding = false;
  /** Discarding because bytes were lost, not because the line grew too long: no frame at the LF. */
  #silent = false;

  /** Bytes held for an unfinished line: never more than MAX_REQUEST_BYTES - 1. */
  get bufferedBytes(): number {
    return this.#length;
  }

  push(chunk: Uint8Array): GuestFrame[] {
    const frames: GuestFrame[] = [];
    let start = 0;
    while (start < chunk.length) {
      const lf = indexOf.call(chunk, LF, start);
      const end = lf === -1 ? chunk.length : lf;
      if (lf !== -1 && this.#length === 0 && !this.#discarding && end - start < MAX_REQUEST_BYTES) {
        // The usual request: a whole line inside one chunk. It is framed where it lies, without
        // a copy into #pending and out again; the bound is the same (content < MAX_REQUEST_BYTES).
        frames.push({ kind: 'line', bytes: view(chunk, start, end > start && chunk[end - 1] === CR ? end - 1 : end), maybeTail: this.#atStart });
        this.#atStart = false;
        start = lf + 1;
        continue;
      }
      if (!this.#discarding) this.#append(chunk.subarray(start, end));
      if (lf === -1) break;
      if (this.#discarding) {
        this.#discarding = false;
        if (this.#silent) this.#silent = false;
        else frames.push({ kind: 'oversize', head: Buffer.from(this.#pending.subarray(0, MAX_REQUEST_BYTES - 1)) });
      } else {
        frames.push({ kind: 'line', bytes: this.#takeLine(), maybeTail: this.#atStart });
      }
      this.#atStart = false;
      this.#length = 0;
      start = lf + 1;
    }
    return frames;
  }

  /**
   * The stream lost bytes here: the line in progress, what is buffered of it and whatever follows
   * up to the next LF, is discarded without a frame. Gluing the head of one line to the tail of
   * another could make a request the guest never sent.
   */
  discardToNextLine(): void {
    this.#length = 0;
    this.#discarding = true;
    this.#silent = true;
  }

  /**
   * The caller dropped these bytes from the stream at this point: no frame comes from any line
   * they touch, and a line that ended with the last of them does not take the next line with it.
   */
  skip(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const lastLf = Uint8Array.prototype.lastIndexOf.call(bytes, LF);
    if (lastLf === -1) {
      this.discardToNextLine();
      return;
    }
    // The line in progress ended inside the skipped bytes; only a line they leave unfinished
    // continues into what comes next.
    this.#atStart = false;
    this.#length = 0;
    this.#discarding = false;
    this.#silent = false;
    if (lastLf < bytes.length - 1) this.discardToNextLine();
  }

  #append(bytes: Uint8Array): void {
    // The LF still has to fit: content may use at most MAX_REQUEST_BYTES - 1 bytes.
    const room = MAX_REQUEST_BYTES - 1 - this.#length;
    if (bytes.length <= room) {
      this.#pending.set(bytes, this.#length);
      this.#length += bytes.length;
      return;
    }
    // The head stays in #pending (nothing more is appended while discarding) until the LF.
    this.#pending.set(bytes.subarray(0, room), this.#length);
    this.#length = MAX_REQUEST_BYTES - 1;
    this.#discarding = true;
  }

  #takeLine(): Buffer {
    let end = this.#length;
    if (end > 0 && this.#pending[end - 1] === CR) end -= 1;
    return Buffer.from(this.#pending.subarray(0, end));
  }
}
