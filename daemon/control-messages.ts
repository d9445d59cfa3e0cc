// What an administrator may ask on the control socket (hostinfo-ctl), and what it is answered:
// one request per connection. Checked like every frame: size first, the envelope and version
// negotiation of messages.ts, then each field; unknown keys are ignored, unknown types refused.

import { isCount, isOptionalText, isPlainObject } from '../common/json-checks.js';
import { checkSocketPath, MAX_VM_NAME_LENGTH, MAX_VM_UUID_LENGTH, type Transport } from '../common/vm-record.js';
import { DAEMON_PROTOCOL, MAX_CLIENT_MESSAGE_BYTES, ProtocolError, type ProtocolErrorCode, negotiate, readEnvelope } from './messages.js';
import { isQueryLine, MAX_QUERY_LINE, type StatusReply } from './message-types.js';

/** Longest guest device name: /dev/ttyS<N> or a virtio port name (QEMU allows any string). */
export const MAX_GUEST_DEVICE_LENGTH = 64;

/** A VM hostinfo did not launch, as its manager (or its hook) describes it. */
export interface AttachSpec {
  /** QEMU's own pid; the VM is served until it exits. */
  readonly pid: number;
  readonly name: string | undefined;
  readonly uuid: string | undefined;
  readonly transport: Transport;
  /** The chardev socket QEMU listens on for the guest's port. */
  readonly guestSocket: string;
  /** A QMP socket free for the sidecar; without one, vCPU threads are found by name (debug-threads=on). */
  readonly qmpSocket: string | undefined;
  /** What the guest opens; default /dev/ttyS1 (isa-serial) or org.hostinfo.0 (virtio-serial). */
  readonly guestDevice: string;
  /** The chardev socket of the VM's vhostmd port (org.github.vhostmd.1), if it has one. */
  readonly vhostmdSocket?: string | undefined;
}

export type ControlRequest =
  | { readonly v: number; readonly type: 'status' }
  | { readonly v: number; readonly type: 'reload' }
  | { readonly v: number; readonly type: 'attach'; readonly vm: AttachSpec }
  /** `vm`: a VM's directory id, its name, or its QEMU pid in decimal. */
  | { readonly v: number; readonly type: 'detach'; readonly vm: string }
  /** The reply VM's guest would get to `line` now, without taking its token. */
  | { readonly v: number; readonly type: 'query'; readonly vm: string; readonly line: string };

/** A VM's access decision as a person compares it before and after a reload. */
export interface AccessSummary {
  readonly served: boolean;
  readonly reason: string | null;
  readonly file: string | null;
  readonly items: readonly string[];
  readonly limit: { readonly intervalMs: number; readonly burst: number } | null;
}
export interface ReloadChange {
  readonly id: string;
  readonly name: string;
  readonly before: AccessSummary;
  readonly after: AccessSummary;
}

export type ControlReply =
  | StatusReply
  | { readonly v: number; readonly type: 'attached'; readonly id: string; readonly already: boolean }
  | { readonly v: number; readonly type: 'detached'; readonly id: string }
  | { readonly v: number; readonly type: 'queried'; readonly id: string; readonly reply: string }
  | { readonly v: number; readonly type: 'reloaded'; readonly config: string | null; readonly vms: readonly ReloadChange[] };

type Parsed<T> = { ok: true; message: T } | { ok: false; error: ProtocolError };
const fail = (code: ProtocolErrorCode, message: string): { ok: false; error: ProtocolError } => ({ ok: false, error: new ProtocolError(code, message) });


/** A request in any version range that includes one this daemon speaks; answered in the highest common one. */
export function parseControlMessage(text: string): Parsed<ControlRequest> {
  const parsed = readEnvelope(text, MAX_CLIENT_MESSAGE_BYTES);
  if (!parsed.ok) return parsed;
  const { type, raw, range } = parsed.message;
  const agreed = negotiate(DAEMON_PROTOCOL, range, { mine: 'hostinfod', theirs: 'this client' });
  if (!agreed.ok) return agreed;
  const v = agreed.version;
  switch (type) {
    case 'status':
    case 'reload':
      return { ok: true, message: { v, type } };
    case 'attach': {
      const spec = attachSpecOf(raw['vm']);
      return typeof spec === 'string' ? fail('INVALID_MESSAGE', `attach: ${spec}`) : { ok: true, message: { v, type, vm: spec } };
    }
    case 'detach':
    case 'query': {
      const vm = raw['vm'];
      if (!(typeof vm === 'string' && vm.length > 0 && vm.length <= MAX_VM_NAME_LENGTH)) return fail('INVALID_MESSAGE', `${type}: vm must be a VM id, name or pid`);
      if (type === 'detach') return { ok: true, message: { v, type, vm } };
      const line = raw['line'];
      if (!isQueryLine(line)) return fail('INVALID_MESSAGE', `query: line must be one guest request, printable ASCII of at most ${MAX_QUERY_LINE}`);
      return { ok: true, message: { v, type, vm, line } };
    }
    default:
      return fail('NOT_ALLOWED', `the control socket answers status, reload, attach, detach and query, not ${JSON.stringify(type).slice(0, 40)}`);
  }
}

/** The attach fields, each checked, or what is wrong with the first bad one. */
export function attachSpecOf(vm: unknown): AttachSpec | string {
  if (!isPlainObject(vm)) return 'vm must be an object';
  const pid = vm['pid'];
  if (!(isCount(pid) && pid > 1)) return 'vm.pid must be an integer above 1';
  if (!isOptionalText(vm['name'], MAX_VM_NAME_LENGTH)) return `vm.name must be a string of 1 to ${MAX_VM_NAME_LENGTH} characters`;
  if (!isOptionalText(vm['uuid'], MAX_VM_UUID_LENGTH)) return `vm.uuid must be a string of 1 to ${MAX_VM_UUID_LENGTH} characters`;
  const transport = vm['transport'];
  if (transport !== 'isa-serial' && transport !== 'virtio-serial') return 'vm.transport must be isa-serial or virtio-serial';
  const guest = checkSocketPath(vm['guestSocket']);
  if (guest !== undefined) return `vm.guestSocket ${guest}`;
  const qmp = vm['qmpSocket'] === undefined ? undefined : checkSocketPath(vm['qmpSocket']);
  if (qmp !== undefined) return `vm.qmpSocket ${qmp}`;
  if (!isOptionalText(vm['guestDevice'], MAX_GUEST_DEVICE_LENGTH)) return `vm.guestDevice must be a string of 1 to ${MAX_GUEST_DEVICE_LENGTH} characters`;
  const vhostmd = vm['vhostmdSocket'] === undefined ? undefined : checkSocketPath(vm['vhostmdSocket']);
  if (vhostmd !== undefined) return `vm.vhostmdSocket ${vhostmd}`;
  return {
    pid,
    name: vm['name'] as string | undefined,
    uuid: vm['uuid'] as string | undefined,
    transport,
    guestSocket: vm['guestSocket'] as string,
    qmpSocket: vm['qmpSocket'] as string | undefined,
    guestDevice: (vm['guestDevice'] as string | undefined) ?? (transport === 'isa-serial' ? '/dev/ttyS1' : 'org.hostinfo.0'),
    ...(vm['vhostmdSocket'] === undefined ? {} : { vhostmdSocket: vm['vhostmdSocket'] as string }),
  };
}
