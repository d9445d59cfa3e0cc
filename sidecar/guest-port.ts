// The byte mover between QEMU's hostinfo chardev and the request handler. QEMU is the server on
// that unix socket (server=on,wait=off); the sidecar connects as its one client and reconnects
// whenever the connection drops, so a restarted sidecar picks the VM up again. Nothing here
// interprets bytes: frames go to `respond` and whatever it returns is written back.

import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { GuestLineDecoder, type GuestFrame } from './protocol/line-decoder.js';

export interface Backoff {
  readonly minMs: number;
  readonly maxMs: number;
}

export const GUEST_RECONNECT: Backoff = { minMs: 50, maxMs: 2_000 };

export interface GuestPortEvents {
  connected: [];
  disconnected: [reason: string];
  /** The guest is not reading its replies: input is paused with this many reply bytes queued. */
  backpressure: [queuedBytes: number];
}

export class GuestPort extends EventEmitter<GuestPortEvents> {
  readonly #path: string;
  readonly #respond: (frame: GuestFrame) => string | undefined;
  readonly #backoff: Backoff;
  #socket: Socket | undefined;
  #retryDelay: number;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(path: string, respond: (frame: GuestFrame) => string | undefined, backoff: Backoff = GUEST_RECONNECT) {
    super();
    this.#path = path;
    this.#respond = respond;
    this.#backoff = backoff;
    this.#retryDelay = backoff.minMs;
  }

  get connected(): boolean {
    return this.#socket !== undefined && !this.#socket.connecting && !this.#socket.destroyed;
  }

  start(): void {
    if (this.#closed || this.#socket !== undefined) return;
    const decoder = new GuestLineDecoder();
    const socket = createConnection({ path: this.#path });
    this.#socket = socket;
    let opened = false;
    socket.on('connect', () => {
      opened = true;
      this.#retryDelay = this.#backoff.minMs;
      this.emit('connected');
    });
    // Frames decoded but not answered yet: at most one socket chunk's worth, because reading
    // stops while they wait.
    let queue: GuestFrame[] = [];
    const answerQueued = (): void => {
      // One read can hold thousands of requests: their replies leave in one write, not one each.
      socket.cork();
      try {
        while (queue.length > 0) {
          const frame = queue.shift() as GuestFrame;
          const reply = this.#respond(frame);
          // A guest that writes but never reads: stop answering (and reading) until its replies
          // drain, so unread replies cannot pile up in the sidecar's memory.
          if (reply !== undefined && !socket.write(reply)) {
            socket.pause();
            this.emit('backpressure', socket.writableLength);
            socket.once('drain', answerQueued);
            return;
          }
        }
        socket.resume();
      } finally {
        socket.uncork();
      }
    };
    socket.on('data', (chunk: Buffer) => {
      queue = queue.concat(decoder.push(chunk));
      if (!socket.isPaused()) answerQueued();
    });
    socket.on('error', () => {
      // 'close' follows and handles it; an unhandled 'error' would crash the sidecar.
    });
    socket.on('close', () => {
      if (this.#socket === socket) this.#socket = undefined;
      if (opened) this.emit('disconnected', 'connection closed');
      this.#scheduleReconnect();
    });
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  #scheduleReconnect(): void {
    if (this.#closed) return;
    const delay = this.#retryDelay;
    this.#retryDelay = Math.min(this.#retryDelay * 2, this.#backoff.maxMs);
    this.#retryTimer = setTimeout(() => this.start(), delay);
  }
}
