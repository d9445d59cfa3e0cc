// Start-up failures of the daemon, each with a stable code for the launcher and tests to match on.

export type CacheErrorCode =
  | 'ALREADY_RUNNING'
  | 'LOCK_TIMEOUT'
  | 'SOCKET_PATH_NOT_SOCKET'
  | 'SOCKET_DIR_UNSAFE'
  | 'GROUP_UNKNOWN'
  | 'LISTEN_FAILED';

export class CacheError extends Error {
  override readonly name = 'CacheError';
  readonly code: CacheErrorCode;
  constructor(code: CacheErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
