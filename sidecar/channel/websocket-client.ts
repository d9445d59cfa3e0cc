// The client end of the daemon channel's WebSocket (RFC 6455), the slice of ws's WebSocket API
// that daemon-channel.ts uses, over the socket pair hostinfod spawned the sidecar with. ws's own
// client opens its upgrade through node:http (and loads https, tls, zlib and its deflate
// extension with it): in every sidecar that was about 1.4 MB of the 4 MB it had above a bare
// Node (README, performance). The daemon's end stays ws's WebSocketServer. No extensions, no
// subprotocols; text and binary messages, ping answered, the close handshake as ws does it.
// Framing is frames.ts; this file is the upgrade, the states and the close handshake.

import { createHash, randomFillSync } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { CodedError } from '../../common/coded-error.js';
import { type DecodedFrame, type FrameViolation, FrameDecoder, MASK_BYTES, MAX_CONTROL_PAYLOAD_BYTES, OPCODE, encodeFrame } from './frames.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** The 101 reply's head: ws's server writes a few hundred bytes. */
export const MAX_HEAD_BYTES = 8 * 1024;
/** How long a close we started may wait for the daemon's close frame before the socket goes. */
export const CLOSE_TIMEOUT_MS = 30_000;

export type WebSocketErrorCode = 'WS_UPGRADE_FAILED' | 'WS_CLOSED_BEFORE_OPEN' | 'WS_PROTOCOL_ERROR' | 'WS_INVALID_UTF8' | 'WS_MESSAGE_TOO_BIG';

const CODE_OF_VIOLATION = { 1002: 'WS_PROTOCOL_ERROR', 1007: 'WS_INVALID_UTF8', 1009: 'WS_MESSAGE_TOO_BIG' } as const satisfies Record<FrameViolation['code'], WebSocketErrorCode>;

/** The error event's error for what this side found wrong (the socket's own errors pass as they are). */
export class WebSocketError extends CodedError<WebSocketErrorCode> {}

export interface ChannelWebSocketOptions {
  /** The already connected socket to speak over (ws's option of the same name). */
  readonly createConnection: () => Socket;
  /** The largest message accepted; a larger one closes with 1009. */
  readonly maxPayload: number;
  /** Accepted for ws's signature; no extension is ever negotiated. */
  readonly perMessageDeflate?: false;
}

interface Events {
  open: [];
  message: [data: Buffer, isBinary: boolean];
  error: [error: Error];
  close: [code: number, reason: Buffer];
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;
type ReadyState = typeof CONNECTING | typeof OPEN | typeof CLOSING | typeof CLOSED;

/** Why a 101 reply's head (without its blank line) does not open this connection; undefined when it does. */
export function upgradeProblem(head: string, key: string): string | undefined {
  const [status = '', ...lines] = head.split('\r\n');
  const headers = new Map(lines.map((line) => [line.slice(0, line.indexOf(':')).trim().toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  const accept = createHash('sha1').update(key + GUID).digest('base64');
  return !/^HTTP\/1\.1 101 /.test(status) ? `unexpected upgrade reply ${JSON.stringify(status)}`
    : headers.get('upgrade')?.toLowerCase() !== 'websocket' ? 'the upgrade reply is not to websocket'
    : headers.get('sec-websocket-accept') !== accept ? 'invalid Sec-WebSocket-Accept'
    : headers.has('sec-websocket-extensions') || headers.has('sec-websocket-protocol') ? 'the server chose an extension or subprotocol nobody asked for'
    : undefined;
}

export class WebSocket extends EventEmitter<Events> {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSING = CLOSING;
  static readonly CLOSED = CLOSED;

  #state: ReadyState = CONNECTING;
  readonly #socket: Socket;
  readonly #decoder: FrameDecoder;
  readonly #key = randomFillSync(Buffer.alloc(16)).toString('base64');
  /** The upgrade reply so far; undefined once it is complete. */
  #head: Buffer | undefined = Buffer.alloc(0);
  #closeSent = false;
  #closeCode = 1006;
  #closeReason: Buffer = Buffer.alloc(0);
  #closeTimer: NodeJS.Timeout | undefined;

  constructor(url: string, options: ChannelWebSocketOptions) {
    super();
    this.#decoder = new FrameDecoder(options.maxPayload);
    this.#socket = options.createConnection();
    const { host, pathname } = new URL(url);
    this.#socket.setNoDelay(true);
    this.#socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    this.#socket.on('error', (error) => this.emit('error', error));
    this.#socket.on('end', () => this.#socket.end());
    this.#socket.on('close', () => this.#enter(CLOSED));
    this.#socket.write(`GET ${pathname} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${this.#key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  }

  get readyState(): ReadyState {
    return this.#state;
  }

  send(data: string | Buffer, callback?: (error?: Error | null) => void): void {
    if (this.#state === CONNECTING) throw new Error('WebSocket is not open: readyState 0 (CONNECTING)');
    if (this.#state !== OPEN) {
      if (callback !== undefined) process.nextTick(callback, new Error(`WebSocket is not open: readyState ${this.#state}`));
      return;
    }
    const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.#write(typeof data === 'string' ? OPCODE.text : OPCODE.binary, payload, callback);
  }

  close(code = 1000, reason = ''): void {
    if (this.#state === CLOSED) return;
    if (this.#state === CONNECTING) return this.#fail(new WebSocketError('WS_CLOSED_BEFORE_OPEN', 'WebSocket was closed before the connection was established'), 1006);
    const body = Buffer.from(reason, 'utf8');
    // ws's limit and message: the code's 2 bytes and the reason fill one control frame.
    if (body.length > MAX_CONTROL_PAYLOAD_BYTES - 2) throw new RangeError(`The message must not be greater than ${MAX_CONTROL_PAYLOAD_BYTES - 2} bytes`);
    this.#startClose(code, body);
  }

  terminate(): void {
    if (this.#state === CLOSED) return;
    this.#enter(CLOSING);
    this.#socket.destroy();
  }

  /**
   * The one place the state changes, and only forward (CONNECTING, OPEN, CLOSING, CLOSED, each
   * possibly skipped): entering OPEN is the open event, entering CLOSED the close event.
   */
  #enter(next: ReadyState): void {
    if (next <= this.#state) return;
    this.#state = next;
    if (next === OPEN) this.emit('open');
    else if (next === CLOSED) {
      clearTimeout(this.#closeTimer);
      this.emit('close', this.#closeCode, this.#closeReason);
    }
  }

  #startClose(code: number, reason: Buffer): void {
    this.#enter(CLOSING);
    if (!this.#closeSent) {
      this.#closeSent = true;
      const body = Buffer.alloc(2 + reason.length);
      body.writeUInt16BE(code, 0);
      reason.copy(body, 2);
      this.#write(OPCODE.close, body);
    }
    this.#closeTimer ??= setTimeout(() => this.#socket.destroy(), CLOSE_TIMEOUT_MS);
    this.#closeTimer.unref();
  }

  /** A violation: an error event, a close frame with `code` when open, and the socket goes. */
  #fail(error: Error, code: number): void {
    this.emit('error', error);
    if (this.#state === OPEN) {
      this.#closeCode = code;
      this.#startClose(code, Buffer.alloc(0));
      this.#socket.end();
    } else {
      this.#enter(CLOSING);
      this.#socket.destroy();
    }
  }

  /** A client's frames are masked with a fresh key each (RFC 6455 5.3, 10.3); one write per frame. */
  #write(opcode: number, payload: Buffer, callback?: (error?: Error | null) => void): void {
    this.#socket.write(encodeFrame(opcode, payload, randomFillSync(Buffer.allocUnsafe(MASK_BYTES))), callback);
  }

  #receive(chunk: Buffer): void {
    let frames = chunk;
    if (this.#head !== undefined) {
      const rest = this.#state === CONNECTING ? this.#handshake(chunk) : undefined;
      if (rest === undefined) return;
      frames = rest;
    }
    for (const frame of this.#decoder.push(frames)) {
      // A close of ours in progress still reads the daemon's frames, for its close frame.
      if (this.#state !== OPEN && (this.#state !== CLOSING || this.#socket.destroyed)) return;
      this.#act(frame);
    }
  }

  /** The server's 101, and the bytes that came after it; undefined while incomplete or when it failed. */
  #handshake(chunk: Buffer): Buffer | undefined {
    const head = this.#head === undefined || this.#head.length === 0 ? chunk : Buffer.concat([this.#head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end === -1) {
      this.#head = head;
      if (head.length > MAX_HEAD_BYTES) this.#fail(new WebSocketError('WS_UPGRADE_FAILED', 'the upgrade reply has no end'), 1002);
      return undefined;
    }
    this.#head = undefined;
    const problem = upgradeProblem(head.subarray(0, end).toString('latin1'), this.#key);
    if (problem !== undefined) {
      this.#fail(new WebSocketError('WS_UPGRADE_FAILED', problem), 1002);
      return undefined;
    }
    this.#enter(OPEN);
    // An open listener may have closed it already: then the rest is not read.
    return this.#state === OPEN ? head.subarray(end + 4) : undefined;
  }

  #act(frame: DecodedFrame): void {
    switch (frame.kind) {
      case 'message':
        // Nothing is delivered once a close has begun (ws does the same).
        if (this.#state === OPEN) this.emit('message', frame.data, frame.isBinary);
        return;
      case 'ping':
        if (this.#state === OPEN) this.#write(OPCODE.pong, frame.data);
        return;
      case 'pong':
        return;
      case 'close':
        this.#closeCode = frame.code ?? 1005;
        this.#closeReason = frame.reason;
        // Echo the code (RFC 6455 5.5.1), then the server closes the connection; we end our side.
        this.#startClose(frame.code ?? 1000, Buffer.alloc(0));
        this.#socket.end();
        return;
      case 'violation':
        return this.#fail(new WebSocketError(CODE_OF_VIOLATION[frame.code], frame.message), frame.code);
    }
  }
}
