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

export abstract class QmpError extends Error {
  abstract readonly code: QmpErrorCode;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class QmpConnectError extends QmpError {
  readonly code = 'QMP_CONNECT';
}

/** Like qemu.qmp's StateError: e.g. connect() while not idle. Says nothing about the socket. */
export class QmpStateError extends QmpError {
  readonly code = 'QMP_STATE';
  readonly state: string;

  constructor(message: string, state: string) {
    super(message);
    this.state = state;
  }
}

export class QmpGreetingError extends QmpError {
  readonly code = 'QMP_GREETING';
}

/** qmp_capabilities came back as an error reply; the QMP class is kept for diagnosis. */
export class QmpNegotiationError extends QmpError {
  readonly code = 'QMP_NEGOTIATION';
  readonly errorClass: string | undefined;

  constructor(message: string, errorClass?: string, options?: ErrorOptions) {
    super(message, options);
    this.errorClass = errorClass;
  }
}

export class QmpProtocolError extends QmpError {
  readonly code: 'QMP_PROTOCOL' | 'QMP_OVERSIZE' = 'QMP_PROTOCOL';
}

export class QmpOversizeError extends QmpProtocolError {
  override readonly code = 'QMP_OVERSIZE';
  readonly limit: number;

  constructor(limit: number) {
    super(`QMP message exceeds ${limit} bytes`);
    this.limit = limit;
  }
}

export class QmpTimeoutError extends QmpError {
  readonly code = 'QMP_TIMEOUT';
}

export class QmpAbortedError extends QmpError {
  readonly code = 'QMP_ABORTED';
}

export class QmpDisconnectedError extends QmpError {
  readonly code = 'QMP_DISCONNECTED';
}

/**
 * QEMU refused or failed a command. `errorClass` is QMP's `class` (e.g. CommandNotFound,
 * GenericError, DeviceNotFound); per the QMP spec `desc` is human-readable and not for parsing.
 */
export class QmpCommandError extends QmpError {
  readonly code = 'QMP_COMMAND';
  readonly command: string;
  readonly errorClass: string;
  readonly desc: string;

  constructor(command: string, errorClass: string, desc: string) {
    super(`${command}: ${errorClass}: ${desc}`);
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}
