// A QMP client for one QEMU monitor socket, modelled on qemu.qmp's QMPClient: a connection walks
// idle → connecting → negotiating → running → disconnecting → idle, and #setState is the only
// place that moves it. Whatever ends a connection (EOF, socket error, protocol fault, timeout
// during connect, close()) goes through #drop, which rejects every pending command at once, and
// the socket's 'close' finishes the walk back to idle, so a caller that sees idle may reconnect.

import { EventEmitter } from 'node:events';
import net from 'node:net';
import { abortedError, checkTimeout, Deadline } from './deadline.js';
import {
  QmpAbortedError,
  QmpCommandError,
  QmpConnectError,
  QmpDisconnectedError,
  QmpGreetingError,
  QmpNegotiationError,
  QmpProtocolError,
  QmpStateError,
  type QmpError,
} from './errors.js';
import { MAX_QMP_MESSAGE_BYTES, QmpFrameDecoder, type QmpJsonObject } from './framing.js';
import { encodeCommand, parseGreeting, parseServerMessage, type QmpGreeting, type QmpVersionTriple } from './messages.js';
import { TRANSITIONS, type QmpClientEvents, type QmpClientOptions, type QmpConnectedSocket, type QmpConnectOptions, type QmpExecuteOptions, type QmpState } from './client-api.js';

export type { QmpClientEvents, QmpClientOptions, QmpConnectedSocket, QmpConnectOptions, QmpExecuteOptions, QmpState } from './client-api.js';

export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

interface Pending {
  readonly command: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: QmpError) => void;
}

interface ConnectWaiter {
  readonly resolve: (greeting: QmpGreeting) => void;
  readonly reject: (error: QmpError) => void;
}

export class QmpClient extends EventEmitter<QmpClientEvents> {
  readonly #maxMessageBytes: number;
  readonly #commandTimeoutMs: number;
  #state: QmpState = 'idle';
  #socket: net.Socket | undefined;
  #decoder: QmpFrameDecoder | undefined;
  #greeting: QmpGreeting | undefined;
  #connectWaiter: ConnectWaiter | undefined;
  #dropReason: QmpError | undefined;
  #wasRunning = false;
  #idleWaiters: Array<() => void> = [];
  readonly #pending = new Map<string, Pending>();
  // Client-wide, not per connection: an id is never reused, so a late reply can't match a new command.
  #nextId = 1;

  constructor(options: QmpClientOptions = {}) {
    super();
    this.#maxMessageBytes = options.maxMessageBytes ?? MAX_QMP_MESSAGE_BYTES;
    this.#commandTimeoutMs = checkTimeout(options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
  }

  get state(): QmpState {
    return this.#state;
  }

  /** The greeting of the current (or last) connection. */
  get greeting(): QmpGreeting | undefined {
    return this.#greeting;
  }

  /** QEMU's version as announced in the greeting, e.g. {major: 7, minor: 2, micro: 22}. */
  get qemuVersion(): QmpVersionTriple | undefined {
    return this.#greeting?.version.qemu;
  }

  /** Commands sent and not yet answered, timed out or aborted. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /**
   * Connects to a QMP unix socket, checks the greeting and negotiates capabilities (none are
   * enabled: no OOB). Rejects, once the state is back to idle, with QMP_CONNECT, QMP_GREETING,
   * QMP_NEGOTIATION, QMP_PROTOCOL/QMP_OVERSIZE, QMP_TIMEOUT, QMP_ABORTED or QMP_DISCONNECTED; at
   * once, with the state untouched, with QMP_STATE when the client is not idle.
   */
  async connect(target: string | QmpConnectedSocket, options: QmpConnectOptions = {}): Promise<QmpGreeting> {
    const path = typeof target === 'string' ? target : target.label;
    const timeoutMs = checkTimeout(options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    if (this.#state !== 'idle') throw new QmpStateError(`cannot connect while ${this.#state}`, this.#state);
    if (options.signal?.aborted) throw abortedError('QMP connect', options.signal);

    const done = new Promise<QmpGreeting>((resolve, reject) => {
      this.#connectWaiter = { resolve, reject };
    });
    this.#greeting = undefined;
    this.#dropReason = undefined;
    this.#wasRunning = false;
    this.#decoder = new QmpFrameDecoder(this.#maxMessageBytes);
    this.#setState('connecting');
    const socket = typeof target === 'string' ? net.createConnection({ path }) : target.socket;
    this.#socket = socket;
    socket.on('connect', () => {
      if (socket === this.#socket && this.#state === 'connecting') this.#setState('negotiating');
    });
    socket.on('data', (chunk: Buffer) => this.#onData(socket, chunk));
    socket.on('error', (error) => this.#onSocketError(socket, error, path));
    socket.on('close', () => this.#onSocketClose(socket));
    // A socket handed over already connected never emits 'connect'; the greeting may be waiting.
    if (typeof target !== 'string') this.#setState('negotiating');

    const deadline = new Deadline(`QMP connect to ${path}`, timeoutMs, options.signal, (error) => this.#drop(error));
    try {
      return await done;
    } finally {
      deadline.clear();
    }
  }

  /**
   * Runs one command and resolves with its `return` value. Rejects with QmpCommandError for an
   * error reply, QMP_TIMEOUT / QMP_ABORTED (the late reply is then dropped), or QMP_DISCONNECTED.
   */
  execute<T = unknown>(command: string, args?: QmpJsonObject, options: QmpExecuteOptions = {}): Promise<T> {
    if (this.#state !== 'running') {
      return Promise.reject(new QmpDisconnectedError(`cannot execute ${command}: QMP connection is ${this.#state}`));
    }
    return this.#send(command, args, options) as Promise<T>;
  }

  /** Ends the connection, rejecting pending commands with QMP_DISCONNECTED; resolves when idle. */
  async close(): Promise<void> {
    if (this.#state === 'idle') return;
    const idle = new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    const connecting = this.#state === 'connecting' || this.#state === 'negotiating';
    this.#drop(connecting ? new QmpAbortedError('QMP connect abandoned by close()') : new QmpDisconnectedError('QMP connection closed by the client'));
    await idle;
  }

  #setState(next: QmpState): void {
    const previous = this.#state;
    if (!TRANSITIONS[previous].includes(next)) throw new Error(`QMP client: illegal transition ${previous} → ${next}`);
    this.#state = next;
    this.emit('state', next, previous);
  }

  #send(command: string, args: QmpJsonObject | undefined, options: QmpExecuteOptions): Promise<unknown> {
    const timeoutMs = checkTimeout(options.timeoutMs ?? this.#commandTimeoutMs);
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortedError(command, signal));
    const socket = this.#socket;
    if (socket === undefined) return Promise.reject(new QmpDisconnectedError(`cannot execute ${command}: no socket`));
    const id = `hq-${this.#nextId++}`;
    return new Promise((resolve, reject) => {
      const deadline = new Deadline(command, timeoutMs, signal, (error) => {
        if (this.#pending.delete(id)) reject(error);
      });
      this.#pending.set(id, {
        command,
        resolve: (value) => {
          deadline.clear();
          resolve(value);
        },
        reject: (error) => {
          deadline.clear();
          reject(error);
        },
      });
      socket.write(encodeCommand(command, args, id));
    });
  }

  #negotiate(): void {
    this.#send('qmp_capabilities', undefined, { timeoutMs: Infinity }).then(
      () => {
        if (this.#state !== 'negotiating') return;
        this.#setState('running');
        this.#wasRunning = true;
        const waiter = this.#connectWaiter;
        this.#connectWaiter = undefined;
        if (this.#greeting !== undefined) waiter?.resolve(this.#greeting);
      },
      (error: unknown) => {
        // Any other rejection means the connection is already being dropped for its own reason.
        if (error instanceof QmpCommandError) {
          this.#drop(new QmpNegotiationError(`qmp_capabilities refused: ${error.errorClass}: ${error.desc}`, error.errorClass));
        }
      },
    );
  }

  #onData(socket: net.Socket, chunk: Buffer): void {
    if (socket !== this.#socket || this.#decoder === undefined) return;
    for (const frame of this.#decoder.push(chunk)) {
      // A listener or a reply handler may have dropped the connection mid-chunk.
      if (this.#state !== 'negotiating' && this.#state !== 'running') return;
      if (frame.kind === 'error') return this.#drop(frame.error);
      this.#onMessage(frame.message);
    }
  }

  #onMessage(message: QmpJsonObject): void {
    if (this.#greeting === undefined) {
      const greeting = parseGreeting(message);
      if (typeof greeting === 'string') return this.#drop(new QmpGreetingError(`bad QMP greeting: ${greeting}`));
      this.#greeting = greeting;
      return this.#negotiate();
    }
    const parsed = parseServerMessage(message);
    if (typeof parsed === 'string') return this.#drop(new QmpProtocolError(`QMP server: ${parsed}`));
    if (parsed.kind === 'event') {
      this.emit('event', parsed);
      return;
    }
    if (parsed.id === undefined) {
      // QEMU answers without an id only when it could not parse a request, which we never send
      // malformed; the stream can't be trusted to line up after that (qemu.qmp does the same).
      const detail = parsed.kind === 'error' ? `${parsed.errorClass}: ${parsed.desc}` : 'return';
      return this.#drop(new QmpProtocolError(`QMP server sent a reply without id (${detail})`));
    }
    const entry = typeof parsed.id === 'string' ? this.#pending.get(parsed.id) : undefined;
    if (entry === undefined) return; // timed out, aborted, or never ours
    this.#pending.delete(parsed.id as string);
    if (parsed.kind === 'return') entry.resolve(parsed.value);
    else entry.reject(new QmpCommandError(entry.command, parsed.errorClass, parsed.desc));
  }

  #onSocketError(socket: net.Socket, error: Error, path: string): void {
    if (socket !== this.#socket) return;
    if (this.#state === 'connecting') this.#drop(new QmpConnectError(`cannot connect to QMP socket ${path}: ${error.message}`, { cause: error }));
    else this.#drop(new QmpDisconnectedError(`QMP socket error: ${error.message}`, { cause: error }));
  }

  #onSocketClose(socket: net.Socket): void {
    if (socket !== this.#socket) return;
    if (this.#state !== 'disconnecting') this.#drop(this.#eofReason());
    const reason = this.#dropReason ?? new QmpDisconnectedError('QMP connection closed');
    this.#socket = undefined;
    this.#decoder = undefined;
    this.#setState('idle');
    const waiter = this.#connectWaiter;
    this.#connectWaiter = undefined;
    waiter?.reject(reason);
    if (this.#wasRunning) this.emit('disconnected', reason);
    const idleWaiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of idleWaiters) resolve();
  }

  #eofReason(): QmpError {
    if (this.#state === 'running') return new QmpDisconnectedError('QMP server closed the connection');
    if (this.#greeting === undefined) return new QmpGreetingError('QMP server closed the connection before its greeting');
    return new QmpNegotiationError('QMP server closed the connection during capabilities negotiation');
  }

  /** Starts tearing the connection down for `reason`; the socket's 'close' completes it. */
  #drop(reason: QmpError): void {
    if (this.#state === 'idle' || this.#state === 'disconnecting') return;
    this.#dropReason = reason;
    this.#setState('disconnecting');
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const entry of pending) {
      entry.reject(
        reason instanceof QmpDisconnectedError
          ? reason
          : new QmpDisconnectedError(`QMP connection dropped while ${entry.command} was pending: ${reason.message}`, { cause: reason }),
      );
    }
    this.#socket?.destroy();
  }
}
