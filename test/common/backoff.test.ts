import t from 'tap';
import { Backoff, retryEvery } from '../../common/backoff.js';

t.test('Backoff doubles from minMs up to maxMs', async (t) => {
  const backoff = new Backoff({ minMs: 50, maxMs: 300 });
  t.same([backoff.next(), backoff.next(), backoff.next(), backoff.next(), backoff.next()], [50, 100, 200, 300, 300]);
});

t.test('reset starts over at minMs', async (t) => {
  const backoff = new Backoff({ minMs: 10, maxMs: 1_000 });
  backoff.next();
  backoff.next();
  backoff.reset();
  t.equal(backoff.next(), 10);
  t.equal(backoff.next(), 20);
});

t.test('a maxMs below minMs: the first delay is minMs, then maxMs', async (t) => {
  const backoff = new Backoff({ minMs: 100, maxMs: 40 });
  t.same([backoff.next(), backoff.next()], [100, 40]);
});

t.test('retryEvery returns the first success', async (t) => {
  let calls = 0;
  const value = await retryEvery(1, async () => {
    calls += 1;
    if (calls < 3) throw new Error(`try ${calls}`);
    return 'ok';
  }, () => true);
  t.equal(value, 'ok');
  t.equal(calls, 3);
});

t.test('retryEvery rethrows the error retry refuses, and waits between tries', async (t) => {
  const seen: string[] = [];
  const started = performance.now();
  await t.rejects(retryEvery(20, async () => {
    throw new Error(`try ${seen.length + 1}`);
  }, (error) => {
    seen.push((error as Error).message);
    return seen.length < 3;
  }), /^try 3$/);
  t.same(seen, ['try 1', 'try 2', 'try 3']);
  // Two waits of 20 ms (timers may fire a millisecond early).
  t.ok(performance.now() - started >= 38);
});

t.test('retryEvery does not wait before the first try', async (t) => {
  const started = performance.now();
  t.equal(await retryEvery(10_000, async () => 1, () => true), 1);
  t.ok(performance.now() - started < 1_000);
});
