import t from 'tap';
import { FRESH_LIMITER, rebaseLimiter, takeToken, type LimiterState, type RateLimit } from '../../policies/rate-limiter.js';

function run(limit: RateLimit, instants: readonly number[]): (number | 'ok')[] {
  let state: LimiterState = FRESH_LIMITER;
  return instants.map((now) => {
    const decision = takeToken(limit, state, now);
    state = decision.state;
    return decision.allowed ? 'ok' : decision.retryAfterMs;
  });
}

t.test('burst 3, interval 1 s: three back to back, then a wait of exactly 1000 ms', async (t) => {
  t.same(run({ burst: 3, intervalMs: 1000 }, [0, 0, 0, 0, 999, 1000, 1000]), ['ok', 'ok', 'ok', 1000, 1, 'ok', 1000]);
});

t.test('burst 1 is the seed\'s "at most once per interval"', async (t) => {
  t.same(run({ burst: 1, intervalMs: 1000 }, [5000, 5500, 6000, 6001, 7500]), ['ok', 500, 'ok', 999, 'ok']);
});

t.test('a refused request takes nothing', async (t) => {
  const limit = { burst: 1, intervalMs: 1000 };
  const first = takeToken(limit, FRESH_LIMITER, 0);
  const refused = takeToken(limit, first.state, 10);
  t.equal(refused.allowed, false);
  t.equal(refused.state, first.state);
});

t.test('an idle bucket refills to burst, never beyond', async (t) => {
  t.same(run({ burst: 2, intervalMs: 100 }, [0, 0, 10_000, 10_000, 10_000]), ['ok', 'ok', 'ok', 'ok', 100]);
});

t.test('fractional intervals round the wait up to whole milliseconds', async (t) => {
  t.same(run({ burst: 1, intervalMs: 333.3 }, [0, 0, 333, 333.3]), ['ok', 334, 1, 'ok']);
});

t.test('over 60 s a greedy client gets exactly burst + floor(60 / interval) requests', async (t) => {
  for (const [burst, intervalMs] of [[1, 1000], [3, 1000], [5, 250], [2, 7000], [10, 100]] as const) {
    let state: LimiterState = FRESH_LIMITER;
    let allowed = 0;
    for (let now = 0; now <= 60_000; now += 1) {
      const decision = takeToken({ burst, intervalMs }, state, now);
      state = decision.state;
      if (decision.allowed) allowed += 1;
    }
    t.equal(allowed, burst + Math.floor(60_000 / intervalMs), `burst ${burst} interval ${intervalMs} ms`);
  }
});

t.test('a policy change carries at most one full new bucket of debt over', async (t) => {
  const generous = { burst: 1_000_000, intervalMs: 1 };
  let state: LimiterState = FRESH_LIMITER;
  for (let i = 0; i < 20_000; i += 1) state = takeToken(generous, state, 0).state;
  const strict = { burst: 1, intervalMs: 1000 };
  const rebased = rebaseLimiter(strict, state, 0);
  const decision = takeToken(strict, rebased, 0);
  t.equal(decision.allowed, false);
  t.equal(decision.allowed ? 0 : decision.retryAfterMs, 1000, 'waits one new interval, not 20 s of old debt');
  t.equal(rebaseLimiter(strict, FRESH_LIMITER, 5), FRESH_LIMITER, 'an unused bucket stays as it is');
  const light = takeToken(strict, FRESH_LIMITER, 0).state;
  t.equal(rebaseLimiter(generous, light, 0), light, 'a loosened policy keeps the state');
});
