// Every failure the QMP client reports, in one tree, so callers can branch on a stable `code`
// rather than on message text or class identity across module copies.
//
//   QmpError (abstract)
//   ├── QmpConnectError        QMP_CONNECT       the socket could not be opened (retryable: QEMU may not listen yet)
//   ├── QmpStateError          QMP_STATE         the call is not allowed in the client's state (a caller bug: never retry)
//   ├── QmpGreetingError       QMP_GREETING      first message was not a usable QMP greeting
//   ├── QmpNegotiationError    QMP_NEGOTIATION   qmp_capabilities was refused
//   ├── QmpProtocolError       QMP_PROTOCOL      the server broke framing or message shape
//   │   └── QmpOversizeError   QMP_OVERSIZE      one message exceeded the size bound
//   ├── QmpTimeoutError        QMP_TIMEOUT       a deadline passed (connect or command)
//   ├── QmpAbortedError        QMP_ABORTED       the caller's AbortSignal fired
//   ├── QmpDisconnectedError   QMP_DISCONNECTED  the connection is gone (or never was)
//   └── QmpCommandError        QMP_COMMAND       QEMU answered with {"error": {class, desc}}

import { CodedError } from '../../common/coded-error.js';

export type QmpErrorCode =
  | 'QMP_CONNECT'
  | 'QMP_STATE'
  | 'QMP_GREETING'
  | 'QMP_NEGOTIATION'
  | 'QMP_PROTOCOL'
  | 'QMP_OVERSIZE'
  | 'QMP_TIMEOUT'
  | 'QMP_ABORTED'
  | 'QMP_DISCONNECTED'
  | 'QMP_COMMAND';

/** The base of the tree; each subclass fixes its own code. */
export abstract class QmpError<Code extends QmpErrorCode = QmpErrorCode> extends CodedError<Code> {
  constructor(code: Code, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = new.target.name;
  }
}

export class QmpConnectError extends QmpError<'QMP_CONNECT'> {
  constructor(message: string, options?: ErrorOptions) {
    super('QMP_CONNECT', message, options);
  }
}

/** Like qemu.qmp's StateError: e.g. connect() while not idle. Says nothing about the socket. */
export class QmpStateError extends QmpError<'QMP_STATE'> {
  readonly state: string;

  constructor(message: string, state: string) {
    super('QMP_STATE', message);
    this.state = state;
  }
}

export class QmpGreetingError extends QmpError<'QMP_GREETING'> {
  constructor(message: string, options?: ErrorOptions) {
    super('QMP_GREETING', message, options);
  }
}

/** qmp_capabilities came back as an error reply; the QMP class is kept for diagnosis. */
export class QmpNegotiationError extends QmpError<'QMP_NEGOTIATION'> {
  readonly errorClass: string | undefined;

  constructor(message: string, errorClass?: string, options?: ErrorOptions) {
    super('QMP_NEGOTIATION', message, options);
    this.errorClass = errorClass;
  }
}

export class QmpProtocolError extends QmpError<'QMP_PROTOCOL' | 'QMP_OVERSIZE'> {
  /** `code` is for QmpOversizeError, the one subclass. */
  constructor(message: string, options?: ErrorOptions, code: 'QMP_PROTOCOL' | 'QMP_OVERSIZE' = 'QMP_PROTOCOL') {
    super(code, message, options);
  }
}

export class QmpOversizeError extends QmpProtocolError {
  declare readonly code: 'QMP_OVERSIZE';
  readonly limit: number;

  constructor(limit: number) {
    super(`QMP message exceeds ${limit} bytes`, undefined, 'QMP_OVERSIZE');
    this.limit = limit;
  }
}

export class QmpTimeoutError extends QmpError<'QMP_TIMEOUT'> {
  constructor(message: string, options?: ErrorOptions) {
    super('QMP_TIMEOUT', message, options);
  }
}

export class QmpAbortedError extends QmpError<'QMP_ABORTED'> {
  constructor(message: string, options?: ErrorOptions) {
    super('QMP_ABORTED', message, options);
  }
}

export class QmpDisconnectedError extends QmpError<'QMP_DISCONNECTED'> {
  constructor(message: string, options?: ErrorOptions) {
    super('QMP_DISCONNECTED', message, options);
  }
}

/**
 * QEMU refused or failed a command. `errorClass` is QMP's `class` (e.g. CommandNotFound,
 * GenericError, DeviceNotFound); per the QMP spec `desc` is human-readable and not for parsing.
 */
export class QmpCommandError extends QmpError<'QMP_COMMAND'> {
  readonly command: string;
  readonly errorClass: string;
  readonly desc: string;

  constructor(command: string, errorClass: string, desc: string) {
    super('QMP_COMMAND', `${command}: ${errorClass}: ${desc}`);
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}
