// What the libvirt hook needs from a domain's XML: its name, uuid, and the hostinfo ports QEMU
// listens on. A port is hostinfo's when the administrator said so in the domain XML:
//   <channel type='unix'> whose <target type='virtio' name='org.hostinfo.N'/>   (virtio-serial)
//   <serial type='unix'> with <alias name='ua-hostinfo'/>                       (ttyS<port>)
// and QEMU is the listening end (<source mode='bind' path='...'/>). A unix serial without the
// alias is someone else's (a console proxy, say) and is left alone. A virtio <channel> named
// org.github.vhostmd.1 is the VM's vhostmd port (SAP's vm-dump-metrics), served beside the hostinfo
// port when the domain has one.

import { type Transport, VHOSTMD_PORT_NAME } from '../../common/vm-record.js';
import { childNamed, childrenNamed, parseXml, type XmlElement } from './xml-tree.js';

export const HOSTINFO_CHANNEL_PREFIX = 'org.hostinfo.';
export const HOSTINFO_SERIAL_ALIAS = 'ua-hostinfo';

export interface HostinfoPort {
  readonly transport: Transport;
  readonly socket: string;
  readonly guestDevice: string;
}

export interface DomainFacts {
  readonly name: string | undefined;
  readonly uuid: string | undefined;
  readonly ports: readonly HostinfoPort[];
  /** The socket of the vhostmd channel QEMU listens on, if the domain has one. */
  readonly vhostmdSocket: string | undefined;
  /** Ports marked for hostinfo that cannot be served, each with why. */
  readonly skipped: readonly string[];
}

export function domainFactsOf(xml: string): DomainFacts {
  const domain = parseXml(xml);
  if (domain.name !== 'domain') throw new Error(`the hook's stdin is <${domain.name}>, not a <domain>`);
  const devices = childNamed(domain, 'devices');
  const ports: HostinfoPort[] = [];
  const vhostmd: string[] = [];
  const skipped: string[] = [];
  for (const device of devices === undefined ? [] : devices.children) {
    const found = device.name === 'channel' ? channelPort(device) : device.name === 'serial' ? serialPort(device) : undefined;
    if (typeof found === 'string') skipped.push(found);
    else if (found?.transport === 'vhostmd') vhostmd.push(found.socket);
    else if (found !== undefined) ports.push(found);
  }
  // QEMU refuses two ports of one name, so a second vhostmd channel is a hand-written oddity.
  for (const extra of vhostmd.slice(1)) skipped.push(`channel ${VHOSTMD_PORT_NAME} (${extra}): one vhostmd port per VM`);
  return { name: textOf(domain, 'name'), uuid: textOf(domain, 'uuid'), ports, vhostmdSocket: vhostmd[0], skipped };
}

const textOf = (element: XmlElement, name: string): string | undefined => {
  const text = childNamed(element, name)?.text.trim();
  return text === undefined || text === '' ? undefined : text;
};

type ChannelPort = HostinfoPort | { readonly transport: 'vhostmd'; readonly socket: string };

/**
 * A virtio channel named org.hostinfo.* or org.github.vhostmd.1: its port, why it cannot be
 * served, or undefined (not ours).
 */
function channelPort(channel: XmlElement): ChannelPort | string | undefined {
  const target = childNamed(channel, 'target');
  const name = target?.attributes['name'];
  if (target?.attributes['type'] !== 'virtio' || name === undefined) return undefined;
  if (name !== VHOSTMD_PORT_NAME && !name.startsWith(HOSTINFO_CHANNEL_PREFIX)) return undefined;
  const socket = listeningSocket(channel, `channel ${name}`);
  if (typeof socket === 'string') return socket;
  return name === VHOSTMD_PORT_NAME ? { transport: 'vhostmd', socket: socket.path } : { transport: 'virtio-serial', socket: socket.path, guestDevice: name };
}

/** A unix serial aliased ua-hostinfo*: its port, why it cannot be served, or undefined (not ours). */
function serialPort(serial: XmlElement): HostinfoPort | string | undefined {
  const alias = childNamed(serial, 'alias')?.attributes['name'];
  if (alias === undefined || !alias.startsWith(HOSTINFO_SERIAL_ALIAS)) return undefined;
  const target = childNamed(serial, 'target');
  // usb-serial, pci-serial, spapr-vty...: not the guest's ttyS<port>.
  const type = target?.attributes['type'] ?? 'isa-serial';
  if (type !== 'isa-serial') return `serial ${alias}: <target type='${type}'/> is not an isa-serial, so it is no ttyS port hostinfo serves`;
  const port = target?.attributes['port'];
  if (port === undefined || !/^\d{1,2}$/.test(port)) return `serial ${alias}: no <target port='N'/>, so the guest's ttyS number is unknown`;
  const socket = listeningSocket(serial, `serial ${alias}`);
  return typeof socket === 'string' ? socket : { transport: 'isa-serial', socket: socket.path, guestDevice: `/dev/ttyS${port}` };
}

/** The socket path QEMU listens on, or why there is none to connect to. */
function listeningSocket(device: XmlElement, label: string): { readonly path: string } | string {
  if (device.attributes['type'] !== 'unix') return `${label}: type='${device.attributes['type'] ?? ''}', not a unix socket`;
  const sources = childrenNamed(device, 'source');
  const source = sources[0];
  const path = source?.attributes['path'];
  if (source === undefined || path === undefined) return `${label}: no <source path='...'/>`;
  // libvirt's default mode for a unix chardev is bind (QEMU listens).
  if ((source.attributes['mode'] ?? 'bind') !== 'bind') return `${label}: <source mode='${source.attributes['mode']}'/>: QEMU connects out, so there is nothing to attach to`;
  if (!path.startsWith('/')) return `${label}: source path ${path} is not absolute`;
  return { path };
}
