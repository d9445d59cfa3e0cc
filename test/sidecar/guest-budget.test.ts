import fc from 'fast-check';
import t from 'tap';
import {
  DEFAULT_GUEST_BUDGET, FRESH_GUEST_BUDGET, GUEST_BUDGET_WINDOW_MS, MIN_GUEST_BUDGET, spendGuestBudget, validateGuestBudget,
  type GuestBudget, type GuestBudgetState,
} from '../../sidecar/guest-budget.js';

const LF = 0x0a;
const lfs = (bytes: Uint8Array): number => bytes.reduce((count, byte) => count + (byte === LF ? 1 : 0), 0);

interface Step { readonly accepted: string; readonly droppedBytes: number; readonly droppedLines: number; readonly resumeAt: number | undefined }

/** Feeds (time, text) chunks through one budget; what each decision accepted, dropped and demanded. */
function run(budget: GuestBudget, chunks: readonly (readonly [number, string])[]): { steps: Step[]; state: GuestBudgetState } {
  let state = FRESH_GUEST_BUDGET;
  const steps = chunks.map(([now, text]) => {
    const chunk = Buffer.from(text, 'latin1');
    const decision = spendGuestBudget(budget, state, chunk, now);
    state = decision.state;
    return {
      accepted: chunk.subarray(0, decision.accepted).toString('latin1'),
      droppedBytes: decision.droppedBytes,
      droppedLines: decision.droppedLines,
      resumeAt: decision.resumeAt,
    };
  });
  return { steps, state };
}

const SMALL: GuestBudget = { linesPerSecond: 3, bytesPerSecond: 20 };

t.test('the line budget cuts right after the last LF that fits', async (t) => {
  const { steps, state } = run(SMALL, [[0, 'a\nb\nc\nd\ne\n']]);
  t.same(steps, [{ accepted: 'a\nb\nc\n', droppedBytes: 4, droppedLines: 2, resumeAt: 1000 }]);
  t.same(state, { windowStart: 0, lines: 3, bytes: 6, cut: true });
});

t.test('the line budget counts across chunks, and a partial line after the last LF is not taken', async (t) => {
  const { steps } = run(SMALL, [[0, 'a\nb\n'], [10, 'c\ndd'], [20, 'dd\ne\n']]);
  t.same(steps, [
    { accepted: 'a\nb\n', droppedBytes: 0, droppedLines: 0, resumeAt: undefined },
    { accepted: 'c\ndd', droppedBytes: 0, droppedLines: 0, resumeAt: undefined },
    // No LF fits any more: the whole chunk goes, its first bytes included.
    { accepted: '', droppedBytes: 5, droppedLines: 2, resumeAt: 1000 },
  ]);
});

t.test('a chunk without an LF costs bytes only, even with the line budget spent', async (t) => {
  const { steps } = run(SMALL, [[0, 'a\nb\nc\n'], [1, 'xyz'], [2, 'w\n']]);
  t.same(steps.map((step) => step.accepted), ['a\nb\nc\n', 'xyz', '']);
  t.equal(steps[2]?.resumeAt, 1000);
});

t.test('the byte budget cuts mid-line', async (t) => {
  const { steps, state } = run(SMALL, [[0, `${'a'.repeat(10)}\n${'b'.repeat(12)}\n`]]);
  t.same(steps, [{ accepted: `${'a'.repeat(10)}\n${'b'.repeat(9)}`, droppedBytes: 4, droppedLines: 1, resumeAt: 1000 }]);
  t.same(state, { windowStart: 0, lines: 1, bytes: 20, cut: true });
});

t.test('bytes and lines both bind: whichever cuts first wins', async (t) => {
  // Three lines fit in 20 bytes here, so lines cut: after "cc\n" (9 bytes).
  t.same(run(SMALL, [[0, 'aa\nbb\ncc\ndd\n']]).steps[0]?.accepted, 'aa\nbb\ncc\n');
  // Here 20 bytes run out inside the second line, before the line budget.
  t.same(run(SMALL, [[0, `${'a'.repeat(15)}\nbbbbbbb\n`]]).steps[0]?.accepted, `${'a'.repeat(15)}\nbbbb`);
  // Exactly at both limits: nothing is dropped, nothing pauses.
  t.same(run(SMALL, [[0, `${'a'.repeat(15)}\nb\nc\n`]]).steps[0], { accepted: `${'a'.repeat(15)}\nb\nc\n`, droppedBytes: 0, droppedLines: 0, resumeAt: undefined });
});

t.test('a cut window stays closed to its end; the next chunk after it opens a new window', async (t) => {
  const { steps } = run(SMALL, [
    [0, 'a\n'],
    [999, 'b\nc\nd\n'],
    [999.5, 'e\n'],
    [1000, 'f\ng\nh\n'],
    [1500, 'i\n'],
    [2000, 'j\n'],
  ]);
  t.same(steps, [
    { accepted: 'a\n', droppedBytes: 0, droppedLines: 0, resumeAt: undefined },
    { accepted: 'b\nc\n', droppedBytes: 2, droppedLines: 1, resumeAt: 1000 },
    { accepted: '', droppedBytes: 2, droppedLines: 1, resumeAt: 1000 },
    { accepted: 'f\ng\nh\n', droppedBytes: 0, droppedLines: 0, resumeAt: undefined },
    { accepted: '', droppedBytes: 2, droppedLines: 1, resumeAt: 2000 },
    { accepted: 'j\n', droppedBytes: 0, droppedLines: 0, resumeAt: undefined },
  ]);
});

t.test('windows start at the first chunk after the last one ended, not on a grid', async (t) => {
  const { steps, state } = run(SMALL, [[0, 'a\n'], [1700, 'b\nc\nd\ne\n']]);
  t.equal(steps[1]?.resumeAt, 2700);
  t.equal(state.windowStart, 1700);
});

t.test('a budget lowered below what the window already took leaves no room, not negative room', async (t) => {
  const generous = spendGuestBudget({ linesPerSecond: 10, bytesPerSecond: 1000 }, FRESH_GUEST_BUDGET, Buffer.from('a\nb\nc\nd\ne\n'), 0);
  const decision = spendGuestBudget(SMALL, generous.state, Buffer.from('f\n'), 1);
  t.same([decision.accepted, decision.droppedBytes, decision.droppedLines, decision.resumeAt], [0, 2, 1, 1000]);
});

t.test('an empty chunk changes nothing', async (t) => {
  const decision = spendGuestBudget(SMALL, FRESH_GUEST_BUDGET, Buffer.alloc(0), 5);
  t.same([decision.accepted, decision.droppedBytes, decision.resumeAt], [0, 0, undefined]);
});

t.test('the defaults, and what validateGuestBudget accepts', async (t) => {
  t.same(DEFAULT_GUEST_BUDGET, { linesPerSecond: 100, bytesPerSecond: 16384 });
  t.equal(validateGuestBudget(DEFAULT_GUEST_BUDGET), DEFAULT_GUEST_BUDGET);
  t.equal(validateGuestBudget(MIN_GUEST_BUDGET), MIN_GUEST_BUDGET);
  for (const bad of [
    { linesPerSecond: 0, bytesPerSecond: 16384 },
    { linesPerSecond: 1.5, bytesPerSecond: 16384 },
    { linesPerSecond: Number.NaN, bytesPerSecond: 16384 },
    { linesPerSecond: Number.POSITIVE_INFINITY, bytesPerSecond: 16384 },
    { linesPerSecond: 100, bytesPerSecond: MIN_GUEST_BUDGET.bytesPerSecond - 1 },
    { linesPerSecond: 100, bytesPerSecond: -1 },
  ]) {
    t.throws(() => validateGuestBudget(bad), RangeError, JSON.stringify(bad));
  }
  t.throws(() => validateGuestBudget({ linesPerSecond: 100, bytesPerSecond: 10 }), /bytesPerSecond: expected an integer of at least 256, received 10/);
});

const chunkArb = fc.record({
  // Gaps up to a little over a window, including 0 (chunks back to back) and fractions.
  gap: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1.3 * GUEST_BUDGET_WINDOW_MS, noNaN: true })),
  // LF-heavy so the line budget binds as often as the byte budget.
  bytes: fc.array(fc.constantFrom(LF, 0x41, 0x0d), { maxLength: 120 }).map((bytes) => Uint8Array.from(bytes)),
});

t.test('property: per window, accepted lines and bytes stay within budget, and every byte is accounted for', async (t) => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 12 }),
    fc.integer({ min: 1, max: 300 }),
    fc.array(chunkArb, { maxLength: 60 }),
    (linesPerSecond, bytesPerSecond, chunks) => {
      const budget = { linesPerSecond, bytesPerSecond };
      let state = FRESH_GUEST_BUDGET;
      let now = 0;
      let pausedUntil = Number.NEGATIVE_INFINITY;
      const perWindow = new Map<number, { lines: number; bytes: number }>();
      for (const { gap, bytes } of chunks) {
        now += gap;
        const decision = spendGuestBudget(budget, state, bytes, now);
        state = decision.state;
        const accepted = bytes.subarray(0, decision.accepted);
        const dropped = bytes.subarray(decision.accepted);
        if (decision.accepted + decision.droppedBytes !== bytes.length) return false;
        if (decision.droppedLines !== lfs(dropped)) return false;
        if (state.windowStart > now || now >= state.windowStart + GUEST_BUDGET_WINDOW_MS) return false;
        // While the caller was told to pause, nothing is accepted.
        if (now < pausedUntil && decision.accepted > 0) return false;
        // Any drop demands a pause, and a pause is only ever demanded by a cut window.
        if (decision.droppedBytes > 0 && decision.resumeAt === undefined) return false;
        if ((decision.resumeAt !== undefined) !== state.cut) return false;
        if (decision.resumeAt !== undefined) {
          if (decision.resumeAt !== state.windowStart + GUEST_BUDGET_WINDOW_MS) return false;
          pausedUntil = decision.resumeAt;
        }
        const window = perWindow.get(state.windowStart) ?? { lines: 0, bytes: 0 };
        window.lines += lfs(accepted);
        window.bytes += accepted.length;
        perWindow.set(state.windowStart, window);
        if (window.lines !== state.lines || window.bytes !== state.bytes) return false;
        if (window.lines > linesPerSecond || window.bytes > bytesPerSecond) return false;
        // Nothing is dropped while there was room: a cut means one of the budgets is used up.
        if (decision.droppedBytes > 0 && decision.accepted > 0 && window.bytes !== bytesPerSecond && window.lines !== linesPerSecond) return false;
        // A cut by the line budget falls right after an LF.
        if (decision.droppedBytes > 0 && window.bytes < bytesPerSecond && decision.accepted > 0 && accepted[accepted.length - 1] !== LF) return false;
      }
      return true;
    },
  ), { numRuns: 2000 });
  t.pass('held for every generated sequence');
});
