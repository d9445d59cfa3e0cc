// The daemon's WebSocket side. Sidecars reach it only over the socket pair each was spawned with
// (handed to an HTTP server that never listens), so a connection is bound to its VM from the
// first byte; samples fan out to each sidecar filtered by its VM's policy. The control socket is
// control-server.ts's.

import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { CONTROL_IDLE_MS, ControlServer, SHUTDOWN_GRACE_MS, WS_OPTIONS, frameText, plainHttp } from './control-server.js';
import type { ControlReply, ControlRequest } from './control-messages.js';
import { SILENT_LOG, type Log } from './log.js';
import {
  DAEMON_PROTOCOL, type ErrorMessage, MAX_CLIENT_MESSAGE_BYTES, ProtocolError,
  errorMessage, formatRange, hostItemsOf, negotiate, readEnvelope, sampleMessage, sidecarMessageOf,
} from './messages.js';
import type { HostSnapshot, PartialHostValues } from './sample.js';
import { Subscriber, type SidecarLink } from './subscriber.js';

/** A subscriber whose unsent bytes exceed this gets no new sample until it drains. */
export const DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024;
/** How long a subscriber may stay over the buffered bound before it is disconnected. */
export const DEFAULT_STALL_TIMEOUT_MS = 10_000;

export { CONTROL_IDLE_MS, MAX_CONTROL_CONNECTIONS, SHUTDOWN_GRACE_MS } from './control-server.js';
/** A sidecar answers a query from what it holds: no I/O, so a second is generous. */
export const QUERY_TIMEOUT_MS = 2_000;
/** Queries waiting on one sidecar at once; the control socket's own bound (64) comes first anyway. */
export const MAX_PENDING_QUERIES = 16;

export interface DaemonServerOptions {
  readonly intervalMs: number;
  /** Answers the control socket's requests (HostDaemon.control). */
  readonly control: (request: ControlRequest) => Promise<ControlReply>;
  readonly maxBufferedBytes?: number;
  readonly stallTimeoutMs?: number;
  readonly controlIdleMs?: number;
  /** Monotonic ms; tests inject one to reach the stall timeout without waiting. */
  readonly now?: () => number;
  readonly log?: Log;
}

export interface DaemonServerEvents {
  connected: [link: SidecarLink];
  disconnected: [link: SidecarLink];
  stalled: [link: SidecarLink];
  dropped: [link: SidecarLink];
  protocolError: [link: SidecarLink | undefined, error: ProtocolError];
}

export class DaemonServer extends EventEmitter<DaemonServerEvents> {
  /** Listens on the control socket (single-instance.ts binds it). */
  readonly control: Server;
  readonly #sidecarHttp: Server;
  readonly #sidecarWss: WebSocketServer;
  readonly #control: ControlServer;
  readonly #links = new WeakMap<Socket, SidecarLink>();
  readonly #subscribers = new Set<Subscriber>();
  readonly #options: Required<Omit<DaemonServerOptions, 'log'>> & { log: Log };
  #seq = 0;
  #queryId = 0;
  #latest: HostSnapshot | undefined;

  constructor(options: DaemonServerOptions) {
    super();
    this.#options = {
      maxBufferedBytes: DEFAULT_MAX_BUFFERED_BYTES,
      stallTimeoutMs: DEFAULT_STALL_TIMEOUT_MS,
      controlIdleMs: CONTROL_IDLE_MS,
      now: () => performance.now(),
      log: SILENT_LOG,
      ...options,
    };
    this.#sidecarHttp = plainHttp(this.#options.controlIdleMs);
    this.#sidecarWss = new WebSocketServer({ server: this.#sidecarHttp, ...WS_OPTIONS });
    this.#sidecarWss.on('connection', (ws, request) => this.#acceptSidecar(ws, request));
    this.#sidecarWss.on('error', () => {});
    this.#control = new ControlServer({
      handle: this.#options.control,
      idleMs: this.#options.controlIdleMs,
      log: this.#options.log,
      refused: (error) => this.emit('protocolError', undefined, error),
    });
    this.control = this.#control.http;
  }

  get lastSeq(): number {
    return this.#seq;
  }

  get latest(): { readonly seq: number; readonly snapshot: HostSnapshot } | undefined {
    return this.#latest === undefined ? undefined : { seq: this.#seq, snapshot: this.#latest };
  }

  /** The parent end of a sidecar's socket pair: everything arriving on it speaks for `link`. */
  attachSidecar(socket: Socket, link: SidecarLink): void {
    this.#links.set(socket, link);
    this.#sidecarHttp.emit('connection', socket);
  }

  /** The VM's policy changed: tell its sidecar, and send the newest sample refiltered. */
  refreshAccess(link: SidecarLink): void {
    for (const subscriber of this.#subscribers) {
      if (subscriber.link !== link || subscriber.closing) continue;
      this.#grant(subscriber);
      this.#sendLatest(subscriber, this.#options.now());
    }
  }

  /**
   * What the VM's guest would be answered to `line` now, computed by its sidecar without taking a
   * token. Rejects when the sidecar is not connected, is too old to answer, or does not within
   * `timeoutMs`; every pending query is rejected when its connection ends.
   */
  query(link: SidecarLink, line: string, timeoutMs = QUERY_TIMEOUT_MS): Promise<string> {
    const subscriber = [...this.#subscribers].find((candidate) => candidate.link === link && !candidate.closing && candidate.negotiated);
    if (subscriber === undefined) return Promise.reject(new ProtocolError('REFUSED', `the sidecar of ${link.id} is not connected`));
    if (!subscriber.features.includes('query')) return Promise.reject(new ProtocolError('REFUSED', `the sidecar of ${link.id} is older than hostinfo-ctl query; it answers once restarted`));
    if (subscriber.queries.size >= MAX_PENDING_QUERIES) return Promise.reject(new ProtocolError('REFUSED', `${MAX_PENDING_QUERIES} queries to ${link.id} are already waiting`));
    const id = ++this.#queryId;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => settle(() => reject(new ProtocolError('REFUSED', `the sidecar of ${link.id} did not answer within ${timeoutMs} ms`))), timeoutMs);
      const settle = (then: () => void): void => {
        clearTimeout(timer);
        subscriber.queries.delete(id);
        then();
      };
      subscriber.queries.set(id, { resolve: (reply) => settle(() => resolve(reply)), reject: (error) => settle(() => reject(error)) });
      subscriber.ws.send(JSON.stringify({ v: subscriber.version, type: 'query', id, line }));
    });
  }

  /** Sends a sample to every subscriber; returns its sequence number. */
  publish(snapshot: HostSnapshot): number {
    this.#seq++;
    this.#latest = snapshot;
    const now = this.#options.now();
    // One encoding per distinct item list, shared by every subscriber granted the same.
    const encoded = new Map<string, Buffer>();
    for (const subscriber of this.#subscribers) {
      if (subscriber.closing) continue;
      if (subscriber.buffered() > this.#options.maxBufferedBytes) {
        this.#holdBack(subscriber, now);
        continue;
      }
      let frame = encoded.get(subscriber.key);
      if (frame === undefined) {
        frame = this.#encodeLatest(subscriber);
        encoded.set(subscriber.key, frame);
      }
      subscriber.owed = false;
      subscriber.overSince = undefined;
      subscriber.ws.send(frame, { binary: false });
    }
    return this.#seq;
  }

  /** Closes every connection (close handshake, then cut-off after a grace) and the listener. */
  async close(): Promise<void> {
    const open = [...this.#subscribers].map((s) => s.ws).concat(this.#control.open);
    for (const ws of open) ws.close(1001, 'hostinfod shutting down');
    const grace = setTimeout(() => {
      for (const ws of open) ws.terminate();
    }, SHUTDOWN_GRACE_MS);
    await Promise.all(open.map((ws) => (ws.readyState === ws.CLOSED ? undefined : new Promise((done) => ws.once('close', done)))));
    clearTimeout(grace);
    await new Promise<void>((done) => this.#sidecarWss.close(() => done()));
    await this.#control.close();
  }

  #acceptSidecar(ws: WebSocket, request: IncomingMessage): void {
    const link = this.#links.get(request.socket);
    if (link === undefined) {
      ws.terminate(); // cannot happen: only attachSidecar feeds this server
      return;
    }
    const subscriber = new Subscriber(ws, link);
    const log = this.#options.log;
    this.#subscribers.add(subscriber);
    ws.on('error', (error) => log.warn({ event: 'connection-error', vm: link.id, err: error.message }));
    ws.on('message', (data, isBinary) => this.#receive(subscriber, data, isBinary));
    ws.on('close', () => {
      this.#subscribers.delete(subscriber);
      for (const pending of subscriber.queries.values()) pending.reject(new ProtocolError('REFUSED', `the sidecar of ${link.id} disconnected`));
      link.closed();
      this.emit('disconnected', link);
    });
    subscriber.socket.on('drain', () => {
      if (subscriber.owed) this.#sendLatest(subscriber, this.#options.now());
    });
    this.#grant(subscriber);
    if (this.#latest !== undefined) this.#sendLatest(subscriber, this.#options.now());
    this.emit('connected', link);
  }

  /**
   * The access decision goes first, so no sample can arrive under an older one. It carries the
   * daemon's version range: the first one is the daemon's half of the negotiation.
   */
  #grant(subscriber: Subscriber): void {
    const access = subscriber.link.access();
    subscriber.grant(access.served ? hostItemsOf(access.items) : []);
    subscriber.ws.send(JSON.stringify({ ...access, v: subscriber.version, range: DAEMON_PROTOCOL }));
  }

  #receive(subscriber: Subscriber, data: RawData, isBinary: boolean): void {
    if (subscriber.closing) return;
    const text = frameText(data, isBinary);
    if (text instanceof ProtocolError) return this.#refuse(subscriber, text);
    const envelope = readEnvelope(text, MAX_CLIENT_MESSAGE_BYTES);
    if (!envelope.ok) return this.#refuse(subscriber, envelope.error);
    const { v, type, range } = envelope.message;
    let version = subscriber.version;
    if (type === 'hello' && !subscriber.negotiated) {
      // The sidecar's half: a hello without range is from a sidecar that speaks only its v.
      const agreed = negotiate(DAEMON_PROTOCOL, range, { mine: 'hostinfod', theirs: 'the sidecar' });
      if (!agreed.ok) return this.#refuse(subscriber, agreed.error);
      version = agreed.version;
    } else if (subscriber.negotiated ? v !== version : v < DAEMON_PROTOCOL.min || v > DAEMON_PROTOCOL.max) {
      const expected = subscriber.negotiated ? `${version}, as negotiated` : formatRange(DAEMON_PROTOCOL);
      return this.#refuse(subscriber, new ProtocolError('BAD_VERSION', `frame written in protocol version ${v}; expected ${expected}`));
    }
    const parsed = sidecarMessageOf(envelope.message, version);
    if (!parsed.ok) return this.#refuse(subscriber, parsed.error);
    const message = parsed.message;
    if (message.type === 'hello') {
      const first = !subscriber.negotiated;
      const resend = version !== subscriber.version;
      subscriber.negotiated = true;
      subscriber.version = version;
      subscriber.features = message.features;
      subscriber.link.hello(message);
      // What went out before was written in a version this sidecar does not speak: again, in its.
      if (first && resend && !subscriber.closing) {
        this.#grant(subscriber);
        this.#sendLatest(subscriber, this.#options.now());
      }
    } else if (message.type === 'counters') {
      subscriber.link.counters(message);
    } else if (message.type === 'query-reply') {
      // An id never asked (or already timed out) is ignored: the sidecar cannot answer for others.
      subscriber.queries.get(message.id)?.resolve(message.reply);
    } else {
      // The sidecar refused the daemon (no common version): it closes next.
      this.#options.log.warn({ event: 'sidecar-refused', vm: subscriber.link.id, code: message.code, err: message.message });
      subscriber.closing = true;
      subscriber.ws.close(1008, 'refused by the sidecar');
    }
  }

  #sendLatest(subscriber: Subscriber, now: number): void {
    if (subscriber.closing || this.#latest === undefined) return;
    if (subscriber.buffered() > this.#options.maxBufferedBytes) return this.#holdBack(subscriber, now);
    subscriber.owed = false;
    subscriber.overSince = undefined;
    subscriber.ws.send(this.#encodeLatest(subscriber), { binary: false });
  }

  #holdBack(subscriber: Subscriber, now: number): void {
    subscriber.owed = true;
    if (subscriber.overSince === undefined) {
      subscriber.overSince = now;
      this.#options.log.warn({ event: 'stalled', vm: subscriber.link.id, buffered: subscriber.buffered() });
      this.emit('stalled', subscriber.link);
    } else if (now - subscriber.overSince >= this.#options.stallTimeoutMs) {
      // It has not read for the whole timeout: a close frame would only queue behind the rest.
      this.#options.log.warn({ event: 'dropped', vm: subscriber.link.id, buffered: subscriber.buffered() });
      subscriber.closing = true;
      subscriber.ws.terminate();
      this.emit('dropped', subscriber.link);
    }
  }

  #encodeLatest(subscriber: Subscriber): Buffer {
    const snapshot = this.#latest as HostSnapshot;
    const values: PartialHostValues = {};
    for (const item of subscriber.items) {
      const value = snapshot.values[item];
      if (value !== undefined) (values as Record<string, unknown>)[item] = value;
    }
    return Buffer.from(JSON.stringify(sampleMessage(this.#seq, snapshot, values, subscriber.version)));
  }

  /** One error frame, then the connection closes; nothing else is affected. */
  #refuse(subscriber: Subscriber, error: ProtocolError): void {
    this.#options.log.warn({ event: 'protocol-error', vm: subscriber.link.id, code: error.code, err: error.message });
    subscriber.closing = true;
    const frame: ErrorMessage = errorMessage(error, subscriber.version);
    subscriber.ws.send(JSON.stringify(frame));
    subscriber.ws.close(CLOSE_CODES[error.code] ?? 1008, error.code);
    this.emit('protocolError', subscriber.link, error);
  }
}

/** RFC 6455 close codes: 1003 unacceptable data type, 1009 too big, 1013 try again later. */
const CLOSE_CODES: Partial<Record<ProtocolError['code'], number>> = { BINARY_FRAME: 1003, TOO_LARGE: 1009, SERVER_FULL: 1013 };
