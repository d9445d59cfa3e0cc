// The sidecar's end of its channel to hostinfod: a WebSocket over the socket pair the daemon
// spawned it with (fd 3). No path, no reconnect: the channel is this sidecar's whole relation
// with the daemon, and when it ends the sidecar ends (a restarted daemon starts a new one).

import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import {
  type AccessMessage, type CountersMessage, type ErrorMessage, type HelloMessage, MAX_SERVER_MESSAGE_BYTES,
  type VmCounters, parseToSidecarMessage,
} from '../daemon/messages.js';
import type { HostSnapshot } from '../daemon/sample.js';

export interface ReceivedSample {
  readonly seq: number;
  readonly snapshot: HostSnapshot;
}

export interface DaemonChannelEvents {
  open: [];
  access: [access: AccessMessage];
  sample: [sample: ReceivedSample];
  /** The daemon refused something this side sent; it closes the channel next. */
  refused: [error: ErrorMessage];
  /** Something the daemon sent failed validation; the channel is dropped. */
  invalid: [reason: string];
  closed: [code: number, reason: string];
}

export interface DaemonChannelOptions {
  /**
   * Monotonic ms (default performance.now), stamped on each sample as it arrives. It must be the
   * clock the sidecar measures ages on (SidecarOptions.clock.monotonic, same default).
   */
  readonly monotonic?: () => number;
}

export class DaemonChannel extends EventEmitter<DaemonChannelEvents> {
  readonly #ws: WebSocket;
  readonly #monotonic: () => number;
  #access: AccessMessage | undefined;
  #latest: ReceivedSample | undefined;
  #latestReceivedAt: number | undefined;
  #seq = 0;
  #pending: string[] = [];

  constructor(socket: Socket, options: DaemonChannelOptions = {}) {
    super();
    this.#monotonic = options.monotonic ?? (() => performance.now());
    // ws opens an HTTP upgrade over whatever createConnection returns: here, the inherited pair.
    this.#ws = new WebSocket('ws://hostinfod/', { createConnection: () => socket, maxPayload: MAX_SERVER_MESSAGE_BYTES, perMessageDeflate: false });
    this.#ws.on('open', () => {
      for (const frame of this.#pending.splice(0)) this.#ws.send(frame);
      this.emit('open');
    });
    this.#ws.on('message', (data, isBinary) => {
      if (isBinary) return this.#invalid('binary frame');
      const parsed = parseToSidecarMessage(data.toString());
      if (!parsed.ok) return this.#invalid(parsed.error.message);
      const message = parsed.message;
      if (message.type === 'access') {
        this.#access = message;
        this.emit('access', message);
      } else if (message.type === 'sample') {
        if (message.seq <= this.#seq && message.seq !== this.#latest?.seq) return this.#invalid(`sample seq ${message.seq} after ${this.#seq}`);
        // The same seq again is the same sample refiltered under a new decision: it is no
        // younger than when it first came, so it keeps that arrival time.
        if (message.seq !== this.#latest?.seq) this.#latestReceivedAt = this.#monotonic();
        this.#seq = message.seq;
        this.#latest = { seq: message.seq, snapshot: { takenAt: message.takenAt, values: message.values } };
        this.emit('sample', this.#latest);
      } else {
        this.emit('refused', message);
      }
    });
    this.#ws.on('error', () => {});
    this.#ws.on('close', (code, reason) => this.emit('closed', code, reason.toString()));
  }

  /** The daemon's latest decision for this VM; undefined until it has sent one. */
  get access(): AccessMessage | undefined {
    return this.#access;
  }

  get latest(): ReceivedSample | undefined {
    return this.#latest;
  }

  /**
   * When `latest` arrived, in monotonic ms on this channel's clock; undefined until a sample has.
   * The sample's age is judged on this alone: its takenAt is the daemon's wall clock, epoch ms,
   * which no monotonic clock can be compared with (see HeldSample in request-handler.ts).
   */
  get latestReceivedAt(): number | undefined {
    return this.#latestReceivedAt;
  }

  hello(qmp: HelloMessage['qmp']): void {
    this.#send({ v: 2, type: 'hello', qmp } satisfies HelloMessage);
  }

  reportCounters(counters: VmCounters): void {
    this.#send({ v: 2, type: 'counters', ...counters } satisfies CountersMessage);
  }

  async close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.#ws.once('close', () => resolve());
      this.#ws.close(1000, 'sidecar stopping');
    });
  }

  #send(message: object): void {
    const frame = JSON.stringify(message);
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(frame);
    // Only a hello and a counters report or two can come before the upgrade completes.
    else if (this.#ws.readyState === WebSocket.CONNECTING && this.#pending.length < 8) this.#pending.push(frame);
  }

  #invalid(reason: string): void {
    this.emit('invalid', reason);
    this.#ws.terminate();
  }
}
