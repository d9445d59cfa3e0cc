import fc from 'fast-check';
import t from 'tap';
import { MAX_PIDFILE_LENGTH, MAX_SOCKET_PATH_BYTES, MAX_VM_NAME_LENGTH, MAX_VM_RECORD_BYTES, MAX_VM_UUID_LENGTH, encodeVmRecord, parseVmRecord, type VmRecord } from '../../common/vm-record.js';

const RECORD: VmRecord = {
  v: 1, pid: 4242, startTime: '123456789', name: 'web1', uuid: 'c0ffee00-0000-4000-8000-000000000001',
  transport: 'virtio-serial', guestDevice: 'org.hostinfo.0', pidfile: '/run/user/1000/hostinfo/vms/web1/qemu.pid',
};

const problem = (raw: unknown): string | undefined => {
  const parsed = parseVmRecord(typeof raw === 'string' ? raw : JSON.stringify(raw));
  return parsed.ok ? undefined : parsed.problem;
};

t.test('a record survives encoding and parsing', async (t) => {
  t.same(parseVmRecord(encodeVmRecord(RECORD)), { ok: true, record: RECORD });
  const minimal: VmRecord = { ...RECORD, name: undefined, uuid: undefined, pidfile: undefined, transport: 'isa-serial', guestDevice: '/dev/ttyS1' };
  t.equal(encodeVmRecord(minimal), '{"v":1,"pid":4242,"startTime":"123456789","transport":"isa-serial","guestDevice":"/dev/ttyS1"}\n', 'undefined fields are left out');
  t.same(parseVmRecord(encodeVmRecord(minimal)), { ok: true, record: minimal });
  const longest: VmRecord = { ...RECORD, name: 'n'.repeat(MAX_VM_NAME_LENGTH), uuid: 'u'.repeat(MAX_VM_UUID_LENGTH), guestDevice: 'g'.repeat(64), pidfile: `/${'p'.repeat(MAX_PIDFILE_LENGTH - 1)}`, startTime: '9'.repeat(20) };
  t.ok(encodeVmRecord(longest).length <= MAX_VM_RECORD_BYTES, 'every field at its longest still fits');
  t.same(parseVmRecord(encodeVmRecord(longest)), { ok: true, record: longest });
});

t.test('every field is checked', async (t) => {
  const bad = (patch: object): string | undefined => problem({ ...RECORD, ...patch });
  t.match(bad({ v: 2 }), /^v must be 1/);
  t.match(bad({ v: '1' }), /^v must be 1/);
  t.match(problem({ ...RECORD, v: undefined }), /^v must be 1/);
  for (const pid of [0, 1, -5, 1.5, '4242', null, 2 ** 53]) t.match(bad({ pid }), /^pid must be an integer above 1/, `pid ${JSON.stringify(pid)}`);
  for (const startTime of ['', 'abc', '12a', '-1', '1'.repeat(21), 12345, null]) t.match(bad({ startTime }), /^startTime/, `startTime ${JSON.stringify(startTime)}`);
  t.match(bad({ name: 'n'.repeat(MAX_VM_NAME_LENGTH + 1) }), /^name is longer than 256/);
  t.match(bad({ name: '' }), /^name must be a non-empty string/);
  t.match(bad({ name: 5 }), /^name must be a non-empty string/);
  t.match(bad({ name: null }), /^name must be a non-empty string/);
  t.match(bad({ uuid: 'u'.repeat(MAX_VM_UUID_LENGTH + 1) }), /^uuid/);
  t.match(bad({ uuid: '' }), /^uuid/);
  t.match(bad({ uuid: {} }), /^uuid/);
  for (const transport of ['serial', '', null, 'ISA-SERIAL']) t.match(bad({ transport }), /^transport/, `transport ${JSON.stringify(transport)}`);
  for (const guestDevice of ['', 'g'.repeat(65), 7, undefined]) t.match(bad({ guestDevice }), /^guestDevice/, `guestDevice ${JSON.stringify(guestDevice)}`);
  for (const pidfile of ['qemu.pid', '', `/${'p'.repeat(MAX_PIDFILE_LENGTH)}`, 5]) t.match(bad({ pidfile }), /^pidfile must be an absolute path/, `pidfile ${String(pidfile).slice(0, 12)}`);
  t.match(bad({ extra: 1 }), /^unexpected key "extra"/);
  t.match(bad({ ['k'.repeat(100)]: 1 }), /^unexpected key "k+$/, 'a long key is cut short in the problem');
  t.ok((bad({ ['k'.repeat(100)]: 1 }) ?? '').length < 60);
  t.match(problem(`${JSON.stringify(RECORD).slice(0, -1)},"__proto__":{"v":1}}`), /^unexpected key "__proto__"/, 'a __proto__ key in JSON is just another key');
});

t.test('the whole text is checked before anything is parsed', async (t) => {
  t.equal(problem(`${' '.repeat(5000)}${JSON.stringify(RECORD)}`), `larger than ${MAX_VM_RECORD_BYTES} bytes`, 'a 5000-byte text');
  t.equal(problem({ ...RECORD, name: 'n'.repeat(5000) }), `larger than ${MAX_VM_RECORD_BYTES} bytes`);
  t.equal(problem(''), 'not JSON');
  t.equal(problem('{"v":1,'), 'not JSON');
  t.equal(problem('[1]'), 'not a JSON object');
  t.equal(problem('null'), 'not a JSON object');
  t.equal(problem('"x"'), 'not a JSON object');
});

t.test('parseVmRecord never throws and only ever accepts complete records', async (t) => {
  const accepted = (result: ReturnType<typeof parseVmRecord>): boolean =>
    !result.ok || (result.record.v === 1 && Number.isSafeInteger(result.record.pid) && /^\d+$/.test(result.record.startTime));
  fc.assert(fc.property(fc.string({ maxLength: 6000 }), (text) => accepted(parseVmRecord(text))));
  fc.assert(fc.property(fc.json(), (text) => accepted(parseVmRecord(text))));
  const field = fc.oneof(fc.jsonValue(), fc.constant(undefined));
  const nearRecord = fc.record({ v: fc.oneof(fc.constant(1), field), pid: fc.oneof(fc.integer(), field), startTime: fc.oneof(fc.stringMatching(/^\d{1,22}$/), field), name: field, uuid: field, transport: fc.oneof(fc.constantFrom('isa-serial', 'virtio-serial'), field), guestDevice: field, pidfile: field }, { requiredKeys: [] });
  fc.assert(fc.property(nearRecord, (raw) => {
    const result = parseVmRecord(JSON.stringify(raw));
    if (!result.ok) return typeof result.problem === 'string' && result.problem.length > 0;
    return parseVmRecord(encodeVmRecord(result.record)).ok;
  }), { numRuns: 500 });
  t.pass('fast-check found no counterexample');
});

t.test('attached: a VM hostinfo did not launch', async (t) => {
  const { pidfile: _none, ...noPidfile } = RECORD;
  const attached: VmRecord = { ...noPidfile, pidfile: undefined, attached: { guestSocket: '/var/lib/libvirt/qemu/channel/target/domain-3-web1/org.hostinfo.0', qmpSocket: undefined } };
  t.same(parseVmRecord(encodeVmRecord(attached)), { ok: true, record: attached }, 'without a QMP socket');
  const withQmp: VmRecord = { ...attached, attached: { guestSocket: '/run/a/guest.sock', qmpSocket: '/run/a/qmp.sock' } };
  t.same(parseVmRecord(encodeVmRecord(withQmp)), { ok: true, record: withQmp }, 'with one');
  const longest = `/${'s'.repeat(MAX_SOCKET_PATH_BYTES - 1)}`;
  const longestRecord: VmRecord = { ...attached, name: 'n'.repeat(MAX_VM_NAME_LENGTH), uuid: 'u'.repeat(MAX_VM_UUID_LENGTH), guestDevice: 'g'.repeat(64), attached: { guestSocket: longest, qmpSocket: longest } };
  t.ok(encodeVmRecord(longestRecord).length <= MAX_VM_RECORD_BYTES, 'every field at its longest still fits');
  t.same(parseVmRecord(encodeVmRecord(longestRecord)), { ok: true, record: longestRecord });
  t.notOk('attached' in (parseVmRecord(encodeVmRecord(RECORD)) as { record: object }).record, 'a launched VM\'s record has no attached key at all');

  const bad = (patch: object): string | undefined => problem({ ...noPidfile, ...patch });
  const sockets = { guestSocket: '/run/a/guest.sock' };
  t.equal(bad({ attached: sockets }), undefined);
  t.equal(problem({ ...RECORD, attached: sockets }), 'an attached VM has no pidfile to follow: attach gives QEMU\'s own pid', 'attached and pidfile together');
  for (const value of [null, [], 'x', 1, true]) t.equal(bad({ attached: value }), 'attached must be an object', `attached ${JSON.stringify(value)}`);
  t.equal(bad({ attached: {} }), 'attached.guestSocket must be an absolute path', 'no guest socket');
  for (const guestSocket of ['guest.sock', './g', '', 5, null]) t.equal(bad({ attached: { guestSocket } }), 'attached.guestSocket must be an absolute path', `guestSocket ${JSON.stringify(guestSocket)}`);
  t.match(bad({ attached: { guestSocket: `${longest}s` } }), /^attached\.guestSocket is longer than 107 bytes/, '108 bytes');
  t.match(bad({ attached: { guestSocket: `/${'é'.repeat(54)}` } }), /^attached\.guestSocket is longer than 107 bytes/, '55 characters, 109 bytes');
  t.equal(bad({ attached: { guestSocket: '/run/a\0b' } }), 'attached.guestSocket must not contain NUL');
  for (const qmpSocket of ['qmp.sock', null, '', 0]) t.equal(bad({ attached: { ...sockets, qmpSocket } }), 'attached.qmpSocket must be an absolute path', `qmpSocket ${JSON.stringify(qmpSocket)}`);
  t.match(bad({ attached: { ...sockets, qmpSocket: `${longest}q` } }), /^attached\.qmpSocket is longer than 107 bytes/);
  t.equal(bad({ attached: { ...sockets, extra: 1 } }), 'unexpected key attached."extra"', 'an unknown key inside attached');
  t.equal(bad({ attached: { ...sockets, pidfile: '/run/x.pid' } }), 'unexpected key attached."pidfile"');
  t.equal(problem(`${JSON.stringify({ ...noPidfile, attached: undefined }).slice(0, -1)},"attached":{"guestSocket":"/g","__proto__":{}}}`), 'unexpected key attached."__proto__"', 'a JSON __proto__ key inside attached');

  fc.assert(fc.property(fc.record({ guestSocket: fc.oneof(fc.string(), fc.jsonValue()), qmpSocket: fc.oneof(fc.string(), fc.jsonValue(), fc.constant(undefined)) }, { requiredKeys: [] }), (value) => {
    const result = parseVmRecord(JSON.stringify({ ...noPidfile, attached: value }));
    if (!result.ok) return result.problem.startsWith('attached') || result.problem === `larger than ${MAX_VM_RECORD_BYTES} bytes`;
    const sockets = result.record.attached;
    return sockets !== undefined && sockets.guestSocket.startsWith('/') && Buffer.byteLength(sockets.guestSocket) <= MAX_SOCKET_PATH_BYTES
      && (sockets.qmpSocket === undefined || (sockets.qmpSocket.startsWith('/') && Buffer.byteLength(sockets.qmpSocket) <= MAX_SOCKET_PATH_BYTES));
  }), { numRuns: 1000 });
});

t.test('vhostmd: a launched VM\'s marker, an attached VM\'s socket with it', async (t) => {
  const launched: VmRecord = { ...RECORD, vhostmd: true };
  t.same(parseVmRecord(encodeVmRecord(launched)), { ok: true, record: launched }, 'launched: the marker alone (the socket is vhostmd.sock in its directory)');
  t.notOk('vhostmd' in (parseVmRecord(encodeVmRecord(RECORD)) as { record: object }).record, 'without a vhostmd port there is no key at all');
  for (const vhostmd of [false, 'true', 1, null, {}]) t.equal(problem({ ...RECORD, vhostmd }), 'vhostmd must be true when present', `vhostmd ${JSON.stringify(vhostmd)}`);

  const { pidfile: _none, ...noPidfile } = RECORD;
  const attached: VmRecord = { ...noPidfile, pidfile: undefined, vhostmd: true, attached: { guestSocket: '/run/a/guest.sock', qmpSocket: undefined, vhostmdSocket: '/run/a/org.github.vhostmd.1' } };
  t.same(parseVmRecord(encodeVmRecord(attached)), { ok: true, record: attached }, 'attached: the marker and the socket');
  t.equal(problem({ ...noPidfile, vhostmd: true, attached: { guestSocket: '/run/a/g' } }), 'an attached VM with vhostmd needs attached.vhostmdSocket');
  t.equal(problem({ ...noPidfile, attached: { guestSocket: '/run/a/g', vhostmdSocket: '/run/a/v' } }), 'attached.vhostmdSocket needs vhostmd: true');
  for (const vhostmdSocket of ['v.sock', '', 3, null]) t.equal(problem({ ...noPidfile, vhostmd: true, attached: { guestSocket: '/g', vhostmdSocket } }), 'attached.vhostmdSocket must be an absolute path', `vhostmdSocket ${JSON.stringify(vhostmdSocket)}`);
  t.match(problem({ ...noPidfile, vhostmd: true, attached: { guestSocket: '/g', vhostmdSocket: `/${'v'.repeat(MAX_SOCKET_PATH_BYTES)}` } }), /^attached\.vhostmdSocket is longer than 107 bytes/);
  const longest = `/${'s'.repeat(MAX_SOCKET_PATH_BYTES - 1)}`;
  const longestRecord: VmRecord = { ...attached, name: 'n'.repeat(MAX_VM_NAME_LENGTH), uuid: 'u'.repeat(MAX_VM_UUID_LENGTH), guestDevice: 'g'.repeat(64), attached: { guestSocket: longest, qmpSocket: longest, vhostmdSocket: longest } };
  t.ok(encodeVmRecord(longestRecord).length <= MAX_VM_RECORD_BYTES, 'three sockets at their longest still fit');
  t.same(parseVmRecord(encodeVmRecord(longestRecord)), { ok: true, record: longestRecord });
});
