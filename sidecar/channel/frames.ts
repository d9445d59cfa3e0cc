// RFC 6455 framing for the sidecar's end of its channel to hostinfod: FrameDecoder is fed the
// daemon's bytes (never a socket) and gives back whole messages, control frames, or the one
// violation that ends the connection with its close code; encodeFrame makes a client's masked
// frame. No extension is ever negotiated, so every RSV bit is a violation. Memory is bounded:
// a frame's length is judged from its header, before any of its payload is held, and a payload
// that arrives in pieces is copied once into a buffer of its declared size.

import { isUtf8 } from 'node:buffer';

export const OPCODE = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** RFC 6455 5.5: a control frame carries at most 125 bytes and is never fragmented. */
export const MAX_CONTROL_PAYLOAD_BYTES = 125;
/** A server's frame header: 2 bytes and at most 8 of extended length; no mask key (5.1). */
export const MAX_SERVER_HEADER_BYTES = 10;
/** A client's mask key (5.3). */
export const MASK_BYTES = 4;

/** 1002 protocol error, 1007 invalid UTF-8, 1009 too big (RFC 6455 7.4.1). */
export interface FrameViolation {
  readonly kind: 'violation';
  readonly code: 1002 | 1007 | 1009;
  readonly message: string;
}

export type DecodedFrame =
  | { readonly kind: 'message'; readonly data: Buffer; readonly isBinary: boolean }
  | { readonly kind: 'ping'; readonly data: Buffer }
  | { readonly kind: 'pong'; readonly data: Buffer }
  /** `code` undefined: the close frame had no body (the close event then says 1005). */
  | { readonly kind: 'close'; readonly code: number | undefined; readonly reason: Buffer }
  | FrameViolation;

/**
 * The most a decoder holds: a fragmented message's pieces and the frame in progress are together
 * at most maxPayload, except while that frame is a control frame (interleaved, 5.4), plus a header.
 */
export function decoderBound(maxPayload: number): number {
  return maxPayload + MAX_CONTROL_PAYLOAD_BYTES + MAX_SERVER_HEADER_BYTES;
}

interface FrameInProgress {
  readonly fin: boolean;
  readonly opcode: number;
  readonly length: number;
  /** Allocated at the declared length once the payload does not come in the header's chunk. */
  payload: Buffer | undefined;
  filled: number;
}

const violation = (code: FrameViolation['code'], message: string): FrameViolation => ({ kind: 'violation', code, message });

export class FrameDecoder {
  readonly #maxPayload: number;
  readonly #header = Buffer.alloc(MAX_SERVER_HEADER_BYTES);
  #headerBytes = 0;
  #frame: FrameInProgress | undefined;
  /** The pieces of a fragmented message so far, their total, and its opcode (0: none begun). */
  #fragments: Buffer[] = [];
  #fragmentBytes = 0;
  #fragmentOp = 0;
  /** A close frame or a violation came: nothing after it is read (RFC 6455 5.5.1, 7.1.7). */
  #ended = false;

  constructor(maxPayload: number) {
    this.#maxPayload = maxPayload;
  }

  /** Bytes held for frames and a message not yet complete: never more than decoderBound(maxPayload). */
  get bufferedBytes(): number {
    return this.#headerBytes + (this.#frame?.payload?.length ?? 0) + this.#fragmentBytes;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Everything `chunk` completes, in order; a violation is the last thing ever returned. */
  push(chunk: Buffer): DecodedFrame[] {
    const decoded: DecodedFrame[] = [];
    let at = 0;
    while (!this.#ended && at < chunk.length) {
      at = this.#frame === undefined ? this.#readHeader(chunk, at, decoded) : this.#readPayload(chunk, at, decoded);
    }
    return decoded;
  }

  #readHeader(chunk: Buffer, at: number, decoded: DecodedFrame[]): number {
    const needed = this.#headerBytes < 2 ? 2 : headerLength(this.#header[1] as number);
    const taken = Math.min(needed - this.#headerBytes, chunk.length - at);
    chunk.copy(this.#header, this.#headerBytes, at, at + taken);
    this.#headerBytes += taken;
    if (this.#headerBytes < needed) return at + taken;
    if (needed === 2) {
      const early = this.#judgeFirstBytes();
      if (early !== undefined) {
        this.#fail(early, decoded);
        return chunk.length;
      }
      if (headerLength(this.#header[1] as number) > 2) return at + taken;
    }
    const late = this.#beginFrame();
    if (late !== undefined) {
      this.#fail(late, decoded);
      return chunk.length;
    }
    // An empty payload completes here: no byte may ever come for it.
    if (this.#frame?.length === 0) this.#complete(Buffer.alloc(0), decoded, true);
    return at + taken;
  }

  /** What the first two bytes alone decide. */
  #judgeFirstBytes(): FrameViolation | undefined {
    const first = this.#header[0] as number;
    const opcode = first & 0x0f;
    if ((first & 0x70) !== 0) return violation(1002, 'RSV bits set without an extension');
    if (((this.#header[1] as number) & 0x80) !== 0) return violation(1002, 'a server frame is masked');
    if (opcode >= 8) {
      if (opcode !== OPCODE.close && opcode !== OPCODE.ping && opcode !== OPCODE.pong) return violation(1002, `unexpected opcode ${opcode}`);
      if ((first & 0x80) === 0) return violation(1002, 'bad control frame');
    } else if (opcode === OPCODE.continuation ? this.#fragmentOp === 0 : (opcode !== OPCODE.text && opcode !== OPCODE.binary) || this.#fragmentOp !== 0) {
      return violation(1002, `unexpected opcode ${opcode}`);
    }
    return undefined;
  }

  /** The whole header is in: its length judged before any payload byte is held. */
  #beginFrame(): FrameViolation | undefined {
    const first = this.#header[0] as number;
    const short = (this.#header[1] as number) & 0x7f;
    const opcode = first & 0x0f;
    let length = short;
    if (short === 126) length = this.#header.readUInt16BE(2);
    else if (short === 127) {
      const long = this.#header.readBigUInt64BE(2);
      if (long > BigInt(this.#maxPayload)) return violation(1009, 'message too big');
      length = Number(long);
    }
    this.#headerBytes = 0;
    if (opcode >= 8 && length > MAX_CONTROL_PAYLOAD_BYTES) return violation(1002, 'bad control frame');
    if (opcode < 8 && this.#fragmentBytes + length > this.#maxPayload) return violation(1009, 'message too big');
    this.#frame = { fin: (first & 0x80) !== 0, opcode, length, payload: undefined, filled: 0 };
    return undefined;
  }

  #readPayload(chunk: Buffer, at: number, decoded: DecodedFrame[]): number {
    const frame = this.#frame as FrameInProgress;
    const available = chunk.length - at;
    // The common case, a whole frame in one read: its bytes are used where they are.
    if (frame.payload === undefined && available >= frame.length) {
      this.#complete(chunk.subarray(at, at + frame.length), decoded, false);
      return at + frame.length;
    }
    frame.payload ??= Buffer.allocUnsafe(frame.length);
    const taken = Math.min(frame.length - frame.filled, available);
    chunk.copy(frame.payload, frame.filled, at, at + taken);
    frame.filled += taken;
    if (frame.filled === frame.length) this.#complete(frame.payload, decoded, true);
    return at + taken;
  }

  /** `owned`: the payload is a buffer of its own, not a view of the chunk it came in. */
  #complete(payload: Buffer, decoded: DecodedFrame[], owned: boolean): void {
    const frame = this.#frame as FrameInProgress;
    this.#frame = undefined;
    if (frame.opcode >= 8) return this.#control(frame.opcode, payload, decoded);
    if (frame.opcode !== OPCODE.continuation) this.#fragmentOp = frame.opcode;
    // A fragment held for later is copied out of its chunk: a view would keep the whole chunk
    // (up to 64 kB) alive for each byte, which no bound on payload bytes would see.
    this.#fragments.push(frame.fin || owned ? payload : Buffer.from(payload));
    this.#fragmentBytes += payload.length;
    if (!frame.fin) return;
    const data = this.#fragments.length === 1 ? (this.#fragments[0] as Buffer) : Buffer.concat(this.#fragments, this.#fragmentBytes);
    const isBinary = this.#fragmentOp === OPCODE.binary;
    this.#fragments = [];
    this.#fragmentBytes = 0;
    this.#fragmentOp = 0;
    // UTF-8 is judged on the whole message: a character may straddle two fragments.
    if (!isBinary && !isUtf8(data)) return this.#fail(violation(1007, 'invalid UTF-8 in a text message'), decoded);
    decoded.push({ kind: 'message', data, isBinary });
  }

  #control(opcode: number, payload: Buffer, decoded: DecodedFrame[]): void {
    if (opcode === OPCODE.ping) return void decoded.push({ kind: 'ping', data: payload });
    if (opcode === OPCODE.pong) return void decoded.push({ kind: 'pong', data: payload });
    if (payload.length === 1) return this.#fail(violation(1002, 'a close frame of one byte'), decoded);
    const reason = payload.subarray(2);
    if (!isUtf8(reason)) return this.#fail(violation(1007, 'invalid UTF-8 in a close reason'), decoded);
    this.#ended = true;
    this.#fragments = [];
    this.#fragmentBytes = 0;
    // A copy: the close event's reason outlives the read it came in.
    decoded.push({ kind: 'close', code: payload.length >= 2 ? payload.readUInt16BE(0) : undefined, reason: Buffer.from(reason) });
  }

  /** Ends the decoder on a violation and lets go of everything held. */
  #fail(found: FrameViolation, decoded: DecodedFrame[]): void {
    this.#ended = true;
    this.#headerBytes = 0;
    this.#frame = undefined;
    this.#fragments = [];
    this.#fragmentBytes = 0;
    decoded.push(found);
  }
}

/** The header's length from its second byte: 2, or 4 and 10 with a 16- or 64-bit length. */
function headerLength(second: number): number {
  const short = second & 0x7f;
  return short === 126 ? 4 : short === 127 ? 10 : 2;
}

/**
 * One final client frame: masked with `mask` (RFC 6455 5.3; the caller draws it from a strong
 * source, 10.3), as one buffer so that one write sends it.
 */
export function encodeFrame(opcode: number, payload: Uint8Array, mask: Uint8Array): Buffer {
  if (mask.length !== MASK_BYTES) throw new RangeError(`a mask key is ${MASK_BYTES} bytes, not ${mask.length}`);
  if (opcode >= 8 && payload.length > MAX_CONTROL_PAYLOAD_BYTES) throw new RangeError(`a control frame carries at most ${MAX_CONTROL_PAYLOAD_BYTES} bytes, not ${payload.length}`);
  const length = payload.length;
  const extra = length < 126 ? 0 : length < 0x10000 ? 2 : 8;
  const frame = Buffer.allocUnsafe(2 + extra + MASK_BYTES + length);
  frame[0] = 0x80 | opcode;
  frame[1] = 0x80 | (extra === 0 ? length : extra === 2 ? 126 : 127);
  if (extra === 2) frame.writeUInt16BE(length, 2);
  else if (extra === 8) frame.writeBigUInt64BE(BigInt(length), 2);
  const maskAt = 2 + extra;
  frame.set(mask, maskAt);
  const dataAt = maskAt + MASK_BYTES;
  for (let i = 0; i < length; i += 1) frame[dataAt + i] = (payload[i] as number) ^ (mask[i & 3] as number);
  return frame;
}
