import t from 'tap';
import { encodeCommand, parseGreeting, parseServerMessage } from '../../../sidecar/qmp/messages.js';

// Verbatim from QEMU 7.2.22 (Debian bookworm).
const QEMU_7_2_GREETING = {
  QMP: { version: { qemu: { micro: 22, minor: 2, major: 7 }, package: 'Debian 1:7.2+dfsg-7+deb12u18+b3' }, capabilities: ['oob'] },
};

t.test('greeting', async (t) => {
  t.same(parseGreeting(QEMU_7_2_GREETING), {
    version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian 1:7.2+dfsg-7+deb12u18+b3' },
    capabilities: ['oob'],
  });
  t.same(parseGreeting({ QMP: { version: { qemu: { major: 9, minor: 0, micro: 0 } }, capabilities: [] } }), {
    version: { qemu: { major: 9, minor: 0, micro: 0 }, package: '' },
    capabilities: [],
  }, 'package may be missing');
  const bad: Array<[string, unknown]> = [
    ['no QMP', { return: {} }],
    ['QMP not an object', { QMP: [] }],
    ['no version', { QMP: { capabilities: [] } }],
    ['no qemu triple', { QMP: { version: { package: '' }, capabilities: [] } }],
    ['non-integer version', { QMP: { version: { qemu: { major: '7', minor: 2, micro: 0 } }, capabilities: [] } }],
    ['no capabilities', { QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } } } }],
    ['capabilities not strings', { QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } }, capabilities: [1] } }],
  ];
  for (const [what, message] of bad) t.type(parseGreeting(message as Record<string, unknown>), 'string', what);
});

t.test('replies and events', async (t) => {
  t.same(parseServerMessage({ return: {}, id: 'hq-1' }), { kind: 'return', id: 'hq-1', value: {} });
  t.same(parseServerMessage({ return: [], id: 3 }), { kind: 'return', id: 3, value: [] });
  t.same(parseServerMessage({ id: 7, error: { class: 'CommandNotFound', desc: 'The command nope has not been found' } }), {
    kind: 'error', id: 7, errorClass: 'CommandNotFound', desc: 'The command nope has not been found',
  });
  t.same(parseServerMessage({ timestamp: { seconds: 1, microseconds: 2 }, event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } }), {
    kind: 'event', event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' }, timestamp: { seconds: 1, microseconds: 2 },
  });
  t.same(parseServerMessage({ event: 'STOP', timestamp: { seconds: 5, microseconds: 6 } }), {
    kind: 'event', event: 'STOP', data: undefined, timestamp: { seconds: 5, microseconds: 6 },
  });
  t.type(parseServerMessage({ error: { class: 'GenericError' } }), 'string', 'error without desc');
  t.type(parseServerMessage({ event: 3 }), 'string');
  t.type(parseServerMessage({ event: 'X', data: [1] }), 'string');
  t.type(parseServerMessage({ QMP: {} }), 'string', 'second greeting');
  t.type(parseServerMessage({ hello: 1 }), 'string');
});

t.test('command encoding', async (t) => {
  t.equal(encodeCommand('query-status', undefined, 'hq-1'), '{"execute":"query-status","id":"hq-1"}\n');
  t.same(JSON.parse(encodeCommand('x', { a: [1] }, 'hq-2')), { execute: 'x', arguments: { a: [1] }, id: 'hq-2' });
});
