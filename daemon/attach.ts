// Attach: serving a VM that hostinfo did not launch (libvirt's, Proxmox's), told about by the host
// administrator (hostinfo-ctl attach, or a manager's hook calling it). The daemon publishes the
// VM's directory itself, with a record naming the VM's sockets where its manager put them, and
// adopts it like any other: served until its QEMU pid exits, or until detached.

import { lstatSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { processStartTime, processUid } from '../common/proc.js';
import { VMS_DIR } from '../common/runtime-tree.js';
import { publishVmDir, stageVmDir } from '../common/vm-publish.js';
import type { VmRecord } from '../common/vm-record.js';
import { safeNameStem, safeUuidStem } from '../policies/policy-lookup.js';
import type { AttachSpec } from './control-messages.js';
import { ProtocolError } from './message-types.js';
import type { VmKeeper } from './vm-keeper.js';

/** Directory names tried for one VM before giving up (name, name-2, ...). */
const MAX_NAME_TRIES = 100;

export interface AttachContext {
  readonly runtimeDir: string;
  readonly daemonUid: number;
  /** The keeper already serving this pid, if any. */
  readonly keeperOfPid: (pid: number) => VmKeeper | undefined;
  /** Adopts what was just published (the watch would, a moment later). */
  readonly scan: () => void;
}

export function attachVm(spec: AttachSpec, context: AttachContext): { id: string; already: boolean } {
  const startTime = processStartTime(spec.pid);
  if (startTime === undefined) throw new ProtocolError('REFUSED', `pid ${spec.pid} is not running`);
  const existing = context.keeperOfPid(spec.pid);
  if (existing !== undefined) {
    const same = existing.record.attached?.guestSocket === spec.guestSocket;
    if (same) return { id: existing.id, already: true };
    throw new ProtocolError('REFUSED', `pid ${spec.pid} is already served as ${existing.id}${existing.record.attached === undefined ? ' (launched through hostinfo)' : ` with guest socket ${existing.record.attached.guestSocket}`}`);
  }
  const uid = processUid(spec.pid);
  if (context.daemonUid !== 0 && uid !== context.daemonUid) throw new ProtocolError('REFUSED', `pid ${spec.pid} runs as uid ${uid}; a hostinfod not running as root serves only its own user's VMs`);
  for (const path of [spec.guestSocket, spec.qmpSocket, spec.vhostmdSocket]) {
    if (path === undefined) continue;
    const problem = notASocket(path);
    if (problem !== undefined) throw new ProtocolError('REFUSED', problem);
  }
  const record: VmRecord = {
    v: 1,
    pid: spec.pid,
    startTime,
    name: spec.name,
    uuid: spec.uuid,
    transport: spec.transport,
    guestDevice: spec.guestDevice,
    pidfile: undefined,
    attached: { guestSocket: spec.guestSocket, qmpSocket: spec.qmpSocket, ...(spec.vhostmdSocket === undefined ? {} : { vhostmdSocket: spec.vhostmdSocket }) },
    ...(spec.vhostmdSocket === undefined ? {} : { vhostmd: true }),
  };
  const id = publish(join(context.runtimeDir, VMS_DIR), record, spec);
  context.scan();
  return { id, already: false };
}

/** Published under the VM's name (or uuid, or pid) and the first free suffix. */
function publish(vmsDir: string, record: VmRecord, spec: AttachSpec): string {
  const base = safeNameStem(spec.name) ?? safeUuidStem(spec.uuid) ?? `pid-${spec.pid}`;
  const stage = stageVmDir(vmsDir, record);
  try {
    for (let n = 1; n <= MAX_NAME_TRIES; n += 1) {
      const id = n === 1 ? base : `${base}-${n}`;
      if (publishVmDir(stage, join(vmsDir, id))) return id;
    }
  } catch (error) {
    rmSync(stage, { recursive: true, force: true });
    throw error;
  }
  rmSync(stage, { recursive: true, force: true });
  throw new ProtocolError('REFUSED', `no free directory name for ${base} under ${vmsDir}`);
}

/** The socket must exist when attaching: a hook runs once QEMU listens, and a typo should show now. */
function notASocket(path: string): string | undefined {
  try {
    const stat = lstatSync(path);
    return stat.isSocket() || stat.isSymbolicLink() ? undefined : `${path} is not a socket`;
  } catch (error) {
    return `${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such socket' : (error as Error).message}`;
  }
}
