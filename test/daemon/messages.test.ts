import t from 'tap';
import { MAX_CLIENT_MESSAGE_BYTES, grantedItems, parseClientMessage, parseServerMessage } from '../../daemon/messages.js';

const vm = { name: 'web1', uuid: 'c0ffee00-0000-4000-8000-000000000001', pid: 77 };
const code = (text: string): string | undefined => {
  const parsed = parseClientMessage(text);
  return parsed.ok ? undefined : parsed.error.code;
};

t.test('valid client messages parse', async (t) => {
  t.same(parseClientMessage(JSON.stringify({ v: 1, type: 'hello', vm, items: ['physcpus', 'vcpudelay'] })), {
    ok: true, message: { v: 1, type: 'hello', vm, items: ['physcpus', 'vcpudelay'] },
  });
  const counters = { v: 1, type: 'counters', requests: 5, ok: 3, denied: 1, rateLimited: 1, errors: 0, lastRequestAt: 1795600000000 };
  t.same(parseClientMessage(JSON.stringify(counters)), { ok: true, message: counters });
  t.ok(parseClientMessage(JSON.stringify({ ...counters, lastRequestAt: null })).ok);
  t.same(parseClientMessage('{"v":1,"type":"status"}'), { ok: true, message: { v: 1, type: 'status' } });
});

t.test('every way a client message can be wrong has its code', async (t) => {
  t.equal(code('{"v":1,"type":"status"'), 'MALFORMED_JSON');
  t.equal(code('[1]'), 'INVALID_MESSAGE');
  t.equal(code('null'), 'INVALID_MESSAGE');
  t.equal(code('{"type":"status"}'), 'BAD_VERSION');
  t.equal(code('{"v":2,"type":"status"}'), 'BAD_VERSION');
  t.equal(code('{"v":"1","type":"status"}'), 'BAD_VERSION');
  t.equal(code('{"v":1}'), 'INVALID_MESSAGE');
  t.equal(code('{"v":1,"type":"sample"}'), 'UNKNOWN_TYPE', 'a server message type from a client');
  t.equal(code('{"v":1,"type":"status","extra":1}'), 'INVALID_MESSAGE');
  t.equal(code(' '.repeat(MAX_CLIENT_MESSAGE_BYTES + 1)), 'TOO_LARGE');
  t.equal(code(`"${'é'.repeat(MAX_CLIENT_MESSAGE_BYTES / 2)}"`), 'TOO_LARGE', 'bytes are counted, not characters');
});

t.test('hello validation', async (t) => {
  const bad = (patch: object): string | undefined => code(JSON.stringify({ v: 1, type: 'hello', vm, items: [], ...patch }));
  t.equal(bad({}), undefined, 'an empty item list is a valid (if useless) subscription');
  t.equal(bad({ vm: { ...vm, pid: 0 } }), 'INVALID_MESSAGE');
  t.equal(bad({ vm: { ...vm, pid: 1.5 } }), 'INVALID_MESSAGE');
  t.equal(bad({ vm: { ...vm, name: '' } }), 'INVALID_MESSAGE');
  t.equal(bad({ vm: { ...vm, name: 'x'.repeat(257) } }), 'INVALID_MESSAGE');
  t.equal(bad({ vm: { ...vm, uuid: 5 } }), 'INVALID_MESSAGE');
  t.equal(bad({ vm: { ...vm, extra: true } }), 'INVALID_MESSAGE');
  t.equal(bad({ vm: null }), 'INVALID_MESSAGE');
  t.equal(bad({ items: 'physcpus' }), 'INVALID_MESSAGE');
  t.equal(bad({ items: ['PHYSCPUS'] }), 'INVALID_MESSAGE');
  t.equal(bad({ items: [1] }), 'INVALID_MESSAGE');
  t.equal(bad({ items: Array(65).fill('physcpus') }), 'INVALID_MESSAGE');
  t.equal(bad({ items: ['futureitem'] }), undefined, 'an unknown but well-formed name is tolerated (a newer sidecar)');
});

t.test('counters validation', async (t) => {
  const base = { v: 1, type: 'counters', requests: 1, ok: 1, denied: 0, rateLimited: 0, errors: 0, lastRequestAt: null };
  t.equal(code(JSON.stringify({ ...base, ok: -1 })), 'INVALID_MESSAGE');
  t.equal(code(JSON.stringify({ ...base, errors: 0.5 })), 'INVALID_MESSAGE');
  t.equal(code(JSON.stringify({ ...base, lastRequestAt: 'now' })), 'INVALID_MESSAGE');
  const { denied: _, ...missing } = base;
  t.equal(code(JSON.stringify(missing)), 'INVALID_MESSAGE');
});

t.test('granted items: host items of the list, catalogue order, nothing else', async (t) => {
  t.same(grantedItems(['vmcount', 'vcpudelay', 'physcpus', 'hosttime', 'futureitem', 'physcpus', 'toString']), ['physcpus', 'vmcount']);
  t.same(grantedItems([]), []);
});

t.test('server messages are validated on receipt, values included', async (t) => {
  const sample = { v: 1, type: 'sample', seq: 3, takenAt: 1795600000000, values: { physcpus: 4, loadavg: [0.1, 0.2, 0.3] } };
  t.same(parseServerMessage(JSON.stringify(sample)), { ok: true, message: sample });
  const bad = (patch: object): boolean => !parseServerMessage(JSON.stringify({ ...sample, ...patch })).ok;
  t.ok(bad({ seq: -1 }));
  t.ok(bad({ takenAt: 'x' }));
  t.ok(bad({ values: { physcpus: -4 } }));
  t.ok(bad({ values: { vcpudelay: 1 } }), 'a sidecar item never comes from the cache');
  t.ok(bad({ extra: 1 }));
  t.ok(parseServerMessage('{"v":1,"type":"subscribed","items":["physcpus"]}').ok);
  t.notOk(parseServerMessage('{"v":1,"type":"subscribed","items":["vcpudelay"]}').ok);
  t.ok(parseServerMessage('{"v":1,"type":"error","code":"X","message":"y"}').ok);
  const status = { v: 1, type: 'status', pid: 1, startedAt: 1, intervalMs: 1000, seq: null, takenAt: null, vmcount: 1,
    vms: [{ vm, items: ['uptime'], subscribedAt: 2, counters: null, reportedAt: null }] };
  t.ok(parseServerMessage(JSON.stringify(status)).ok);
  t.notOk(parseServerMessage(JSON.stringify({ ...status, vms: [{ ...status.vms[0], counters: { requests: 1 } }] })).ok);
});
