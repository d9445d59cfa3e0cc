// The slice of a logger the daemon's modules use: pino in the daemon, a silent or recording stub in
// tests and the benchmark.

export interface Log {
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
  debug(fields: object, message?: string): void;
}

const nothing = (): void => {};
export const SILENT_LOG: Log = { info: nothing, warn: nothing, error: nothing, debug: nothing };
