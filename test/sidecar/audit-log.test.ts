import t from 'tap';
import { AuditLog, type AuditRecord } from '../../sidecar/audit-log.js';

t.test('a flood is logged at the bound, with the number of lines left out', async (t) => {
  const written: AuditRecord[] = [];
  const audit = new AuditLog((record) => written.push(record), { burst: 2, intervalMs: 1000 });
  for (let i = 0; i < 10; i += 1) audit.record('vm1', 'physcpus', 429, 0);
  t.equal(written.length, 2, 'only the burst at t=0');
  audit.record('vm1', 'ping', 200, 1000);
  t.same(written, [
    { vm: 'vm1', command: 'physcpus', status: 429 },
    { vm: 'vm1', command: 'physcpus', status: 429 },
    { vm: 'vm1', command: 'ping', status: 200, suppressed: 8 },
  ]);
  audit.record('vm1', 'ping', 200, 3000);
  t.same(written.at(-1), { vm: 'vm1', command: 'ping', status: 200 }, 'the count resets once reported');
});

t.test('over a simulated minute of flooding, lines written stay within the bound', async (t) => {
  let lines = 0;
  const audit = new AuditLog(() => { lines += 1; });
  for (let now = 0; now <= 60_000; now += 1) audit.record('vm', 'x', 404, now);
  t.equal(lines, 20 + 600, 'burst 20 + 10 per second');
});

t.test('what is left out at the end is still counted once', async (t) => {
  const written: AuditRecord[] = [];
  const audit = new AuditLog((record) => written.push(record), { burst: 1, intervalMs: 1000 });
  for (let i = 0; i < 5; i += 1) audit.record('vm1', 'ping', 200, 0);
  const flushed: number[] = [];
  audit.flush((suppressed) => flushed.push(suppressed));
  audit.flush((suppressed) => flushed.push(suppressed));
  t.same(flushed, [4], 'reported once');
  t.equal(written.length, 1);
});
