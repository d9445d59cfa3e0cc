// The subscriber side, for the sidecar (and the admin CLI's status query): connects to the cache
// socket, says hello, keeps the newest sample, reports the VM's counters, and reconnects with
// backoff when the daemon restarts, saying hello again each time.

import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import type { HostItemName } from '../policies/items.js';
import {
  type CountersMessage, type ErrorMessage, type HelloMessage, MAX_SERVER_MESSAGE_BYTES, type ServerMessage, type StatusReply,
  type VmCounters, type VmIdentity, parseServerMessage,
} from './messages.js';
import type { HostSnapshot } from './sample.js';

export interface ReceivedSample {
  readonly seq: number;
  readonly snapshot: HostSnapshot;
}

export interface ReconnectPolicy {
  /** First delay after a lost connection; doubles on each failure up to maxMs. */
  readonly minMs: number;
  readonly maxMs: number;
}

export const DEFAULT_RECONNECT: ReconnectPolicy = { minMs: 100, maxMs: 5_000 };
export const DEFAULT_STATUS_TIMEOUT_MS = 5_000;

export interface CacheClientOptions {
  readonly socketPath: string;
  readonly vm: VmIdentity;
  /** Item names the VM's policy allows; the daemon sends the host items among them. */
  readonly items: readonly string[];
  /** false: do not reconnect (tests, one-shot tools). */
  readonly reconnect?: ReconnectPolicy | false;
}

export interface Disconnect {
  readonly code: number;
  readonly reason: string;
}

export interface CacheClientEvents {
  /** Connected and hello sent. */
  open: [];
  /** The daemon acknowledged a hello: these are the items it will send. */
  subscribed: [items: readonly HostItemName[]];
  sample: [sample: ReceivedSample];
  /** The daemon refused something this client sent; it closes the connection next. */
  refused: [error: ErrorMessage];
  /** Something the daemon sent failed validation; the connection is dropped. */
  invalid: [reason: string];
  disconnected: [info: Disconnect];
}

export class CacheClient extends EventEmitter<CacheClientEvents> {
  private readonly options: CacheClientOptions;
  private items: readonly string[];
  private counters: VmCounters | undefined;
  private ws: WebSocket | undefined;
  private newest: ReceivedSample | undefined;
  private connectionSeq = 0;
  private resendAllowed = false;
  private statusWaiters: { resolve: (reply: StatusReply) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay: number;
  private closed = false;

  constructor(options: CacheClientOptions) {
    super();
    this.options = options;
    this.items = [...options.items];
    this.retryDelay = options.reconnect === false ? 0 : (options.reconnect ?? DEFAULT_RECONNECT).minMs;
  }

  /** The newest sample received, on this or an earlier connection. Check its takenAt for age. */
  get latest(): ReceivedSample | undefined {
    return this.newest;
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  connect(): void {
    if (this.closed || this.ws !== undefined) return;
    const ws = new WebSocket(`ws+unix://${this.options.socketPath}`, { maxPayload: MAX_SERVER_MESSAGE_BYTES, perMessageDeflate: false });
    this.ws = ws;
    this.connectionSeq = 0;
    this.resendAllowed = false;
    ws.on('open', () => {
      this.retryDelay = this.options.reconnect === false ? 0 : (this.options.reconnect ?? DEFAULT_RECONNECT).minMs;
      this.sendHello();
      if (this.counters !== undefined) this.sendCounters(this.counters);
      this.emit('open');
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return this.invalid(ws, 'binary frame');
      const parsed = parseServerMessage(data.toString());
      if (!parsed.ok) return this.invalid(ws, parsed.error.message);
      this.receive(ws, parsed.message);
    });
    // Connection errors are followed by 'close', where reconnecting is decided.
    ws.on('error', () => {});
    ws.on('close', (code, reason) => {
      if (this.ws === ws) this.ws = undefined;
      for (const waiter of this.statusWaiters.splice(0)) {
        clearTimeout(waiter.timer);
        waiter.reject(new Error('connection to hostinfo-cache closed'));
      }
      this.emit('disconnected', { code, reason: reason.toString() });
      this.scheduleReconnect();
    });
  }

  /** Re-subscribe with a new item list (the VM's policy changed), on the same connection. */
  subscribe(items: readonly string[]): void {
    this.items = [...items];
    if (this.connected) this.sendHello();
  }

  /** The VM's running totals; the latest is also re-sent after every reconnect. */
  reportCounters(counters: VmCounters): void {
    this.counters = { ...counters };
    if (this.connected) this.sendCounters(this.counters);
  }

  requestStatus(timeoutMs = DEFAULT_STATUS_TIMEOUT_MS): Promise<StatusReply> {
    const ws = this.ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected to hostinfo-cache'));
    return new Promise((resolve, reject) => {
      // Replies come in request order on one connection, so a FIFO matches them up.
      const timer = setTimeout(() => {
        this.statusWaiters = this.statusWaiters.filter((w) => w.timer !== timer);
        reject(new Error(`no status reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.statusWaiters.push({ resolve, reject, timer });
      ws.send(JSON.stringify({ v: 1, type: 'status' }));
    });
  }

  /** Stops reconnecting and closes the connection. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    if (ws === undefined || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1000, 'client closing');
    });
  }

  private receive(ws: WebSocket, message: ServerMessage): void {
    switch (message.type) {
      case 'sample':
        // Sequence numbers only grow within one connection (a restarted daemon starts over); the
        // one exception is the newest sample sent again, refiltered, right after a re-subscribe.
        if (message.seq < this.connectionSeq || (message.seq === this.connectionSeq && !this.resendAllowed)) {
          return this.invalid(ws, `sample seq ${message.seq} after ${this.connectionSeq}`);
        }
        this.connectionSeq = message.seq;
        this.resendAllowed = false;
        this.newest = { seq: message.seq, snapshot: { takenAt: message.takenAt, values: message.values } };
        this.emit('sample', this.newest);
        return;
      case 'subscribed':
        this.resendAllowed = true;
        this.emit('subscribed', message.items);
        return;
      case 'status': {
        const waiter = this.statusWaiters.shift();
        if (waiter === undefined) return this.invalid(ws, 'unrequested status reply');
        clearTimeout(waiter.timer);
        waiter.resolve(message);
        return;
      }
      case 'error':
        this.emit('refused', message);
        return;
    }
  }

  private invalid(ws: WebSocket, reason: string): void {
    this.emit('invalid', reason);
    ws.terminate();
  }

  private sendHello(): void {
    const hello: HelloMessage = { v: 1, type: 'hello', vm: this.options.vm, items: this.items };
    this.ws?.send(JSON.stringify(hello));
  }

  private sendCounters(counters: VmCounters): void {
    const message: CountersMessage = { v: 1, type: 'counters', ...counters };
    this.ws?.send(JSON.stringify(message));
  }

  private scheduleReconnect(): void {
    if (this.closed || this.options.reconnect === false) return;
    const policy = this.options.reconnect ?? DEFAULT_RECONNECT;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, policy.maxMs);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}

/** One status query on a fresh connection, without subscribing: for the admin CLI. */
export function fetchStatus(socketPath: string, timeoutMs = DEFAULT_STATUS_TIMEOUT_MS): Promise<StatusReply> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws+unix://${socketPath}`, { maxPayload: MAX_SERVER_MESSAGE_BYTES, perMessageDeflate: false });
    const timer = setTimeout(() => finish(new Error(`no status reply within ${timeoutMs} ms`)), timeoutMs);
    function finish(result: StatusReply | Error): void {
      clearTimeout(timer);
      ws.terminate();
      if (result instanceof Error) reject(result);
      else resolve(result);
    }
    ws.on('open', () => ws.send(JSON.stringify({ v: 1, type: 'status' })));
    ws.on('message', (data) => {
      const parsed = parseServerMessage(data.toString());
      if (parsed.ok && parsed.message.type === 'status') finish(parsed.message);
      else finish(new Error(parsed.ok ? `unexpected ${parsed.message.type} frame` : parsed.error.message));
    });
    ws.on('error', (error) => finish(error));
    ws.on('close', () => finish(new Error('connection to hostinfo-cache closed')));
  });
}
