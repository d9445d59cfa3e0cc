// The byte mover between QEMU's hostinfo chardev and the request handler. Usually QEMU is the
// server on that unix socket (server=on,wait=off); the sidecar connects as its one client and
// reconnects whenever the connection drops, so a restarted sidecar picks the VM up again. A
// launcher may instead hand over an already connected descriptor, which cannot be reopened.
// Nothing here interprets bytes: a decoder (the line protocol's by default, or vhostmd's) makes
// frames of them, frames go to `respond` and whatever it returns is written back.
// What the guest may cost is bounded by a GuestBudget: input over it is dropped and reading
// pauses, so the guest's writes block in QEMU rather than the sidecar spending a core on them.

import { EventEmitter } from 'node:events';
import { createConnection, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { FRESH_GUEST_BUDGET, spendGuestBudget, validateGuestBudget, type GuestBudget, type GuestBudgetState } from './guest-budget.js';
import { GuestLineDecoder, type GuestFrame } from './protocol/line-decoder.js';
import { Backoff, type BackoffPolicy } from '../common/backoff.js';

export const GUEST_RECONNECT: BackoffPolicy = { minMs: 50, maxMs: 2_000 };

/** Turns the guest's bytes into frames; one per connection, never touching the socket. */
export interface FrameDecoder<F> {
  push(chunk: Uint8Array): F[];
  /** These bytes were dropped from the stream here (the flood budget): no frame may span them. */
  skip(bytes: Uint8Array): void;
}

const lineDecoder = (): FrameDecoder<GuestFrame> => new GuestLineDecoder();
/** The empty queue, shared: never written to (a queue is replaced, not appended to). */
const NO_FRAMES: readonly never[] = Object.freeze([]);

export interface GuestPortOptions<F = GuestFrame> {
  /** Returns a socket: a new connection (path mode) or a pre-connected one (fd mode, reconnect must be false). */
  readonly connect: () => Socket;
  /** Backoff between reconnects; false: a dropped connection is final (emit 'disconnected' then 'ended'). */
  readonly reconnect: BackoffPolicy | false;
  /** A fresh decoder for each connection; default the line protocol's (F is then GuestFrame). */
  readonly decoder?: () => FrameDecoder<F>;
  readonly respond: (frame: F) => string | undefined;
  readonly budget: GuestBudget;
  /** Monotonic ms; default performance.now. */
  readonly now?: () => number;
}

export interface GuestPortEvents {
  connected: [];
  disconnected: [reason: string];
  /** The guest is not reading its replies: input is paused with this many reply bytes queued. */
  backpressure: [queuedBytes: number];
  /**
   * The guest sent more than its budget: this much of it was dropped, and reading pauses for
   * pausedMs, to the end of the budget window. Reading stays paused for the rest of the window,
   * so this comes at most once per window.
   */
  throttled: [dropped: { bytes: number; lines: number }, pausedMs: number];
  /** The connection is gone and reconnect is false: the port will not connect again. */
  ended: [];
}

/** Connects to a unix socket path afresh on every call. */
export function pathConnector(path: string): () => Socket {
  return () => createConnection({ path });
}

/**
 * Wraps an already connected descriptor. Once only: the socket owns the descriptor and closes it,
 * and a second socket on the same number could be reading someone else's file.
 */
export function fdConnector(fd: number): () => Socket {
  let used = false;
  return () => {
    if (used) throw new Error(`fd ${fd} was already handed to a socket; a pre-connected guest port cannot reconnect`);
    used = true;
    return new Socket({ fd, readable: true, writable: true });
  };
}

export class GuestPort<F = GuestFrame> extends EventEmitter<GuestPortEvents> {
  readonly #connect: () => Socket;
  readonly #reconnect: Backoff | undefined;
  readonly #newDecoder: () => FrameDecoder<F>;
  readonly #respond: (frame: F) => string | undefined;
  readonly #now: () => number;
  #budget: GuestBudget;
  // Per port, not per connection: the guest behind a new connection is the same guest.
  #budgetState: GuestBudgetState = FRESH_GUEST_BUDGET;
  #socket: Socket | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #pauseTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Drops the current connection's partial frame; set by start(). */
  #forget: (() => void) | undefined;

  constructor(options: GuestPortOptions<F>) {
    super();
    this.#connect = options.connect;
    this.#reconnect = options.reconnect === false ? undefined : new Backoff(options.reconnect);
    // Without a decoder the type parameter is its default, GuestFrame: the line decoder's frames.
    this.#newDecoder = options.decoder ?? (lineDecoder as unknown as () => FrameDecoder<F>);
    this.#respond = options.respond;
    this.#budget = validateGuestBudget(options.budget);
    this.#now = options.now ?? (() => performance.now());
  }

  get connected(): boolean {
    return this.#socket !== undefined && !this.#socket.connecting && !this.#socket.destroyed;
  }

  /**
   * Takes effect from the next chunk read. A pause already under way runs to its window's end:
   * a raised budget does not undo a cut that was right when it was made.
   */
  setBudget(budget: GuestBudget): void {
    this.#budget = validateGuestBudget(budget);
  }

  /**
   * The guest closed or reopened the port (QMP VSERPORT_CHANGE): what was sent of a request that
   * is not complete is dropped, so that the next opener's request is not glued to it. Complete
   * requests are not touched: each gets its reply.
   */
  resetDecoder(): void {
    this.#forget?.();
  }

  /** Throws what `connect` throws: a connector that cannot make a socket is a setup error. */
  start(): void {
    if (this.#closed || this.#socket !== undefined) return;
    const socket = this.#connect();
    this.#socket = socket;
    let decoder = this.#newDecoder();
    let opened = false;
    const open = (): void => {
      opened = true;
      this.#reconnect?.reset();
      this.emit('connected');
    };
    // Two independent reasons to stop reading; the socket reads again only when neither holds.
    let writeBlocked = false;
    let throttledUntil: number | undefined;
    // Frames decoded but not answered yet: at most one socket chunk's worth, because reading
    // stops while they wait.
    let queue: readonly F[] = NO_FRAMES;
    this.#forget = () => {
      decoder = this.#newDecoder();
    };
    const answerQueued = (): void => {
      writeBlocked = false;
      // One read can hold thousands of requests: their replies leave in one write, not one each.
      // A single reply (the usual read) goes straight out: corking it only adds a buffered pass.
      const corked = queue.length > 1;
      if (corked) socket.cork();
      let answered = 0;
      try {
        while (answered < queue.length) {
          const reply = this.#respond(queue[answered++] as F);
          // A guest that writes but never reads: stop answering (and reading) until its replies
          // drain, so unread replies cannot pile up in the sidecar's memory.
          if (reply !== undefined && !socket.write(reply)) {
            writeBlocked = true;
            socket.pause();
            this.emit('backpressure', socket.writableLength);
            socket.once('drain', answerQueued);
            return;
          }
        }
      } finally {
        // What was answered leaves the queue, also when a reply blocked or respond threw.
        queue = answered === queue.length ? NO_FRAMES : queue.slice(answered);
        if (corked) socket.uncork();
      }
      if (throttledUntil === undefined && socket.isPaused()) socket.resume();
    };
    const resumeWhenDue = (): void => {
      if (throttledUntil === undefined) return;
      const wait = throttledUntil - this.#now();
      // Node's timers run on the event loop's cached clock and may fire a little before the
      // monotonic clock reaches the window's end; resuming early would read into a closed window.
      if (wait > 0) {
        this.#pauseTimer = setTimeout(resumeWhenDue, Math.ceil(wait));
        return;
      }
      throttledUntil = undefined;
      this.#pauseTimer = undefined;
      if (!writeBlocked) socket.resume();
    };
    socket.on('data', (chunk: Buffer) => {
      const now = this.#now();
      const decision = spendGuestBudget(this.#budget, this.#budgetState, chunk, now);
      this.#budgetState = decision.state;
      const frames = decoder.push(decision.accepted === chunk.length ? chunk : chunk.subarray(0, decision.accepted));
      queue = queue.length === 0 ? frames : queue.concat(frames);
      if (decision.droppedBytes > 0) decoder.skip(chunk.subarray(decision.accepted));
      const resumeAt = decision.resumeAt;
      if (resumeAt !== undefined) {
        // Paused before answering, so that answering does not resume reading.
        socket.pause();
        if (throttledUntil === undefined) this.#pauseTimer = setTimeout(resumeWhenDue, Math.max(0, Math.ceil(resumeAt - now)));
        // A later window than the one being waited out (only bytes read before the pause took
        // effect can get here): the running timer re-arms for it when it fires.
        throttledUntil = Math.max(throttledUntil ?? resumeAt, resumeAt);
      }
      if (!writeBlocked) answerQueued();
      if (resumeAt !== undefined && decision.droppedBytes > 0) {
        this.emit('throttled', { bytes: decision.droppedBytes, lines: decision.droppedLines }, Math.max(0, resumeAt - now));
      }
    });
    socket.on('error', () => {
      // 'close' follows and handles it; an unhandled 'error' would crash the sidecar.
    });
    const onClose = (): void => {
      if (this.#socket === socket) {
        this.#socket = undefined;
        clearTimeout(this.#pauseTimer);
        this.#pauseTimer = undefined;
      }
      if (opened) this.emit('disconnected', 'connection closed');
      if (this.#reconnect === undefined) {
        if (this.#closed) return;
        this.#closed = true;
        this.emit('ended');
        return;
      }
      this.#scheduleReconnect(this.#reconnect);
    };
    // A pre-connected socket (fd mode) never emits 'connect', and one that closed before it was
    // handed over will not emit 'close' again.
    if (socket.closed) {
      process.nextTick(onClose);
      return;
    }
    socket.on('close', onClose);
    if (socket.connecting) socket.once('connect', open);
    else if (!socket.destroyed) open();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#pauseTimer);
    this.#pauseTimer = undefined;
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  #scheduleReconnect(backoff: Backoff): void {
    if (this.#closed) return;
    this.#retryTimer = setTimeout(() => this.#restart(), backoff.next());
  }

  #restart(): void {
    try {
      this.start();
    } catch {
      // Nobody to throw to from a timer, and the same connector would throw again: the end.
      this.#closed = true;
      this.emit('ended');
    }
  }
}
