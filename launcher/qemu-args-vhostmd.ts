// The vhostmd port the launcher adds when hostinfo.toml has `[vhostmd] enabled = true`: a second
// virtio-serial port, named as vhostmd's guest tools expect (org.github.vhostmd.1), on a chardev
// socket of its own in the VM's directory, beside the hostinfo port whatever that one's transport.
// With virtio-serial it sits on the hostinfo port's bus; with isa-serial it gets a
// virtio-serial-pci bus of its own. QEMU 7.2 makes no default device of a virtio-serial bus on
// the pc and q35 machines, so nothing of the user's moves (qemu-real-vhostmd.test.ts checks).

import type { ScannedArgs } from './qemu-args-scan.js';
import { VHOSTMD_PORT_NAME } from '../common/vm-record.js';

export { VHOSTMD_PORT_NAME };

export interface VhostmdIds {
  readonly chardev: string;
  readonly port: string;
  /** Only when the hostinfo port brings no virtio-serial bus (isa-serial). */
  readonly bus?: string;
}

/** The ids, derived from the launcher's free id stem like all its others. */
export function vhostmdIds(stem: string, hostinfoBus: string | undefined): VhostmdIds {
  const ids = { chardev: `${stem}-vhostmd`, port: `${stem}-vhostmd-port` };
  return hostinfoBus === undefined ? { ...ids, bus: `${stem}-vhostmd-bus` } : ids;
}

/** True when the user's arguments already define a port with vhostmd's name. */
export function vhostmdNameTaken(scan: ScannedArgs): boolean {
  return scan.virtserialportNames.includes(VHOSTMD_PORT_NAME);
}

/** `-chardev` and `-device` options of the port; `chardev` is the socket chardev's option text. */
export function vhostmdArguments(ids: VhostmdIds, hostinfoBus: string | undefined, chardev: string): string[] {
  const bus = ids.bus ?? hostinfoBus;
  return [
    '-chardev', chardev,
    ...(ids.bus === undefined ? [] : ['-device', `virtio-serial-pci,id=${ids.bus}`]),
    '-device', `virtserialport,id=${ids.port},bus=${bus}.0,chardev=${ids.chardev},name=${VHOSTMD_PORT_NAME}`,
  ];
}
