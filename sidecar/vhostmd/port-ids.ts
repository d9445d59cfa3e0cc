// Which of QEMU's devices is the vhostmd port. QMP's VSERPORT_CHANGE (the guest opened or closed a
// virtio-serial port) names the port by its device id only, and that id is the launcher's choice
// for a launched VM and libvirt's (channel0, ...) for an attached one: so the ids are looked up
// once, by the port's name, among the devices that have an id (/machine/peripheral).
//
// QEMU sends a guest-triggered VSERPORT_CHANGE at most once a second per port (monitor.c,
// monitor_qapi_event_conf): the first at once, then only the newest state at the end of the
// second. A close followed by an open within that second can arrive as one `open: true`, a
// second late. So every VSERPORT_CHANGE of the port counts, whatever its `open` says: the port
// was closed or reopened since the last one, and a partial request is a dead client's. A
// request that arrived meanwhile is unaffected: vm-dump-metrics writes its 18 bytes at once, and
// a whole request is answered the moment it is read.

import { isPlainObject } from '../../common/json-checks.js';
import { VHOSTMD_PORT_NAME } from '../../common/vm-record.js';
import type { QmpExecutor } from '../qmp/queries.js';

const PERIPHERALS = '/machine/peripheral';
/** A host has a handful of devices per VM; a QEMU claiming more is not looked through. */
const MAX_PERIPHERALS = 1024;

/** The device ids of the virtio-serial ports named VHOSTMD_PORT_NAME (usually one). */
export async function vhostmdPortIds(qmp: QmpExecutor): Promise<string[]> {
  const children = await qmp.execute('qom-list', { path: PERIPHERALS });
  if (!Array.isArray(children)) return [];
  const ports = children.slice(0, MAX_PERIPHERALS).filter((child): child is { name: string; type: string } =>
    isPlainObject(child) && typeof child['name'] === 'string' && child['type'] === 'child<virtserialport>');
  const ids: string[] = [];
  for (const port of ports) {
    const name = await qmp.execute('qom-get', { path: `${PERIPHERALS}/${port.name}`, property: 'name' });
    if (name === VHOSTMD_PORT_NAME) ids.push(port.name);
  }
  return ids;
}

/** True when a QMP event says the guest opened or closed one of these ports. */
export function vhostmdPortChanged(event: { readonly event: string; readonly data: Readonly<Record<string, unknown>> | undefined }, ids: readonly string[]): boolean {
  const id = event.data?.['id'];
  return event.event === 'VSERPORT_CHANGE' && typeof id === 'string' && ids.includes(id);
}
