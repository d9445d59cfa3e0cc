// What QmpClient's callers see of it: its connection states (and the one table of moves between
// them), its events, and the options of connect and execute.

import type net from 'node:net';
import type { QmpError } from './errors.js';
import type { QmpEvent } from './messages.js';

export type QmpState = 'idle' | 'connecting' | 'negotiating' | 'running' | 'disconnecting';

export const TRANSITIONS: Readonly<Record<QmpState, readonly QmpState[]>> = {
  idle: ['connecting'],
  connecting: ['negotiating', 'disconnecting'],
  negotiating: ['running', 'disconnecting'],
  running: ['disconnecting'],
  disconnecting: ['idle'],
};

export interface QmpClientEvents {
  state: [state: QmpState, previous: QmpState];
  /** An asynchronous QMP event (STOP, RESUME, SHUTDOWN, ...). Listeners must not throw. */
  event: [event: QmpEvent];
  /** A connection that connect() had resolved is over; emitted once the state is idle again. */
  disconnected: [reason: QmpError];
}

export interface QmpClientOptions {
  /** Bound on one server message, checked before parsing. */
  readonly maxMessageBytes?: number;
  /** Used by execute() when the call gives no timeoutMs. */
  readonly commandTimeoutMs?: number;
}

export interface QmpConnectOptions {
  /** Covers socket connect, greeting and negotiation together. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface QmpExecuteOptions {
  /** Infinity waits forever. A command that times out may still have run inside QEMU. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** A socket connected by someone else (the daemon), with a name for error messages. */
export interface QmpConnectedSocket {
  readonly socket: net.Socket;
  readonly label: string;
}
