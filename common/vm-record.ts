// vm.json: what a launcher tells the daemon about one VM, by writing it into the VM's own
// directory under <runtime_dir>/vms/. The daemon trusts none of it blindly: the directory's owner
// (which the kernel vouches for) says who registered it, the pid must run as that owner, and the
// daemon only ever acts on this VM with that owner's rights.

import { isCount, isPlainObject, isOptionalText, isText } from './json-checks.js';

export const VM_RECORD_VERSION = 1;
/** A record with every field at its longest is under 1 KiB. */
export const MAX_VM_RECORD_BYTES = 4096;
export const MAX_VM_NAME_LENGTH = 256;
export const MAX_VM_UUID_LENGTH = 64;
export const MAX_PIDFILE_LENGTH = 1024;
/** sun_path holds 108 bytes with its terminating NUL: a longer socket path cannot be connected. */
export const MAX_SOCKET_PATH_BYTES = 107;

export type Transport = 'isa-serial' | 'virtio-serial';

/** The virtio-serial port vhostmd's guest tools open (vm-dump-metrics: /dev/virtio-ports/<name>). */
export const VHOSTMD_PORT_NAME = 'org.github.vhostmd.1';

export interface VmRecord {
  readonly v: typeof VM_RECORD_VERSION;
  /** The pid that becomes QEMU (the launcher execs it); with daemonize, QEMU's parent. */
  readonly pid: number;
  /** /proc/<pid>/stat start time: tells the registered process from a later one with its pid. */
  readonly startTime: string;
  /** From -name / -uuid as QEMU will report them; undefined when not given. */
  readonly name: string | undefined;
  readonly uuid: string | undefined;
  readonly transport: Transport;
  /** What the guest opens: /dev/ttyS<N> or the virtio port name. */
  readonly guestDevice: string;
  /** With -daemonize QEMU's pid is the one written to this file (absolute path). */
  readonly pidfile: string | undefined;
  /**
   * A VM hostinfo did not launch (`hostinfo-ctl attach`): its sockets are wherever its manager put
   * them, not in the VM's directory, and it may have no QMP socket to spare. Only the daemon writes
   * such a record, in a directory of its own.
   */
  readonly attached?: AttachedSockets | undefined;
  /**
   * The VM also has a vhostmd port (VHOSTMD_PORT_NAME): on <vm dir>/vhostmd.sock when launched,
   * on attached.vhostmdSocket when attached. Absent: no such port.
   */
  readonly vhostmd?: true | undefined;
}

export interface AttachedSockets {
  readonly guestSocket: string;
  readonly qmpSocket: string | undefined;
  /** Only with `vhostmd: true`, which an attached record has only with this. */
  readonly vhostmdSocket?: string | undefined;
}

export type VmRecordResult = { readonly ok: true; readonly record: VmRecord } | { readonly ok: false; readonly problem: string };

export function encodeVmRecord(record: VmRecord): string {
  return `${JSON.stringify(record)}\n`;
}


/** Size first, then JSON, then every field; anything unexpected makes the record invalid. */
export function parseVmRecord(text: string): VmRecordResult {
  if (text.length > MAX_VM_RECORD_BYTES) return { ok: false, problem: `larger than ${MAX_VM_RECORD_BYTES} bytes` };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'not JSON' };
  }
  if (!isPlainObject(raw)) return { ok: false, problem: 'not a JSON object' };
  const r = raw;
  const problem = checkFields(r);
  if (problem !== undefined) return { ok: false, problem };
  return {
    ok: true,
    record: {
      v: VM_RECORD_VERSION,
      pid: r['pid'] as number,
      startTime: r['startTime'] as string,
      name: r['name'] as string | undefined,
      uuid: r['uuid'] as string | undefined,
      transport: r['transport'] as Transport,
      guestDevice: r['guestDevice'] as string,
      pidfile: r['pidfile'] as string | undefined,
      ...(r['attached'] === undefined ? {} : { attached: attachedOf(r['attached'] as Record<string, unknown>) }),
      ...(r['vhostmd'] === true ? { vhostmd: true } : {}),
    },
  };
}

const attachedOf = (raw: Record<string, unknown>): AttachedSockets => ({
  guestSocket: raw['guestSocket'] as string,
  qmpSocket: raw['qmpSocket'] as string | undefined,
  ...(raw['vhostmdSocket'] === undefined ? {} : { vhostmdSocket: raw['vhostmdSocket'] as string }),
});

/** A unix socket path a sidecar can connect to: absolute, and short enough for sun_path. */
export function checkSocketPath(value: unknown): string | undefined {
  if (typeof value !== 'string' || !value.startsWith('/')) return 'must be an absolute path';
  if (Buffer.byteLength(value) > MAX_SOCKET_PATH_BYTES) return `is longer than ${MAX_SOCKET_PATH_BYTES} bytes, the most a unix socket address holds`;
  if (value.includes('\0')) return 'must not contain NUL';
  return undefined;
}

function checkAttached(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) return 'attached must be an object';
  const guest = checkSocketPath(value['guestSocket']);
  if (guest !== undefined) return `attached.guestSocket ${guest}`;
  const qmp = value['qmpSocket'] === undefined ? undefined : checkSocketPath(value['qmpSocket']);
  if (qmp !== undefined) return `attached.qmpSocket ${qmp}`;
  const vhostmd = value['vhostmdSocket'] === undefined ? undefined : checkSocketPath(value['vhostmdSocket']);
  if (vhostmd !== undefined) return `attached.vhostmdSocket ${vhostmd}`;
  const extra = Object.keys(value).find((key) => key !== 'guestSocket' && key !== 'qmpSocket' && key !== 'vhostmdSocket');
  return extra === undefined ? undefined : `unexpected key attached.${JSON.stringify(extra).slice(0, 40)}`;
}

/** `vhostmd`: true or absent; an attached VM's port socket comes with it, and only with it. */
function checkVhostmd(value: unknown, attached: unknown): string | undefined {
  if (value !== undefined && value !== true) return 'vhostmd must be true when present';
  if (!isPlainObject(attached)) return undefined;
  const socket = attached['vhostmdSocket'] !== undefined;
  if (value === true && !socket) return 'an attached VM with vhostmd needs attached.vhostmdSocket';
  return value !== true && socket ? 'attached.vhostmdSocket needs vhostmd: true' : undefined;
}

function checkFields(r: Record<string, unknown>): string | undefined {
  if (r['v'] !== VM_RECORD_VERSION) return `v must be ${VM_RECORD_VERSION}`;
  const pid = r['pid'];
  if (!(isCount(pid) && pid > 1)) return 'pid must be an integer above 1';
  if (!(typeof r['startTime'] === 'string' && /^\d{1,20}$/.test(r['startTime']))) return 'startTime must be a decimal number';
  if (typeof r['name'] === 'string' && r['name'].length > MAX_VM_NAME_LENGTH) return `name is longer than ${MAX_VM_NAME_LENGTH} characters`;
  if (!isOptionalText(r['name'], MAX_VM_NAME_LENGTH)) return 'name must be a non-empty string';
  if (!isOptionalText(r['uuid'], MAX_VM_UUID_LENGTH)) return `uuid must be a string of at most ${MAX_VM_UUID_LENGTH} characters`;
  if (r['transport'] !== 'isa-serial' && r['transport'] !== 'virtio-serial') return 'transport must be isa-serial or virtio-serial';
  if (!isText(r['guestDevice'], 64)) return 'guestDevice must be a short string';
  const pidfile = r['pidfile'];
  if (pidfile !== undefined && !(isText(pidfile, MAX_PIDFILE_LENGTH) && pidfile.startsWith('/'))) return 'pidfile must be an absolute path';
  const attached = checkAttached(r['attached']);
  if (attached !== undefined) return attached;
  if (r['attached'] !== undefined && pidfile !== undefined) return 'an attached VM has no pidfile to follow: attach gives QEMU\'s own pid';
  const vhostmd = checkVhostmd(r['vhostmd'], r['attached']);
  if (vhostmd !== undefined) return vhostmd;
  const known = ['v', 'pid', 'startTime', 'name', 'uuid', 'transport', 'guestDevice', 'pidfile', 'attached', 'vhostmd'];
  const extra = Object.keys(r).find((key) => !known.includes(key));
  return extra === undefined ? undefined : `unexpected key ${JSON.stringify(extra).slice(0, 40)}`;
}
