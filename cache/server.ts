// The WebSocket side of the daemon: accepts sidecars on the unix socket (listening is done by
// single-instance.ts), validates what they send, and fans each published sample out to every
// subscriber, filtered to the items its hello asked for.

import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:http';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import type { HostItemName } from '../policies/items.js';
import { SILENT_LOG, type Log } from './log.js';
import {
  type ClientMessage, type ErrorMessage, MAX_CLIENT_MESSAGE_BYTES, MAX_CLIENT_PAYLOAD_BYTES, ProtocolError,
  type StatusReply, type SubscribedMessage, type VmIdentity, errorMessage, grantedItems, parseClientMessage, sampleMessage,
} from './messages.js';
import { Registry } from './registry.js';
import type { HostSnapshot, PartialHostValues } from './sample.js';
import { Subscriber } from './subscriber.js';

/** Connections beyond this are refused: each costs memory and a slot in every fan-out. */
export const MAX_SUBSCRIBERS = 4096;
/** A subscriber whose unsent bytes exceed this gets no new sample until it drains. */
export const DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024;
/** How long a subscriber may stay over the buffered bound before it is disconnected. */
export const DEFAULT_STALL_TIMEOUT_MS = 10_000;
/** On shutdown, how long clients get to answer the close handshake before being cut off. */
export const SHUTDOWN_GRACE_MS = 1_000;
/** A connection that has not finished its HTTP upgrade by then is dropped. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface CacheServerOptions {
  /** The sampling interval, reported in status replies. */
  readonly intervalMs: number;
  readonly maxBufferedBytes?: number;
  readonly stallTimeoutMs?: number;
  readonly maxSubscribers?: number;
  /** Wall clock, epoch ms; tests inject one to reach the stall timeout without waiting. */
  readonly now?: () => number;
  readonly log?: Log;
}

export interface CacheServerEvents {
  subscribed: [id: number, vm: VmIdentity, items: readonly HostItemName[]];
  disconnected: [id: number];
  /** The subscriber went over the buffered bound and is skipped until it drains. */
  stalled: [id: number];
  /** The subscriber stayed over the bound past the stall timeout and was cut off. */
  dropped: [id: number];
  protocolError: [id: number, error: ProtocolError];
}

export class CacheServer extends EventEmitter<CacheServerEvents> {
  readonly http: Server;
  readonly registry = new Registry<number>();
  private readonly wss: WebSocketServer;
  private readonly subscribers = new Map<number, Subscriber>();
  private readonly options: Required<Omit<CacheServerOptions, 'log'>> & { log: Log };
  private readonly startedAt: number;
  private nextId = 1;
  private seq = 0;
  private latest: HostSnapshot | undefined;

  constructor(options: CacheServerOptions) {
    super();
    this.options = {
      maxBufferedBytes: DEFAULT_MAX_BUFFERED_BYTES,
      stallTimeoutMs: DEFAULT_STALL_TIMEOUT_MS,
      maxSubscribers: MAX_SUBSCRIBERS,
      now: Date.now,
      log: SILENT_LOG,
      ...options,
    };
    this.startedAt = this.options.now();
    this.http = createServer((_request, response) => {
      response.writeHead(426, { 'content-type': 'text/plain', connection: 'close' });
      response.end('hostinfo-cache speaks WebSocket only\n');
    });
    this.http.headersTimeout = HANDSHAKE_TIMEOUT_MS;
    this.http.requestTimeout = HANDSHAKE_TIMEOUT_MS;
    this.wss = new WebSocketServer({
      server: this.http,
      maxPayload: MAX_CLIENT_PAYLOAD_BYTES,
      // Compression over a local socket costs CPU for nothing, and deflate queues frames
      // internally, which would hide backpressure from bufferedAmount.
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.wss.on('connection', (ws) => this.accept(ws));
    // Errors of the listening server itself surface through http's 'error'.
    this.wss.on('error', () => {});
  }

  /** The newest sample's sequence number, 0 before the first. */
  get lastSeq(): number {
    return this.seq;
  }

  /** Sends a sample to every subscriber; returns its sequence number. */
  publish(snapshot: HostSnapshot): number {
    this.seq++;
    this.latest = snapshot;
    const now = this.options.now();
    // One encoding per distinct item list, shared by every subscriber that asked for the same.
    const encoded = new Map<string, Buffer>();
    for (const subscriber of this.subscribers.values()) {
      if (subscriber.items === undefined || subscriber.closing) continue;
      if (subscriber.buffered() > this.options.maxBufferedBytes) {
        this.holdBack(subscriber, now);
        continue;
      }
      let frame = encoded.get(subscriber.key);
      if (frame === undefined) {
        frame = this.encodeLatest(subscriber.items);
        encoded.set(subscriber.key, frame);
      }
      subscriber.owed = false;
      subscriber.overSince = undefined;
      subscriber.ws.send(frame, { binary: false });
    }
    return this.seq;
  }

  status(): StatusReply {
    return {
      v: 1,
      type: 'status',
      pid: process.pid,
      startedAt: this.startedAt,
      intervalMs: this.options.intervalMs,
      seq: this.latest === undefined ? null : this.seq,
      takenAt: this.latest?.takenAt ?? null,
      vmcount: this.registry.vmCount(),
      vms: this.registry.list(),
    };
  }

  /** Closes every connection (close handshake, then cut-off after a grace) and the listener. */
  async close(): Promise<void> {
    const open = [...this.subscribers.values()];
    for (const subscriber of open) subscriber.ws.close(1001, 'hostinfo-cache shutting down');
    const grace = setTimeout(() => {
      for (const subscriber of this.subscribers.values()) subscriber.ws.terminate();
    }, SHUTDOWN_GRACE_MS);
    await Promise.all(open.map((s) => (s.ws.readyState === s.ws.CLOSED ? undefined : new Promise((done) => s.ws.once('close', done)))));
    clearTimeout(grace);
    await new Promise<void>((done) => this.wss.close(() => done()));
    if (this.http.listening) await new Promise<void>((done) => this.http.close(() => done()));
  }

  private accept(ws: WebSocket): void {
    const subscriber = new Subscriber(this.nextId++, ws);
    const log = this.options.log;
    ws.on('error', (error) => log.warn({ event: 'connection-error', connection: subscriber.id, err: error.message }));
    if (this.subscribers.size >= this.options.maxSubscribers) {
      this.refuse(subscriber, new ProtocolError('SERVER_FULL', `more than ${this.options.maxSubscribers} connections`));
      return;
    }
    this.subscribers.set(subscriber.id, subscriber);
    log.debug({ event: 'connected', connection: subscriber.id });
    ws.on('message', (data, isBinary) => this.receive(subscriber, data, isBinary));
    ws.on('close', () => {
      this.subscribers.delete(subscriber.id);
      this.registry.remove(subscriber.id);
      log.info({ event: 'disconnected', connection: subscriber.id, vm: subscriber.vm?.name });
      this.emit('disconnected', subscriber.id);
    });
    subscriber.socket.on('drain', () => this.pay(subscriber));
  }

  private receive(subscriber: Subscriber, data: RawData, isBinary: boolean): void {
    if (subscriber.closing) return;
    if (isBinary) return this.refuse(subscriber, new ProtocolError('BINARY_FRAME', 'frames must be JSON text'));
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (bytes.length > MAX_CLIENT_MESSAGE_BYTES) {
      return this.refuse(subscriber, new ProtocolError('TOO_LARGE', `message larger than ${MAX_CLIENT_MESSAGE_BYTES} bytes`));
    }
    const parsed = parseClientMessage(bytes.toString('utf8'));
    if (!parsed.ok) return this.refuse(subscriber, parsed.error);
    this.handle(subscriber, parsed.message);
  }

  private handle(subscriber: Subscriber, message: ClientMessage): void {
    const now = this.options.now();
    switch (message.type) {
      case 'hello': {
        const items = grantedItems(message.items);
        const vm = { name: message.vm.name, uuid: message.vm.uuid, pid: message.vm.pid };
        subscriber.subscribe(vm, items);
        this.registry.subscribe(subscriber.id, vm, items, now);
        this.options.log.info({ event: 'subscribed', connection: subscriber.id, vm, items });
        const ack: SubscribedMessage = { v: 1, type: 'subscribed', items };
        subscriber.ws.send(JSON.stringify(ack));
        // A new (or narrowed) subscription gets the newest sample at once, filtered by the new list,
        // rather than waiting up to an interval.
        if (this.latest !== undefined) this.sendLatest(subscriber, now);
        this.emit('subscribed', subscriber.id, vm, items);
        return;
      }
      case 'counters':
        if (!this.registry.report(subscriber.id, message, now)) {
          this.refuse(subscriber, new ProtocolError('NOT_SUBSCRIBED', 'counters before hello'));
        }
        return;
      case 'status':
        subscriber.ws.send(JSON.stringify(this.status()));
        return;
    }
  }

  private sendLatest(subscriber: Subscriber, now: number): void {
    if (subscriber.items === undefined || subscriber.closing) return;
    if (subscriber.buffered() > this.options.maxBufferedBytes) return this.holdBack(subscriber, now);
    subscriber.owed = false;
    subscriber.overSince = undefined;
    subscriber.ws.send(this.encodeLatest(subscriber.items), { binary: false });
  }

  /** The socket drained: send the sample it is owed, which is by now the newest. */
  private pay(subscriber: Subscriber): void {
    if (subscriber.owed) this.sendLatest(subscriber, this.options.now());
  }

  private holdBack(subscriber: Subscriber, now: number): void {
    subscriber.owed = true;
    if (subscriber.overSince === undefined) {
      subscriber.overSince = now;
      this.options.log.warn({ event: 'stalled', connection: subscriber.id, vm: subscriber.vm?.name, buffered: subscriber.buffered() });
      this.emit('stalled', subscriber.id);
    } else if (now - subscriber.overSince >= this.options.stallTimeoutMs) {
      // It has not read for the whole timeout: a close frame would only queue behind the rest.
      this.options.log.warn({ event: 'dropped', connection: subscriber.id, vm: subscriber.vm?.name, buffered: subscriber.buffered() });
      subscriber.closing = true;
      this.registry.remove(subscriber.id);
      subscriber.ws.terminate();
      this.emit('dropped', subscriber.id);
    }
  }

  private encodeLatest(items: readonly HostItemName[]): Buffer {
    const snapshot = this.latest as HostSnapshot;
    const values: PartialHostValues = {};
    for (const item of items) {
      const value = snapshot.values[item];
      if (value !== undefined) (values as Record<string, unknown>)[item] = value;
    }
    return Buffer.from(JSON.stringify(sampleMessage(this.seq, snapshot, values)));
  }

  /** One error frame, then the connection closes; nothing else is affected. */
  private refuse(subscriber: Subscriber, error: ProtocolError): void {
    this.options.log.warn({ event: 'protocol-error', connection: subscriber.id, code: error.code, err: error.message });
    subscriber.closing = true;
    this.registry.remove(subscriber.id);
    const frame: ErrorMessage = errorMessage(error);
    subscriber.ws.send(JSON.stringify(frame));
    subscriber.ws.close(CLOSE_CODES[error.code] ?? 1008, error.code);
    this.emit('protocolError', subscriber.id, error);
  }
}

/** RFC 6455 close codes: 1003 unacceptable data type, 1009 too big, 1013 try again later. */
const CLOSE_CODES: Partial<Record<ProtocolError['code'], number>> = { BINARY_FRAME: 1003, TOO_LARGE: 1009, SERVER_FULL: 1013 };
