import t from 'tap';
import fc from 'fast-check';
import { parseControlMessage } from '../../daemon/control-messages.js';
import { HOST_ITEM_NAMES, ITEM_NAMES } from '../../policies/items.js';
import {
  DAEMON_PROTOCOL, MAX_CLIENT_MESSAGE_BYTES, MAX_QMP_TEXT, negotiate, readEnvelope, MAX_SERVER_MESSAGE_BYTES, errorMessage, hostItemsOf,
  parseSidecarMessage, parseToSidecarMessage, ProtocolError, sampleMessage,
} from '../../daemon/messages.js';

const code = (parsed: { ok: true } | { ok: false; error: ProtocolError }): string | undefined => (parsed.ok ? undefined : parsed.error.code);
const sidecar = (message: unknown): string | undefined => code(parseSidecarMessage(typeof message === 'string' ? message : JSON.stringify(message)));
const toSidecar = (message: unknown): string | undefined => code(parseToSidecarMessage(JSON.stringify(message)));

const HELLO = { v: 2, type: 'hello', qmp: { name: 'web1', uuid: 'c0ffee00-0000-4000-8000-000000000001', version: '8.2.2' }, features: [] as string[] };
const COUNTERS = { v: 2, type: 'counters', requests: 5, ok: 3, denied: 1, rateLimited: 1, errors: 0, droppedBytes: 10, droppedLines: 2, lastRequestAt: 1795600000000 };
const ACCESS = {
  v: 2, type: 'access', vm: { name: 'web1', uuid: 'u', pid: 77 }, served: true, items: ['physcpus', 'vcpudelay'],
  limit: { intervalMs: 1000, burst: 5 }, file: '/etc/hostinfo/policies/web1.toml', reason: null, maxAgeMs: 5000,
  sampleIntervalMs: 1000, guest: { linesPerSecond: 100, bytesPerSecond: 16384 },
};
const SAMPLE = { v: 2, type: 'sample', seq: 3, takenAt: 1795600000000, values: { physcpus: 4, loadavg: [0.1, 0.2, 0.3] } };

t.test('what a sidecar may send parses', async (t) => {
  t.same(parseSidecarMessage(JSON.stringify(HELLO)), { ok: true, message: HELLO });
  t.same(parseSidecarMessage(JSON.stringify(COUNTERS)), { ok: true, message: COUNTERS });
  t.equal(sidecar({ ...COUNTERS, lastRequestAt: null }), undefined);
  t.equal(sidecar({ ...HELLO, qmp: { name: null, uuid: null, version: '' } }), undefined, 'QEMU without -name and -uuid');
});

t.test('every way a sidecar message can be wrong has its code', async (t) => {
  t.equal(sidecar('{"v":2,"type":"hello"'), 'MALFORMED_JSON');
  t.equal(sidecar('[1]'), 'INVALID_MESSAGE');
  t.equal(sidecar('null'), 'INVALID_MESSAGE');
  t.equal(sidecar('{"type":"hello"}'), 'BAD_VERSION');
  t.equal(sidecar({ ...HELLO, v: 1 }), 'BAD_VERSION', 'protocol v1 is over');
  t.equal(sidecar({ ...HELLO, v: '2' }), 'BAD_VERSION');
  t.equal(sidecar('{"v":2}'), 'INVALID_MESSAGE');
  t.equal(sidecar({ v: 2, type: 5 }), 'INVALID_MESSAGE');
  t.equal(sidecar({ v: 2, type: 'status' }), 'UNKNOWN_TYPE', 'status is the control socket\'s, not the channel\'s');
  t.equal(sidecar({ v: 2, type: 'sample' }), 'UNKNOWN_TYPE', 'a daemon message type from a sidecar');
  t.same(parseSidecarMessage(JSON.stringify({ ...HELLO, extra: 1 })), { ok: true, message: HELLO }, 'an unknown key is ignored, not passed on');
  t.equal(sidecar(' '.repeat(MAX_CLIENT_MESSAGE_BYTES + 1)), 'TOO_LARGE');
  t.equal(sidecar(`"${'é'.repeat(MAX_CLIENT_MESSAGE_BYTES / 2)}"`), 'TOO_LARGE', 'bytes are counted, not characters');
});

t.test('hello validation', async (t) => {
  const bad = (qmp: unknown): string | undefined => sidecar({ ...HELLO, qmp });
  t.equal(bad(null), undefined, 'qmp null: an attached VM without a QMP socket');
  t.equal(bad(undefined), 'INVALID_MESSAGE');
  t.equal(bad('qmp'), 'INVALID_MESSAGE');
  t.equal(bad({ ...HELLO.qmp, extra: 1 }), undefined, 'unknown keys are ignored inside objects too');
  t.equal(bad({ ...HELLO.qmp, name: 5 }), 'INVALID_MESSAGE');
  t.equal(bad({ ...HELLO.qmp, name: 'x'.repeat(MAX_QMP_TEXT + 1) }), 'INVALID_MESSAGE');
  t.equal(bad({ ...HELLO.qmp, name: 'x'.repeat(MAX_QMP_TEXT) }), undefined);
  t.equal(bad({ ...HELLO.qmp, uuid: ['u'] }), 'INVALID_MESSAGE');
  t.equal(bad({ ...HELLO.qmp, version: null }), 'INVALID_MESSAGE');
  t.equal(sidecar({ v: 2, type: 'hello' }), 'INVALID_MESSAGE', 'no qmp at all');
  t.same(parseSidecarMessage(JSON.stringify({ ...HELLO, features: ['query', 'teleport', 7] })), { ok: true, message: { ...HELLO, features: ['query'] } }, 'features this side knows are kept, others dropped');
  t.same(parseSidecarMessage(JSON.stringify({ ...HELLO, features: 'query' })), { ok: true, message: HELLO }, 'features not a list: none');
  t.same(parseSidecarMessage(JSON.stringify({ ...HELLO, vm: { name: 'x', uuid: 'y', pid: 1 }, items: ['hostname'] })), { ok: true, message: HELLO },
    'a sidecar cannot say which VM it is nor which items it wants: such keys never get past the parser');
});

t.test('counters validation', async (t) => {
  for (const key of ['requests', 'ok', 'denied', 'rateLimited', 'errors', 'droppedBytes', 'droppedLines'] as const) {
    t.equal(sidecar({ ...COUNTERS, [key]: -1 }), 'INVALID_MESSAGE', `${key} -1`);
    t.equal(sidecar({ ...COUNTERS, [key]: 0.5 }), 'INVALID_MESSAGE', `${key} 0.5`);
    const { [key]: _, ...missing } = COUNTERS;
    t.equal(sidecar(missing), 'INVALID_MESSAGE', `${key} missing`);
  }
  t.equal(sidecar({ ...COUNTERS, lastRequestAt: 'now' }), 'INVALID_MESSAGE');
  t.equal(sidecar({ ...COUNTERS, lastRequestAt: -1 }), 'INVALID_MESSAGE');
  t.same(parseSidecarMessage(JSON.stringify({ ...COUNTERS, extra: 0 })), { ok: true, message: COUNTERS });
});

t.test('the control socket: its requests, version-negotiated', async (t) => {
  const control = (text: string): string | undefined => code(parseControlMessage(text));
  t.same(parseControlMessage('{"v":2,"type":"status"}'), { ok: true, message: { v: 2, type: 'status' } });
  t.equal(control('{"v":2,"type":"hello"}'), 'NOT_ALLOWED');
  t.same(parseControlMessage('{"v":2,"type":"reload"}'), { ok: true, message: { v: 2, type: 'reload' } });
  t.same(parseControlMessage('{"v":2,"type":"detach","vm":"web1"}'), { ok: true, message: { v: 2, type: 'detach', vm: 'web1' } });
  t.equal(control('{"v":2,"type":"detach","vm":""}'), 'INVALID_MESSAGE');
  t.equal(control('{"v":2,"type":"detach"}'), 'INVALID_MESSAGE');
  t.equal(control(JSON.stringify(COUNTERS)), 'NOT_ALLOWED');
  t.equal(control('{"v":2,"type":"status","extra":1}'), undefined, 'unknown keys are ignored');
  t.same(parseControlMessage('{"v":3,"range":{"min":2,"max":3},"type":"status"}'), { ok: true, message: { v: 2, type: 'status' } }, 'a newer client: the reply in v2');
  t.match(parseControlMessage('{"v":4,"range":{"min":4,"max":5},"type":"status"}'), { ok: false, error: { code: 'BAD_VERSION', message: /hostinfod speaks 2, this client speaks 4\.\.5/ } });
  t.equal(control('{"v":1,"type":"status"}'), 'BAD_VERSION');
  t.equal(control('{"v":2,'), 'MALFORMED_JSON');
  t.equal(control(JSON.stringify({ v: 2, type: 'status', pad: 'x'.repeat(MAX_CLIENT_MESSAGE_BYTES) })), 'TOO_LARGE');
});

t.test('what a sidecar receives is validated too, values included', async (t) => {
  t.same(parseToSidecarMessage(JSON.stringify(SAMPLE)), { ok: true, message: SAMPLE });
  t.equal(toSidecar({ ...SAMPLE, seq: -1 }), 'INVALID_MESSAGE');
  t.equal(toSidecar({ ...SAMPLE, seq: 1.5 }), 'INVALID_MESSAGE');
  t.equal(toSidecar({ ...SAMPLE, takenAt: 'x' }), 'INVALID_MESSAGE');
  t.equal(toSidecar({ ...SAMPLE, values: { physcpus: -4 } }), 'INVALID_MESSAGE');
  t.equal(toSidecar({ ...SAMPLE, values: { vcpudelay: 1 } }), 'INVALID_MESSAGE', 'a sidecar item never comes from the daemon');
  t.same(parseToSidecarMessage(JSON.stringify({ ...SAMPLE, extra: 1 })), { ok: true, message: SAMPLE });
  t.equal(toSidecar({ v: 2, type: 'error', code: 'X', message: 'y' }), undefined);
  t.equal(toSidecar({ v: 2, type: 'error', code: 1, message: 'y' }), 'INVALID_MESSAGE');
  t.equal(toSidecar({ v: 2, type: 'status' }), 'UNKNOWN_TYPE');
  t.equal(toSidecar({ ...SAMPLE, v: 1 }), 'BAD_VERSION');
  t.equal(code(parseToSidecarMessage(' '.repeat(MAX_SERVER_MESSAGE_BYTES + 1))), 'TOO_LARGE');
});

t.test('access validation', async (t) => {
  t.same(parseToSidecarMessage(JSON.stringify(ACCESS)), { ok: true, message: ACCESS });
  const refused = { ...ACCESS, served: false, items: [], file: null, reason: 'no policy for this VM' };
  t.equal(toSidecar(refused), undefined);
  const bad = (patch: object): string | undefined => toSidecar({ ...ACCESS, ...patch });
  t.same(parseToSidecarMessage(JSON.stringify({ ...ACCESS, extra: 1, range: { min: 2, max: 9 }, limit: { ...ACCESS.limit, extra: 1 } })), { ok: true, message: ACCESS });
  t.equal(bad({ vm: { name: 'x', uuid: 'y' } }), 'INVALID_MESSAGE');
  t.equal(bad({ vm: { name: 'x', uuid: 'y', pid: -1 } }), 'INVALID_MESSAGE');
  t.equal(bad({ served: 'yes' }), 'INVALID_MESSAGE');
  t.equal(bad({ items: ['futureitem'] }), 'INVALID_MESSAGE', 'only catalogue items');
  t.equal(bad({ items: 'physcpus' }), 'INVALID_MESSAGE');
  t.equal(bad({ limit: { intervalMs: 0, burst: 1 } }), 'INVALID_MESSAGE');
  t.equal(bad({ limit: { intervalMs: 1, burst: 0 } }), 'INVALID_MESSAGE');
  t.equal(bad({ file: 5 }), 'INVALID_MESSAGE');
  t.equal(bad({ reason: 'x'.repeat(8193) }), 'INVALID_MESSAGE');
  t.equal(bad({ maxAgeMs: -1 }), 'INVALID_MESSAGE');
  t.equal(bad({ sampleIntervalMs: null }), 'INVALID_MESSAGE');
  t.equal(bad({ guest: { linesPerSecond: 1 } }), 'INVALID_MESSAGE');
  t.equal(bad({ guest: { linesPerSecond: 1.5, bytesPerSecond: 1 } }), 'INVALID_MESSAGE');
});

t.test('host items of a policy: only those the daemon samples, in the order given', async (t) => {
  t.same(hostItemsOf(ITEM_NAMES), HOST_ITEM_NAMES, 'the whole catalogue: exactly the host items, catalogue order');
  t.same(hostItemsOf(['physcpus', 'hosttime', 'vcpudelay', 'vmcount']), ['physcpus', 'vmcount']);
  t.same(hostItemsOf(['hypervisor', 'vcpudelay']), []);
  t.same(hostItemsOf([]), []);
});

t.test('frames the daemon builds pass the sidecar-side validator', async (t) => {
  const sample = sampleMessage(7, { takenAt: 5, values: { physcpus: 2 } }, { physcpus: 2 });
  t.same(parseToSidecarMessage(JSON.stringify(sample)), { ok: true, message: sample });
  const error = errorMessage(new ProtocolError('NOT_ALLOWED', 'no'));
  t.same(parseToSidecarMessage(JSON.stringify(error)), { ok: true, message: { v: 2, type: 'error', code: 'NOT_ALLOWED', message: 'no' } });
});

t.test('no text makes a parser throw', async (t) => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ v: 2, type: 'hello', qmp: v }))), (text) => {
    for (const parse of [parseSidecarMessage, parseControlMessage, parseToSidecarMessage]) {
      const parsed = parse(text);
      if (!parsed.ok && !(parsed.error instanceof ProtocolError)) return false;
    }
    return true;
  }));
  t.pass('fast-check found no throwing input');
});

t.test('version ranges: envelope and negotiation', async (t) => {
  const envelope = (message: object): ReturnType<typeof readEnvelope> => readEnvelope(JSON.stringify(message), MAX_CLIENT_MESSAGE_BYTES);
  t.match(envelope(HELLO), { ok: true, message: { v: 2, type: 'hello', range: { min: 2, max: 2 }, announced: false } }, 'no range: just v');
  t.match(envelope({ ...HELLO, v: 3, range: { min: 2, max: 5 } }), { ok: true, message: { v: 3, range: { min: 2, max: 5 }, announced: true } });
  const bad = (message: object): string | undefined => { const e = envelope(message); return e.ok ? undefined : e.error.code; };
  t.equal(bad({ ...HELLO, range: { min: 3, max: 2 } }), 'INVALID_MESSAGE', 'min above max');
  t.equal(bad({ ...HELLO, range: { min: 2 } }), 'INVALID_MESSAGE');
  t.equal(bad({ ...HELLO, range: [2, 3] }), 'INVALID_MESSAGE');
  t.equal(bad({ ...HELLO, range: { min: 0.5, max: 3 } }), 'INVALID_MESSAGE');
  t.equal(bad({ ...HELLO, v: 6, range: { min: 2, max: 5 } }), 'BAD_VERSION', 'v outside its own range');
  t.equal(bad({ ...HELLO, v: 0 }), 'BAD_VERSION');
  const names = { mine: 'a', theirs: 'b' };
  t.match(negotiate(DAEMON_PROTOCOL, { min: 2, max: 5 }, names), { ok: true, version: 2 });
  t.match(negotiate({ min: 2, max: 4 }, { min: 3, max: 9 }, names), { ok: true, version: 4 }, 'the highest common');
  t.match(negotiate({ min: 2, max: 2 }, { min: 4, max: 5 }, names), { ok: false, error: { code: 'BAD_VERSION', message: 'no common protocol version: a speaks 2, b speaks 4..5' } });
});
