// Where the launcher's isa-serial can go, and which of QEMU's default devices it must put back.
//
// How QEMU 7.2 numbers ISA serial ports (hw/char/serial-isa.c, checked with `info qtree`):
//   - `-serial X` options are realized first, at machine init, the k-th at index k; `-serial none`
//     still consumes its index (`-serial none -serial null` puts the null port at index 1, 0 empty);
//     only the first MAX_ISA_SERIAL_PORTS become ISA devices, later ones are silently unused.
//   - then `-device isa-serial` in the form `key=value` in command-line order, then the JSON-form
//     `-device {...}` ones (softmmu/vl.c qemu_create_cli_devices);
//   - a device without `index` gets the `-global isa-serial.index` if there is one, else a static
//     counter of isa-serials realized so far: it does not look for a free slot (`-device
//     isa-serial,index=2 -device isa-serial` gives 2 then 1), and two ports on one index are
//     accepted silently; index >= 4 is refused ("Max. supported number of ISA serial ports is
//     4."). Hence the launcher always passes an explicit index;
//   - a port's I/O address is its own `iobase`, else the `-global isa-serial.iobase` (which `-serial`
//     ports and ours get too), else its index's standard one (0x3f8, 0x2f8, 0x3e8, 0x2e8: the
//     guest's /dev/ttyS0..3). Two ports on one address are accepted silently too, so ours avoids
//     every address in use and, under such a global, sets its own address explicitly.

import type { ScannedArgs } from './qemu-args-scan.js';

export const MAX_ISA_SERIAL_PORTS = 4;
/** hw/char/serial-isa.c isa_serial_io: the address of each index when nothing else says. */
export const ISA_SERIAL_IOBASES: readonly number[] = [0x3f8, 0x2f8, 0x3e8, 0x2e8];

/**
 * Whether ours must be written in JSON form. A keyval device is realized before every JSON one and
 * advances the counter, which would move a user's JSON isa-serial that has no `index` to the next
 * port. Written as JSON and appended last, ours is realized last and moves nobody.
 */
export function ourSerialAsJson(scan: ScannedArgs): boolean {
  return scan.isaSerials.some((device) => device.json && device.index === undefined);
}

interface PortPlace {
  readonly index: number;
  readonly iobase: number | undefined;
}

/**
 * Where everyone else ends up once ours (appended last) is among the devices. `restoredSerials`
 * are `-serial` options the launcher appends; they count like the user's.
 */
function otherPorts(scan: ScannedArgs, restoredSerials: number): PortPlace[] {
  const globals = scan.isaSerialGlobals;
  const places: PortPlace[] = [];
  let counter = 0;
  const place = (index: number, iobase: number | undefined): void => {
    places.push({ index, iobase: iobase ?? globals.iobase ?? ISA_SERIAL_IOBASES[index] });
    counter += 1;
  };
  const serialCount = scan.serials.length + restoredSerials;
  for (let k = 0; k < Math.min(serialCount, MAX_ISA_SERIAL_PORTS); k += 1) {
    // `-serial none` keeps its index empty and creates no device, so the counter stays put
    // (`-serial none -device isa-serial` lands on 0).
    if (scan.serials[k] === 'none') continue;
    place(k, undefined);
  }
  const placeDevice = (device: ScannedArgs['isaSerials'][number]): void => place(device.index ?? globals.index ?? counter, device.iobase);
  for (const device of scan.isaSerials) if (!device.json) placeDevice(device);
  if (!ourSerialAsJson(scan)) counter += 1; // ours, keyval: realized before the JSON ones
  for (const device of scan.isaSerials) if (device.json) placeDevice(device);
  return places;
}

/** The first index nobody else uses, whose address nobody uses either; undefined when there is none. */
export function chooseSerialIndex(scan: ScannedArgs, restoredSerials: number): number | undefined {
  const taken = otherPorts(scan, restoredSerials);
  if (taken.some((port) => port.index >= MAX_ISA_SERIAL_PORTS)) return undefined;
  for (let index = 0; index < MAX_ISA_SERIAL_PORTS; index += 1) {
    if (!taken.some((port) => port.index === index || port.iobase === ISA_SERIAL_IOBASES[index])) return index;
  }
  return undefined;
}

/**
 * The `iobase` ours must name: only under a `-global isa-serial.iobase`, which would otherwise
 * move ours too; then its index's standard address, so the guest still finds it as /dev/ttyS<index>.
 */
export function ourIobase(scan: ScannedArgs, index: number): number | undefined {
  return scan.isaSerialGlobals.iobase === undefined ? undefined : ISA_SERIAL_IOBASES[index];
}

/** What QEMU 7.2 names the graphical consoles it makes by default (vl.c qemu_create_default_devices). */
export const DEFAULT_VC = 'vc:80Cx24C';

/**
 * The options that re-create QEMU's default serial port and monitor when the launcher's own devices
 * would switch them off. vl.c decides after parsing: any `-device isa-serial` (or `-global
 * isa-serial.*`) clears default_serial, any `-mon`/`-qmp`/`-monitor` clears default_monitor. Then:
 *   -nographic: serial+monitor → `-serial mon:stdio`; serial only → `-serial stdio`;
 *               monitor only → `-monitor stdio`;
 *   otherwise (also `-display none` on 7.2): `-serial vc:80Cx24C`, `-monitor vc:80Cx24C`.
 * The launcher's QMP `-mon` always clears the monitor; its isa-serial clears the serial, its
 * virtio-serial does not. All of this was compared with `query-chardev` on plain QEMU.
 */
export function restoredDefaults(scan: ScannedArgs, ourIsaSerial: boolean): string[] {
  const serial = scan.defaultSerial;
  const monitor = scan.defaultMonitor;
  if (scan.nographic) {
    // With virtio-serial QEMU would still add the serial itself, but as plain `stdio` once the
    // monitor is gone: the muxed `mon:stdio` (Ctrl-A c) must be written out.
    if (serial && monitor) return ['-serial', 'mon:stdio'];
    if (serial && ourIsaSerial) return ['-serial', 'stdio'];
    if (monitor) return ['-monitor', 'stdio'];
    return [];
  }
  return [...(serial && ourIsaSerial ? ['-serial', DEFAULT_VC] : []), ...(monitor ? ['-monitor', DEFAULT_VC] : [])];
}

/** How many `-serial` options `restoredDefaults` appends (they take serial indices). */
export function countSerials(args: readonly string[]): number {
  return args.filter((word) => word === '-serial').length;
}
