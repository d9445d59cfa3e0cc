import t from 'tap';
import { countRequest, ZERO_COUNTERS } from '../../sidecar/counters.js';

t.test('each status lands in exactly one bucket besides requests', async (t) => {
  let counters = ZERO_COUNTERS;
  const statuses = [200, 200, 403, 429, 400, 404, 500, 503] as const;
  statuses.forEach((status, index) => {
    counters = countRequest(counters, status, 1000 + index);
  });
  t.same(counters, { requests: 8, ok: 2, denied: 1, rateLimited: 1, errors: 4, droppedBytes: 0, droppedLines: 0, lastRequestAt: 1007 });
});

t.test('counting a request keeps the guest-budget drops', async (t) => {
  const counted = countRequest({ ...ZERO_COUNTERS, droppedBytes: 512, droppedLines: 9 }, 200, 5);
  t.match(counted, { requests: 1, ok: 1, droppedBytes: 512, droppedLines: 9 });
});
