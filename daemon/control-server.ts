// The control socket, the daemon's only socket on the file system (owner-only, see daemon.ts):
// one request (control-messages.ts), one reply, then the connection ends, so a peer that never
// reads holds one reply.
// Sidecars never use it, so whatever happens here cannot keep a VM from being served. Also the
// HTTP and WebSocket settings both of the daemon's servers share.

import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Log } from './log.js';
import { type ControlReply, type ControlRequest, parseControlMessage } from './control-messages.js';
import { MAX_CLIENT_MESSAGE_BYTES, MAX_CLIENT_PAYLOAD_BYTES, ProtocolError, errorMessage } from './messages.js';

/** A control connection must finish its upgrade and ask within this, or it is dropped. */
export const CONTROL_IDLE_MS = 5_000;
/**
 * Control connections at once. Sidecars never use the control socket, so filling it cannot keep a
 * VM from being served; the bound caps what idle or non-reading peers cost: each holds at most one
 * status reply.
 */
export const MAX_CONTROL_CONNECTIONS = 64;
/** On shutdown, how long clients get to answer the close handshake before being cut off. */
export const SHUTDOWN_GRACE_MS = 1_000;

/**
 * Compression over a local socket costs CPU for nothing, and deflate queues frames internally,
 * which would hide backpressure from bufferedAmount.
 */
export const WS_OPTIONS = { maxPayload: MAX_CLIENT_PAYLOAD_BYTES, perMessageDeflate: false, clientTracking: false } as const;

/** An HTTP server that only upgrades, and drops a connection that has not asked within `idleMs`. */
export function plainHttp(idleMs: number): Server {
  const server = createServer((_request, response) => {
    response.writeHead(426, { 'content-type': 'text/plain', connection: 'close' });
    response.end('hostinfod speaks WebSocket only\n');
  });
  server.headersTimeout = idleMs;
  server.requestTimeout = idleMs;
  return server;
}

/** A frame's text, or why it is refused, before any parsing. */
export function frameText(data: RawData, isBinary: boolean): string | ProtocolError {
  if (isBinary) return new ProtocolError('BINARY_FRAME', 'frames must be JSON text');
  const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  if (bytes.length > MAX_CLIENT_MESSAGE_BYTES) return new ProtocolError('TOO_LARGE', `message larger than ${MAX_CLIENT_MESSAGE_BYTES} bytes`);
  return bytes.toString('utf8');
}

export interface ControlServerOptions {
  /** Answers one request; a ProtocolError it throws (REFUSED, NO_SUCH_VM) becomes the error reply. */
  readonly handle: (request: ControlRequest) => Promise<ControlReply>;
  readonly idleMs: number;
  readonly log: Log;
  readonly refused: (error: ProtocolError) => void;
}

export class ControlServer {
  /** Listens on the control socket (single-instance.ts binds it). */
  readonly http: Server;
  readonly #wss: WebSocketServer;
  readonly #open = new Set<WebSocket>();
  readonly #options: ControlServerOptions;

  constructor(options: ControlServerOptions) {
    this.#options = options;
    this.http = plainHttp(options.idleMs);
    this.http.maxConnections = MAX_CONTROL_CONNECTIONS;
    // headersTimeout only counts from a request's first byte: a connection that sends nothing would
    // hold one of the few control slots until its peer leaves. ws clears this socket timeout when
    // it upgrades; the idle timer below takes over from there.
    this.http.timeout = options.idleMs;
    this.#wss = new WebSocketServer({ server: this.http, ...WS_OPTIONS });
    this.#wss.on('connection', (ws) => this.#accept(ws));
    this.#wss.on('error', () => {});
  }

  /** Open control connections, for a shutdown that closes them with the rest. */
  get open(): readonly WebSocket[] {
    return [...this.#open];
  }

  async close(): Promise<void> {
    await new Promise<void>((done) => this.#wss.close(() => done()));
    if (this.http.listening) await new Promise<void>((done) => this.http.close(() => done()));
  }

  #accept(ws: WebSocket): void {
    this.#open.add(ws);
    const { idleMs } = this.#options;
    const idle = setTimeout(() => this.#refuse(ws, new ProtocolError('IDLE', `no request within ${idleMs} ms`)), idleMs);
    ws.on('error', () => {});
    ws.on('close', () => {
      clearTimeout(idle);
      this.#open.delete(ws);
    });
    ws.once('message', (data, isBinary) => {
      clearTimeout(idle);
      const text = frameText(data, isBinary);
      const parsed = text instanceof ProtocolError ? { ok: false as const, error: text } : parseControlMessage(text);
      if (!parsed.ok) return this.#refuse(ws, parsed.error);
      // Nothing more is read from a connection that has its request, so its close frame will
      // never be seen either: the peer gets the idle bound after its reply, then is cut off
      // (rather than held for ws's 30 s close timeout).
      (ws as unknown as { _socket: Socket })._socket.pause();
      void this.#answer(ws, parsed.message);
    });
  }

  async #answer(ws: WebSocket, request: ControlRequest): Promise<void> {
    let reply: object;
    try {
      reply = { ...(await this.#options.handle(request)), v: request.v };
    } catch (error) {
      if (!(error instanceof ProtocolError)) this.#options.log.error({ event: 'control-failed', type: request.type, err: (error as Error).message });
      reply = errorMessage(error instanceof ProtocolError ? error : new ProtocolError('REFUSED', (error as Error).message), request.v);
    }
    ws.send(JSON.stringify(reply), () => ws.close(1000, 'done'));
    setTimeout(() => ws.terminate(), this.#options.idleMs).unref();
  }

  #refuse(ws: WebSocket, error: ProtocolError): void {
    this.#options.log.warn({ event: 'control-refused', code: error.code, err: error.message });
    this.#options.refused(error);
    ws.send(JSON.stringify(errorMessage(error)), () => ws.close(1008, error.code));
    setTimeout(() => ws.terminate(), SHUTDOWN_GRACE_MS).unref();
  }
}
