// /etc/libvirt/hooks/qemu, as `hostinfo-ctl hook libvirt -- NAME OPERATION SUB-OPERATION EXTRA`
// with the domain XML on stdin (libvirt's hooks.html). "started" comes once QEMU runs (listening,
// before its vCPUs start), "reconnect" for every running domain when libvirtd itself restarts, so
// both attach (attaching what is already served is a no-op); "stopped" detaches that QEMU (by
// its pid), though the daemon also sees QEMU exit on its own. Nothing here may call back into
// libvirt: it waits for the hook to return.

import { join } from 'node:path';
import { readSmallFile } from '../../common/small-file.js';
import { VHOSTMD_PORT_NAME } from '../../common/vm-record.js';
import { domainFactsOf, HOSTINFO_CHANNEL_PREFIX, HOSTINFO_SERIAL_ALIAS } from './libvirt-domain.js';
import { pidFrom, type HookAction } from './actions.js';

/** Where libvirtd's QEMU driver writes NAME.pid (qemu.conf's state dir, /run/libvirt/qemu). */
export const LIBVIRT_QEMU_RUN_DIR = '/run/libvirt/qemu';

/** The operations the hook acts on; for the others it never reads the domain XML. */
const HANDLED_OPERATIONS: ReadonlySet<string> = new Set(['started', 'reconnect', 'stopped']);

/** Whether libvirtHookAction(args, ...) will read the domain XML libvirt writes on stdin. */
export function libvirtHookReadsXml(args: readonly string[]): boolean {
  return args[1] !== undefined && HANDLED_OPERATIONS.has(args[1]);
}

export function libvirtHookAction(args: readonly string[], xml: () => string, runDir = LIBVIRT_QEMU_RUN_DIR): HookAction {
  const [name, operation] = args;
  if (name === undefined || operation === undefined) return { kind: 'none', note: 'libvirt passes NAME OPERATION SUB-OPERATION EXTRA; got fewer' };
  if (name.includes('/') || name === '.' || name === '..') return { kind: 'none', note: `not a domain name: ${JSON.stringify(name)}` };
  if (!HANDLED_OPERATIONS.has(operation)) return { kind: 'none', note: undefined };
  const facts = domainFactsOf(xml());
  const pidfile = join(runDir, `${name}.pid`);
  const pid = pidFrom(readSmallFile(pidfile, 32), pidfile);
  // A domain without a hostinfo port was never attached: its stop is none of hostinfod's business.
  // The pidfile is still there at "stopped" (libvirt removes it after the hook) and names this
  // domain's QEMU exactly: during a live migration on one host the destination QEMU is a VM of
  // the same name, which a detach by name would have hit.
  if (operation === 'stopped') return facts.ports.length === 0 ? { kind: 'none', note: undefined } : { kind: 'detach', vm: typeof pid === 'string' ? name : String(pid) };
  const notes = [...facts.skipped];
  // Attaching serves a VM through its hostinfo port; the vhostmd port rides along with it.
  if (facts.ports.length === 0 && facts.vhostmdSocket !== undefined) notes.push(`channel ${VHOSTMD_PORT_NAME} not attached: the domain has no hostinfo port (a <serial> aliased ${HOSTINFO_SERIAL_ALIAS} or a <channel> named ${HOSTINFO_CHANNEL_PREFIX}N) to serve the VM through`);
  if (facts.ports.length === 0) return { kind: 'none', note: notes.length > 0 ? notes.join('; ') : undefined };
  if (typeof pid === 'string') return { kind: 'none', note: `cannot attach ${name}: ${pid}` };
  // One port per VM is served; a second marked one is named so the administrator sees it.
  const [port, ...others] = facts.ports;
  for (const other of others) notes.push(`${other.guestDevice} (${other.socket}) not attached: one hostinfo port per VM`);
  if (port === undefined) return { kind: 'none', note: undefined };
  return {
    kind: 'attach',
    specs: [{
      pid, name: facts.name ?? name, uuid: facts.uuid, transport: port.transport, guestSocket: port.socket, qmpSocket: undefined, guestDevice: port.guestDevice,
      ...(facts.vhostmdSocket === undefined ? {} : { vhostmdSocket: facts.vhostmdSocket }),
    }],
    notes,
  };
}
