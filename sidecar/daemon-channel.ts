// The sidecar's end of its channel to hostinfod: a WebSocket over the socket pair the daemon
// spawned it with (fd 3). No path, no reconnect: the channel is this sidecar's whole relation
// with the daemon, and when it ends the sidecar ends (a restarted daemon starts a new one).
//
// The daemon may be older than this file (npm replaced the package under a running daemon, which
// spawns what is installed now). Its first frame, `access`, says which protocol versions it speaks
// (none said: just its v); nothing is sent before it, and then everything in the highest version
// both speak. A daemon that announced no range gets its own shape back (no range key, which it
// would refuse as unknown).

import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  type AccessMessage, DAEMON_PROTOCOL, type ErrorMessage, type HelloMessage, MAX_SERVER_MESSAGE_BYTES, SIDECAR_FEATURES,
  type VmCounters, negotiate, readEnvelope, toSidecarMessageOf,
} from '../daemon/messages.js';
import type { HostSnapshot } from '../daemon/sample.js';
import type { Access } from '../policies/access.js';
import { WebSocket } from './channel/websocket-client.js';

export interface ReceivedSample {
  readonly seq: number;
  readonly snapshot: HostSnapshot;
}

export interface DaemonChannelEvents {
  open: [];
  access: [access: AccessMessage];
  sample: [sample: ReceivedSample];
  /** hostinfo-ctl query: answer with answerQuery(id, reply). */
  query: [id: number, line: string];
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

/** The daemon's decision in the request handler's terms. */
export function accessOf(message: AccessMessage): Access {
  return message.served
    ? { served: true, policy: { file: message.file ?? '(daemon)', enabled: true, items: message.items, limit: message.limit } }
    : { served: false, reason: message.reason ?? 'not served' };
}

export class DaemonChannel extends EventEmitter<DaemonChannelEvents> {
  readonly #ws: WebSocket;
  readonly #monotonic: () => number;
  #access: AccessMessage | undefined;
  #latest: ReceivedSample | undefined;
  #latestReceivedAt: number | undefined;
  #seq = 0;
  /** Frames to send once the channel is open and the version negotiated (a hello, a counters report). */
  #pending: Array<(v: number) => object> = [];
  /** The negotiated version; undefined before the daemon's first frame. */
  #version: number | undefined;
  /** The daemon announced its range, so it understands ours. */
  #announced = false;
  /** A frame in #version has arrived: from now on every frame must be in it. */
  #synced = false;
  /** This side refused the daemon and is closing: nothing more is read. */
  #refused = false;

  constructor(socket: Socket, options: DaemonChannelOptions = {}) {
    super();
    this.#monotonic = options.monotonic ?? (() => performance.now());
    // The upgrade goes over whatever createConnection returns (ws's option): here, the inherited pair.
    this.#ws = new WebSocket('ws://hostinfod/', { createConnection: () => socket, maxPayload: MAX_SERVER_MESSAGE_BYTES, perMessageDeflate: false });
    this.#ws.on('open', () => this.emit('open'));
    this.#ws.on('message', (data, isBinary) => {
      if (this.#refused) return;
      if (isBinary) return this.#invalid('binary frame');
      const envelope = readEnvelope(data.toString(), MAX_SERVER_MESSAGE_BYTES);
      if (!envelope.ok) return this.#invalid(envelope.error.message);
      const { v, range, announced } = envelope.message;
      if (this.#version === undefined) {
        const agreed = negotiate(DAEMON_PROTOCOL, range, { mine: 'hostinfo-sidecar', theirs: 'hostinfod' });
        if (!agreed.ok) return this.#refuse(v, agreed.error.code, agreed.error.message);
        this.#version = agreed.version;
        this.#announced = announced;
        for (const frame of this.#pending.splice(0)) this.#write(frame);
      }
      if (v !== this.#version) {
        // Written before the daemon had our hello, in a version we do not speak: it sends again.
        if (!this.#synced && v >= range.min && v <= range.max) return;
        return this.#invalid(`frame in protocol version ${v} after agreeing on ${this.#version}`);
      }
      this.#synced = true;
      const parsed = toSidecarMessageOf(envelope.message, this.#version);
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
      } else if (message.type === 'query') {
        this.emit('query', message.id, message.line);
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

  /** The protocol version agreed with the daemon; undefined until its first frame. */
  get version(): number | undefined {
    return this.#version;
  }

  /** Carries this side's version range when the daemon announced one (an old daemon gets plain v2). */
  /**
   * The daemon's first decision (it sends one as soon as the channel opens): undefined when
   * `until` settles first, a rejection after `timeoutMs`.
   */
  firstAccess(timeoutMs: number, until: Promise<unknown>): Promise<AccessMessage | undefined> {
    if (this.#access !== undefined) return Promise.resolve(this.#access);
    return new Promise<AccessMessage | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('access', onAccess);
        reject(new Error(`no access decision from hostinfod within ${timeoutMs} ms`));
      }, timeoutMs);
      const onAccess = (message: AccessMessage): void => {
        clearTimeout(timer);
        resolve(message);
      };
      this.once('access', onAccess);
      void until.then(() => {
        clearTimeout(timer);
        this.off('access', onAccess);
        resolve(undefined);
      });
    });
  }

  hello(qmp: HelloMessage['qmp']): void {
    // An old daemon (no range announced) refuses keys it does not know: it gets neither.
    this.#send((v) => ({ v, ...(this.#announced ? { range: DAEMON_PROTOCOL, features: SIDECAR_FEATURES } : {}), type: 'hello', qmp }));
  }

  answerQuery(id: number, reply: string): void {
    this.#send((v) => ({ v, type: 'query-reply', id, reply }));
  }

  reportCounters(counters: VmCounters): void {
    this.#send((v) => ({ v, type: 'counters', ...counters }));
  }

  async close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.#ws.once('close', () => resolve());
      this.#ws.close(1000, 'sidecar stopping');
    });
  }

  #send(frame: (v: number) => object): void {
    if (this.#ws.readyState === WebSocket.OPEN && this.#version !== undefined) this.#write(frame);
    // Only a hello and a counters report or two can come before the daemon's first frame.
    else if (this.#ws.readyState <= WebSocket.OPEN && this.#pending.length < 8) this.#pending.push(frame);
  }

  #write(frame: (v: number) => object): void {
    this.#ws.send(JSON.stringify(frame(this.#version as number)));
  }

  /** No common version: one error frame, in the daemon's own version, then the channel ends. */
  #refuse(v: number, code: string, message: string): void {
    this.#refused = true;
    this.emit('invalid', message);
    this.#ws.send(JSON.stringify({ v, type: 'error', code, message } satisfies ErrorMessage), () => this.#ws.close(1008, code));
  }

  #invalid(reason: string): void {
    this.emit('invalid', reason);
    this.#ws.terminate();
  }
}
