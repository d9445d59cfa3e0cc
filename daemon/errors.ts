// Start-up failures of the daemon, each with a stable code for the launcher and tests to match on.

import { CodedError } from '../common/coded-error.js';

export type DaemonErrorCode =
  | 'ALREADY_RUNNING'
  | 'LOCK_TIMEOUT'
  | 'SOCKET_PATH_NOT_SOCKET'
  | 'SOCKET_DIR_UNSAFE'
  | 'GROUP_UNKNOWN'
  | 'LISTEN_FAILED';

export class DaemonError extends CodedError<DaemonErrorCode> {
  override readonly name = 'DaemonError';
}
