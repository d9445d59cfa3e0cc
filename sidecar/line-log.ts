// The sidecar's logger: one JSON line per call, written synchronously to a descriptor, in pino's
// shape ({"level":30,"time":...,"name":...,"pid":...,<fields>,"msg":...}) so the daemon's log and
// the sidecars' read alike. pino itself is the daemon's: loaded into every sidecar it cost about
// 1.3 MB per VM (bench/README figures) for the three levels and one destination a sidecar uses.

import { writeSync } from 'node:fs';
import type { SidecarLog } from './sidecar.js';

/** pino's level numbers. */
export const LEVELS = { info: 30, warn: 40, error: 50 } as const;

/** Errors as pino's err serializer writes them, bigints as decimal text; anything else as JSON does. */
function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { type: value.name, message: value.message, stack: value.stack };
  return value;
}

export interface LineLogOptions {
  /** Fields on every line after level and time, e.g. { name, pid }. */
  readonly base: object;
  readonly fd: number;
  /** Epoch ms; default Date.now. */
  readonly now?: () => number;
}

export function lineLog(options: LineLogOptions): SidecarLog {
  const { base, fd } = options;
  const now = options.now ?? Date.now;
  const write = (level: number, fields: object, message: string | undefined): void => {
    const head = { level, time: now(), ...base };
    let line: string;
    try {
      line = JSON.stringify(message === undefined ? { ...head, ...fields } : { ...head, ...fields, msg: message }, replacer);
    } catch (error) {
      // A cycle in the fields: the line still says that something was logged, and where.
      line = JSON.stringify({ ...head, msg: message, logError: (error as Error).message });
    }
    const bytes = Buffer.from(`${line}\n`, 'utf8');
    try {
      for (let written = 0; written < bytes.length;) written += writeSync(fd, bytes, written);
    } catch {
      // A log that cannot be written (disk full, fd closed) must not take the guest's answers with it.
    }
  };
  return {
    info: (fields, message) => write(LEVELS.info, fields, message),
    warn: (fields, message) => write(LEVELS.warn, fields, message),
    error: (fields, message) => write(LEVELS.error, fields, message),
  };
}
