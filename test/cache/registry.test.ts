import t from 'tap';
import { Registry } from '../../cache/registry.js';

const a = { name: 'a', uuid: 'uuid-a', pid: 1 };
const b = { name: 'b', uuid: 'uuid-b', pid: 2 };
const counters = { requests: 4, ok: 2, denied: 1, rateLimited: 1, errors: 0, lastRequestAt: 1000 };

t.test('vmcount counts distinct VMs, not connections', async (t) => {
  const registry = new Registry<number>();
  t.equal(registry.vmCount(), 0);
  registry.subscribe(1, a, ['physcpus'], 10);
  registry.subscribe(2, b, ['physcpus'], 10);
  registry.subscribe(3, { ...a, pid: 9 }, ['physcpus'], 11); // a restarting sidecar of VM a
  t.equal(registry.vmCount(), 2);
  registry.remove(1);
  t.equal(registry.vmCount(), 2);
  registry.remove(3);
  t.equal(registry.vmCount(), 1);
});

t.test('counters need a hello; re-subscribing keeps them for the same VM only', async (t) => {
  const registry = new Registry<number>();
  t.notOk(registry.report(1, counters, 5));
  registry.subscribe(1, a, ['physcpus'], 10);
  t.ok(registry.report(1, counters, 20));
  registry.subscribe(1, a, ['uptime'], 30);
  t.same(registry.list(), [{ vm: a, items: ['uptime'], subscribedAt: 30, counters, reportedAt: 20 }]);
  registry.subscribe(1, b, ['uptime'], 40);
  t.same(registry.list(), [{ vm: b, items: ['uptime'], subscribedAt: 40, counters: null, reportedAt: null }]);
});

t.test('a reported object is copied, extra keys dropped', async (t) => {
  const registry = new Registry<number>();
  registry.subscribe(1, a, [], 1);
  const sent = { ...counters, smuggled: 'x' };
  registry.report(1, sent, 2);
  sent.requests = 999;
  t.same(registry.list()[0]?.counters, counters);
});

t.test('the list is sorted by name', async (t) => {
  const registry = new Registry<string>();
  registry.subscribe('k1', b, [], 1);
  registry.subscribe('k2', a, [], 1);
  t.same(registry.list().map((e) => e.vm.name), ['a', 'b']);
});
