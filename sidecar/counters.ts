// The per-VM request counters the sidecar reports to hostinfod (shown in its status).

import type { VmCounters } from '../daemon/messages.js';
import type { Status } from './protocol/reply.js';

export const ZERO_COUNTERS: VmCounters = { requests: 0, ok: 0, denied: 0, rateLimited: 0, errors: 0, droppedBytes: 0, droppedLines: 0, lastRequestAt: null };

/** Every field written out, no spread: this runs for every guest request. */
export function countRequest(counters: VmCounters, status: Status, at: number): VmCounters {
  return {
    requests: counters.requests + 1,
    ok: counters.ok + (status >= 200 && status < 300 ? 1 : 0),
    denied: counters.denied + (status === 403 ? 1 : 0),
    rateLimited: counters.rateLimited + (status === 429 ? 1 : 0),
    errors: counters.errors + (status >= 400 && status !== 403 && status !== 429 ? 1 : 0),
    droppedBytes: counters.droppedBytes,
    droppedLines: counters.droppedLines,
    lastRequestAt: at,
  };
}
