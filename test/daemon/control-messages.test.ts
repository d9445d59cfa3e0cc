// The control socket's requests: every field of an attach checked on its own, unknown keys
// ignored, unknown types refused, and no text at all able to make the parser throw.

import fc from 'fast-check';
import t from 'tap';
import { MAX_SOCKET_PATH_BYTES, MAX_VM_NAME_LENGTH, MAX_VM_UUID_LENGTH } from '../../common/vm-record.js';
import { attachSpecOf, MAX_GUEST_DEVICE_LENGTH, parseControlMessage } from '../../daemon/control-messages.js';
import { DAEMON_PROTOCOL_VERSION, MAX_CLIENT_MESSAGE_BYTES } from '../../daemon/messages.js';

const V = DAEMON_PROTOCOL_VERSION;
const SPEC = {
  pid: 4242, name: 'web1', uuid: '0b7e6f52-1c1e-4b8e-9f0e-5a3c1d2e4f60', transport: 'virtio-serial',
  guestSocket: '/var/lib/libvirt/qemu/channel/target/domain-3-web1/org.hostinfo.0', qmpSocket: '/run/qmp/web1.sock', guestDevice: 'org.hostinfo.0',
};
const parse = (message: unknown): ReturnType<typeof parseControlMessage> => parseControlMessage(JSON.stringify(message));
const codeOf = (message: unknown): string | undefined => {
  const parsed = parse(message);
  return parsed.ok ? undefined : parsed.error.code;
};
const problem = (patch: Record<string, unknown>): string | undefined => {
  const spec = attachSpecOf({ ...SPEC, ...patch });
  return typeof spec === 'string' ? spec : undefined;
};

t.test('status, reload, attach and detach', async (t) => {
  t.same(parse({ v: V, type: 'status' }), { ok: true, message: { v: V, type: 'status' } });
  t.same(parse({ v: V, type: 'reload' }), { ok: true, message: { v: V, type: 'reload' } });
  t.same(parse({ v: V, type: 'attach', vm: SPEC }), { ok: true, message: { v: V, type: 'attach', vm: SPEC } });
  t.same(parse({ v: V, type: 'detach', vm: '4242' }), { ok: true, message: { v: V, type: 'detach', vm: '4242' } });
  t.same(parse({ v: V, type: 'status', vm: 'x', extra: [1], range: { min: V, max: V + 3 } }), { ok: true, message: { v: V, type: 'status' } }, 'unknown keys are ignored, a wider range is fine');
  t.same(parse({ v: V, type: 'attach', vm: { ...SPEC, future: true } }), { ok: true, message: { v: V, type: 'attach', vm: SPEC } }, 'unknown keys inside vm are dropped');
  t.same(parseControlMessage(`{"v":${V},"type":"attach","vm":${JSON.stringify(SPEC).slice(0, -1)},"__proto__":{"pid":1}}}`), { ok: true, message: { v: V, type: 'attach', vm: SPEC } }, 'a JSON __proto__ key is just a key');
});

t.test('what is refused, and with which code', async (t) => {
  for (const type of ['hello', 'counters', 'access', 'sample', 'STATUS', 'attached', '', 'constructor', '__proto__']) t.equal(codeOf({ v: V, type }), 'NOT_ALLOWED', `type ${JSON.stringify(type)}`);
  t.match(parse({ v: V, type: 'x'.repeat(5000) }), { ok: false, error: { message: /^the control socket answers status, reload, attach, detach.*, not "x{39}$/ } }, 'a long type is cut short in the message');
  t.equal(codeOf({ v: V }), 'INVALID_MESSAGE', 'no type');
  t.equal(codeOf({ v: V, type: 7 }), 'INVALID_MESSAGE');
  t.equal(codeOf({ type: 'status' }), 'BAD_VERSION');
  t.equal(codeOf({ v: V, type: 'attach' }), 'INVALID_MESSAGE', 'attach without vm');
  t.match(parse({ v: V, type: 'attach', vm: [] }), { ok: false, error: { code: 'INVALID_MESSAGE', message: 'attach: vm must be an object' } });
  t.match(parse({ v: V, type: 'attach', vm: { ...SPEC, pid: 1 } }), { ok: false, error: { code: 'INVALID_MESSAGE', message: 'attach: vm.pid must be an integer above 1' } });
  for (const vm of ['', 'v'.repeat(MAX_VM_NAME_LENGTH + 1), 4242, null, ['web1']]) t.equal(codeOf({ v: V, type: 'detach', vm }), 'INVALID_MESSAGE', `detach vm ${JSON.stringify(vm).slice(0, 20)}`);
  t.equal(codeOf({ v: V, type: 'detach', vm: 'v'.repeat(MAX_VM_NAME_LENGTH) }), undefined, 'the longest VM name');
  t.equal(codeOf({ v: V, type: 'status', pad: 'x'.repeat(MAX_CLIENT_MESSAGE_BYTES) }), 'TOO_LARGE');
  t.equal(codeOf({ v: V, type: 'status', pad: 'é'.repeat(MAX_CLIENT_MESSAGE_BYTES / 2) }), 'TOO_LARGE', 'the bound is in UTF-8 bytes');
  t.equal(parseControlMessage('not json').ok, false);
});

t.test('attachSpecOf, field by field', async (t) => {
  t.same(attachSpecOf(SPEC), SPEC);
  t.equal(attachSpecOf(null), 'vm must be an object');
  t.equal(attachSpecOf('web1'), 'vm must be an object');

  for (const pid of [0, 1, -4242, 1.5, '4242', null, undefined, 2 ** 53, Number.MAX_SAFE_INTEGER + 2]) t.equal(problem({ pid }), 'vm.pid must be an integer above 1', `pid ${String(pid)}`);
  t.equal(problem({ pid: 2 }), undefined, 'pid 2');
  t.equal(problem({ pid: Number.MAX_SAFE_INTEGER }), undefined, 'the largest safe integer (the kernel decides whether it runs)');

  t.equal(problem({ name: undefined }), undefined, 'no name');
  t.equal(problem({ name: 'n'.repeat(MAX_VM_NAME_LENGTH) }), undefined);
  for (const name of ['', 'n'.repeat(MAX_VM_NAME_LENGTH + 1), 5, null, {}]) t.equal(problem({ name }), `vm.name must be a string of 1 to ${MAX_VM_NAME_LENGTH} characters`, `name ${JSON.stringify(name)?.slice(0, 12)}`);
  t.equal(problem({ uuid: undefined }), undefined, 'no uuid');
  t.equal(problem({ uuid: 'u'.repeat(MAX_VM_UUID_LENGTH) }), undefined);
  for (const uuid of ['', 'u'.repeat(MAX_VM_UUID_LENGTH + 1), 1, null]) t.equal(problem({ uuid }), `vm.uuid must be a string of 1 to ${MAX_VM_UUID_LENGTH} characters`, `uuid ${JSON.stringify(uuid).slice(0, 12)}`);

  for (const transport of ['isa', 'ISA-SERIAL', 'virtio', '', null, undefined]) t.equal(problem({ transport }), 'vm.transport must be isa-serial or virtio-serial', `transport ${String(transport)}`);
});

t.test('socket paths: absolute, and at most 107 bytes', async (t) => {
  const longest = `/${'s'.repeat(MAX_SOCKET_PATH_BYTES - 1)}`;
  t.equal(MAX_SOCKET_PATH_BYTES, 107, 'sun_path holds 108 bytes with the NUL');
  t.equal(problem({ guestSocket: longest, qmpSocket: longest }), undefined, '107 bytes');
  t.match(problem({ guestSocket: `${longest}s` }), /^vm\.guestSocket is longer than 107 bytes/, '108 bytes');
  t.match(problem({ qmpSocket: `${longest}s` }), /^vm\.qmpSocket is longer than 107 bytes/);
  const multibyte = `/${'é'.repeat(53)}`;
  t.equal(Buffer.byteLength(multibyte), 107);
  t.equal(problem({ guestSocket: multibyte }), undefined, '54 characters, 107 bytes');
  t.match(problem({ guestSocket: `${multibyte}x` }), /longer than 107 bytes/, '55 characters, 108 bytes');
  t.match(problem({ guestSocket: `/${'€'.repeat(36)}` }), /longer than 107 bytes/, '37 characters, 109 bytes');
  for (const guestSocket of ['relative.sock', './x.sock', '', 7, null, undefined, ['/x']]) t.equal(problem({ guestSocket }), 'vm.guestSocket must be an absolute path', `guestSocket ${JSON.stringify(guestSocket)}`);
  t.equal(problem({ guestSocket: '/run/x\0y.sock' }), 'vm.guestSocket must not contain NUL');
  t.equal(problem({ qmpSocket: undefined }), undefined, 'no QMP socket: vCPU threads are found by name');
  for (const qmpSocket of ['qmp.sock', null, '', 1]) t.equal(problem({ qmpSocket }), 'vm.qmpSocket must be an absolute path', `qmpSocket ${JSON.stringify(qmpSocket)}`);
});

t.test('the guest device, and its default per transport', async (t) => {
  const withoutDevice = (transport: string): unknown => {
    const { guestDevice: _dropped, ...rest } = { ...SPEC, transport };
    const spec = attachSpecOf(rest);
    return typeof spec === 'string' ? spec : spec.guestDevice;
  };
  t.equal(withoutDevice('isa-serial'), '/dev/ttyS1');
  t.equal(withoutDevice('virtio-serial'), 'org.hostinfo.0');
  t.equal(problem({ transport: 'isa-serial', guestDevice: '/dev/ttyS3' }), undefined);
  t.equal(problem({ guestDevice: 'g'.repeat(MAX_GUEST_DEVICE_LENGTH) }), undefined);
  for (const guestDevice of ['', 'g'.repeat(MAX_GUEST_DEVICE_LENGTH + 1), 1, null]) t.equal(problem({ guestDevice }), `vm.guestDevice must be a string of 1 to ${MAX_GUEST_DEVICE_LENGTH} characters`, `guestDevice ${JSON.stringify(guestDevice).slice(0, 12)}`);
});

t.test('parseControlMessage never throws', async (t) => {
  const answered = (text: string): boolean => {
    const parsed = parseControlMessage(text);
    return parsed.ok ? ['status', 'reload', 'attach', 'detach', 'query'].includes(parsed.message.type) : typeof parsed.error.message === 'string';
  };
  fc.assert(fc.property(fc.string({ maxLength: 2000 }), answered), { numRuns: 2000 });
  fc.assert(fc.property(fc.json({ maxDepth: 4 }), answered), { numRuns: 2000 });
  const field = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined));
  const nearSpec = fc.record({
    pid: fc.oneof(fc.integer(), field), name: fc.oneof(fc.string(), field), uuid: fc.oneof(fc.uuid(), field),
    transport: fc.oneof(fc.constantFrom('isa-serial', 'virtio-serial'), field),
    guestSocket: fc.oneof(fc.string().map((s) => `/${s}`), field), qmpSocket: fc.oneof(fc.string().map((s) => `/${s}`), field), guestDevice: field,
  }, { requiredKeys: [] });
  fc.assert(fc.property(fc.constantFrom('attach', 'detach', 'status'), fc.oneof(nearSpec, field), (type, vm) => {
    const text = JSON.stringify({ v: V, type, vm });
    if (!answered(text)) return false;
    const parsed = parseControlMessage(text);
    // An accepted attach is one the daemon can publish: every bound holds.
    if (!parsed.ok || parsed.message.type !== 'attach') return true;
    const spec = parsed.message.vm;
    return Number.isSafeInteger(spec.pid) && spec.pid > 1 && Buffer.byteLength(spec.guestSocket) <= MAX_SOCKET_PATH_BYTES && spec.guestSocket.startsWith('/') && spec.guestDevice.length >= 1;
  }), { numRuns: 3000 });
  t.pass('fast-check found no counterexample');
});

t.test('attach: the vhostmd port\'s socket, optional and checked like the others', async (t) => {
  t.notOk('vhostmdSocket' in (attachSpecOf(SPEC) as object), 'none given: no key');
  t.same(attachSpecOf({ ...SPEC, vhostmdSocket: '/run/libvirt/qemu/channel/3-web1/org.github.vhostmd.1' }), { ...SPEC, vhostmdSocket: '/run/libvirt/qemu/channel/3-web1/org.github.vhostmd.1' });
  for (const vhostmdSocket of ['rel.sock', '', 7, null]) t.equal(problem({ vhostmdSocket }), 'vm.vhostmdSocket must be an absolute path', `vhostmdSocket ${JSON.stringify(vhostmdSocket)}`);
  t.match(problem({ vhostmdSocket: `/${'v'.repeat(MAX_SOCKET_PATH_BYTES)}` }), /^vm\.vhostmdSocket is longer than 107 bytes/);
  const parsed = parse({ v: V, type: 'attach', vm: { ...SPEC, vhostmdSocket: '/run/v.sock' } });
  t.match(parsed, { ok: true, message: { type: 'attach', vm: { vhostmdSocket: '/run/v.sock' } } });
});
