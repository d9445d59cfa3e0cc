// What a guest may cost the host per second, whatever it sends. The policy rate limit only sees
// requests that reach the request handler; lines the handler ignores (reply-shaped tty echo) or
// refuses (403, 429) still cost a read, a decode and a parse each, and a guest can send them as
// fast as QEMU forwards bytes. This budget caps the bytes and lines taken from the guest in each
// one-second window. Over it, the rest of the chunk is dropped, counted, and reading pauses until
// the window ends: paused reads make QEMU stop taking the guest's output, so the flood blocks the
// guest instead of burning host CPU. Pure: the clock is the caller's (monotonic ms), the state a
// value, which keeps the arithmetic exact and the tests free of sleeps.

import { MAX_REQUEST_BYTES } from './protocol/limits.js';

export interface GuestBudget {
  readonly linesPerSecond: number;
  readonly bytesPerSecond: number;
}

/**
 * Far above what a guest asking for host information needs (the policy rate limit refuses most of
 * it anyway), far below what a core spends answering a flood.
 */
export const DEFAULT_GUEST_BUDGET: GuestBudget = { linesPerSecond: 100, bytesPerSecond: 16_384 };

/** Below these a well-formed request could never get through whole. */
export const MIN_GUEST_BUDGET: GuestBudget = { linesPerSecond: 1, bytesPerSecond: MAX_REQUEST_BYTES };

export const GUEST_BUDGET_WINDOW_MS = 1_000;

export interface GuestBudgetState {
  /** Monotonic instant the current window began; -Infinity before the first chunk. */
  readonly windowStart: number;
  /** LF bytes accepted in the current window. */
  readonly lines: number;
  /** Bytes accepted in the current window. */
  readonly bytes: number;
  /** Input was cut in this window: nothing more is accepted until it ends. */
  readonly cut: boolean;
}

export const FRESH_GUEST_BUDGET: GuestBudgetState = { windowStart: Number.NEGATIVE_INFINITY, lines: 0, bytes: 0, cut: false };

export interface GuestBudgetDecision {
  readonly state: GuestBudgetState;
  /** Process this many bytes from the start of the chunk; the rest of it is dropped. */
  readonly accepted: number;
  readonly droppedBytes: number;
  /** LF bytes in the dropped part. */
  readonly droppedLines: number;
  /** Reading must pause until this instant (the window's end); undefined when nothing was cut. */
  readonly resumeAt: number | undefined;
}

const LF = 0x0a;
/** V8's TypedArray search: Buffer#indexOf re-validates its arguments on every call (see line-decoder.ts). */
const indexOf = Uint8Array.prototype.indexOf;

/** Throws a RangeError naming the field unless both limits are integers at least MIN_GUEST_BUDGET. */
export function validateGuestBudget(budget: GuestBudget): GuestBudget {
  for (const key of ['linesPerSecond', 'bytesPerSecond'] as const) {
    const value = budget[key];
    if (!Number.isSafeInteger(value) || value < MIN_GUEST_BUDGET[key]) {
      throw new RangeError(`guest budget ${key}: expected an integer of at least ${MIN_GUEST_BUDGET[key]}, received ${String(value)}`);
    }
  }
  return budget;
}

/** Decides how much of `chunk`, read from the guest at `now`, may be processed. */
export function spendGuestBudget(budget: GuestBudget, state: GuestBudgetState, chunk: Uint8Array, now: number): GuestBudgetDecision {
  // Windows start at the first chunk after the previous one ended, not on a fixed grid: an idle
  // guest's first request always starts a full window.
  const current = now >= state.windowStart + GUEST_BUDGET_WINDOW_MS ? { windowStart: now, lines: 0, bytes: 0, cut: false } : state;
  const windowEnd = current.windowStart + GUEST_BUDGET_WINDOW_MS;
  if (current.cut) {
    // Only bytes that were already read when reading paused get here. They are dropped too: a
    // window that took input again after its cut would not be the pause the caller was told of.
    return { state: current, accepted: 0, droppedBytes: chunk.length, droppedLines: countLf(chunk, 0), resumeAt: windowEnd };
  }
  // A budget lowered mid-window (setBudget) leaves counts above it: no room, not negative room.
  const byteLimit = Math.min(chunk.length, Math.max(0, budget.bytesPerSecond - current.bytes));
  const lineRoom = Math.max(0, budget.linesPerSecond - current.lines);
  let accepted = byteLimit;
  let lines = 0;
  let afterLastLf = 0;
  for (let lf = indexOf.call(chunk, LF); lf !== -1 && lf < byteLimit; lf = indexOf.call(chunk, LF, lf + 1)) {
    if (lines === lineRoom) {
      // Cut right after the last LF that fits, so the dropped part starts at a line's start.
      accepted = afterLastLf;
      break;
    }
    lines += 1;
    afterLastLf = lf + 1;
  }
  // One state object per chunk, built whole (no intermediate to spread): this runs for every read.
  const windowStart = current.windowStart;
  const spentLines = current.lines + lines;
  const spentBytes = current.bytes + accepted;
  if (accepted === chunk.length) {
    return { state: { windowStart, lines: spentLines, bytes: spentBytes, cut: false }, accepted, droppedBytes: 0, droppedLines: 0, resumeAt: undefined };
  }
  return {
    state: { windowStart, lines: spentLines, bytes: spentBytes, cut: true },
    accepted,
    droppedBytes: chunk.length - accepted,
    droppedLines: countLf(chunk, accepted),
    resumeAt: windowEnd,
  };
}

function countLf(bytes: Uint8Array, from: number): number {
  let count = 0;
  for (let lf = indexOf.call(bytes, LF, from); lf !== -1; lf = indexOf.call(bytes, LF, lf + 1)) count += 1;
  return count;
}
