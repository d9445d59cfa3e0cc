// Rate-limit exactness through the pure request path (decoder frame → handleGuestFrame) with an
// injected clock: over 60 simulated seconds a greedy guest gets burst + floor(60 / interval)
// answers (± 1 at the window's edge), and every 429's retry-after is exactly the wait to the next
// allowed instant on the sidecar's monotonic millisecond clock. Policies come from TOML text through the
// real parser, so intervals such as 1.1 s carry the same floating-point value the sidecar uses.

import fc from 'fast-check';
import t from 'tap';
import { decideAccess, type Access } from '../../policies/access.js';
import { FRESH_LIMITER, type LimiterState } from '../../policies/rate-limiter.js';
import { parseVmPolicy } from '../../policies/vm-policy.js';
import { GuestLineDecoder, type GuestFrame } from '../../sidecar/protocol/line-decoder.js';
import { handleGuestFrame, type VmFacts } from '../../sidecar/request-handler.js';
import { fuzzSeed } from './arbitraries.js';

const SEED = fuzzSeed(20261125);
/**
 * The limiter runs on the sidecar's monotonic clock (performance.now()); a value as large as an
 * epoch instant keeps float rounding at least as realistic as a long-running host's.
 */
const EPOCH = 1_795_613_704_391;
/** Wall clock, epoch ms: hosttime only, never asked here. */
const WALL = EPOCH;
const WINDOW_MS = 60_000;
const VM: VmFacts = { hypervisor: undefined, vcpuDelay: undefined };
const [PING] = new GuestLineDecoder().push(Buffer.from('PING\n')) as [GuestFrame];

/** (burst, interval as written in the policy file) */
const PAIRS: readonly (readonly [number, string])[] = [
  [1, '1'], [1, '1.0'], [3, '1'], [1, '0.5'], [5, '0.7'], [2, '1.1'], [1, '1.1'], [10, '0.1'], [1, '60'],
  [4, '2.5'], [1, '0.3'], [7, '0.013'], [1, '7'], [100, '0.05'], [1, '0.001'], [60, '61'], [3, '0.333'],
];

function access(burst: number, interval: string): Access {
  const policy = parseVmPolicy(`enabled = true\nburst = ${burst}\ninterval = ${interval}\n`, '/p/vm.toml');
  return decideAccess({ enabled: true, file: '/etc/hostinfo/hostinfo.toml' }, { kind: 'found', policy });
}

interface Answer { readonly status: number; readonly retryAfterMs: number | undefined; readonly limiter: LimiterState }

function ask(policy: Access, limiter: LimiterState, now: number): Answer {
  const outcome = handleGuestFrame({ access: policy, limiter, sample: undefined, vm: VM, maxAgeMs: 5000, now, wallNow: WALL, version: '0.1.0' }, PING);
  const reply = outcome.reply ?? '';
  const retry = /^1\.0 429 too many requests; retry after (\d+) ms\n$/.exec(reply)?.[1];
  const status = Number(reply.slice(4, 7));
  if (status !== 200 && retry === undefined) throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
  return { status, retryAfterMs: retry === undefined ? undefined : Number(retry), limiter: outcome.limiter };
}

/** Checks a 429's retry-after against the same state probed one ms early and exactly on time. */
function retryIsExact(policy: Access, limiter: LimiterState, now: number, retryAfterMs: number): string | undefined {
  if (!(retryAfterMs >= 1)) return `retry after ${retryAfterMs} ms at ${now - EPOCH}`;
  const onTime = ask(policy, limiter, now + retryAfterMs);
  if (onTime.status !== 200) return `asked at now + retry (${retryAfterMs} ms) and got ${onTime.status} (t=${now - EPOCH})`;
  const early = ask(policy, limiter, now + retryAfterMs - 1);
  if (early.status !== 429) return `asked 1 ms before now + retry (${retryAfterMs} ms) and got ${early.status} (t=${now - EPOCH})`;
  return undefined;
}

for (const [burst, interval] of PAIRS) {
  t.test(`burst ${burst}, interval ${interval} s: a guest asking every 1 ms for 60 s`, async (t) => {
    const policy = access(burst, interval);
    const seconds = Number(interval);
    const expected = burst + Math.floor(60 / seconds);
    let limiter = FRESH_LIMITER;
    let ok = 0;
    let refused = 0;
    const wrongRetries: string[] = [];
    for (let now = EPOCH; now <= EPOCH + WINDOW_MS; now += 1) {
      const answer = ask(policy, limiter, now);
      if (answer.status === 200) {
        ok += 1;
      } else {
        refused += 1;
        const problem = retryIsExact(policy, limiter, now, answer.retryAfterMs ?? Number.NaN);
        if (problem !== undefined && wrongRetries.length < 5) wrongRetries.push(problem);
      }
      limiter = answer.limiter;
    }
    t.ok(Math.abs(ok - expected) <= 1, `${ok} answers in [0, 60 s] (${refused} refused): burst + floor(60 / interval) = ${expected}`);
    t.same(wrongRetries, [], 'every retry-after is the exact wait to the next allowed instant');
  });
}

t.test('random instants: never more than burst + floor(60 / interval) + 1 answers, every retry-after exact', async (t) => {
  t.comment(`fuzz seed ${SEED} (replay with HOSTINFO_FUZZ_SEED=${SEED})`);
  const intervalText = fc.oneof(
    fc.integer({ min: 1, max: 120_000 }).map((ms) => String(ms / 1000)),
    fc.constantFrom('0.7', '1.1', '0.3', '2.2', '0.013', '1', '60', '0.1', '3.3'),
  );
  const details = await fc.check(
    fc.property(
      fc.integer({ min: 1, max: 50 }),
      intervalText,
      fc.array(fc.integer({ min: 0, max: WINDOW_MS }), { minLength: 1, maxLength: 400 }),
      (burst, interval, offsets) => {
        const policy = access(burst, interval);
        let limiter = FRESH_LIMITER;
        let ok = 0;
        for (const offset of offsets.sort((a, b) => a - b)) {
          const now = EPOCH + offset;
          const answer = ask(policy, limiter, now);
          if (answer.status === 200) ok += 1;
          else {
            const problem = retryIsExact(policy, limiter, now, answer.retryAfterMs ?? Number.NaN);
            if (problem !== undefined) throw new Error(problem);
          }
          limiter = answer.limiter;
        }
        const bound = burst + Math.floor(60 / Number(interval)) + 1;
        if (ok > bound) throw new Error(`${ok} answers > ${bound}`);
      },
    ),
    { seed: SEED, numRuns: 3000 },
  );
  if (details.failed) t.fail(`seed ${details.seed}, path "${details.counterexamplePath ?? ''}": ${String(details.errorInstance)}\n${fc.defaultReportMessage(details) ?? ''}`);
  else t.pass(`${details.numRuns} random schedules (seed ${details.seed})`);
});
