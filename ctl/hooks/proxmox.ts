// A Proxmox VE hookscript, as `hostinfo-ctl hook proxmox -- VMID PHASE [--serial N]`: Proxmox
// calls it with the VM's id and pre-start, post-start, pre-stop or post-stop. On post-start QEMU
// runs, so the VM's serialN socket (`serialN: socket` in its config becomes
// /var/run/qemu-server/VMID.serialN, an isa-serial) is attached; on pre-stop it is detached. The
// VM's name and uuid come from its config (the uuid only reaches QEMU through -smbios, so QMP
// would say zeros), its pid from qemu-server's pidfile.

import { join } from 'node:path';
import { readSmallFile } from '../../common/small-file.js';
import { pidFrom, type HookAction } from './actions.js';

export const PVE_CONFIG_DIR = '/etc/pve/qemu-server';
export const PVE_RUN_DIR = '/var/run/qemu-server';
/** A VM config is a few kB, snapshots included. */
const MAX_PVE_CONFIG_BYTES = 1024 * 1024;

export interface PveVmConfig {
  readonly name: string | undefined;
  readonly uuid: string | undefined;
  /** serialN values: "socket", or a host device path. */
  readonly serials: ReadonlyMap<number, string>;
}

/** The current section of a VM config (snapshots follow as [name] sections and are ignored). */
export function parsePveConfig(text: string): PveVmConfig {
  const serials = new Map<number, string>();
  let name: string | undefined;
  let uuid: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('[')) break;
    const match = /^([a-z0-9]+):\s*(.*?)\s*$/.exec(line);
    if (match === null) continue;
    const [, key, value] = match as unknown as [string, string, string];
    if (key === 'name') name = value;
    else if (key === 'smbios1') uuid = /(?:^|,)uuid=([0-9a-fA-F-]{36})(?:,|$)/.exec(value)?.[1];
    else if (/^serial\d$/.test(key)) serials.set(Number(key.slice(6)), value);
  }
  return { name, uuid, serials };
}

export function proxmoxHookAction(args: readonly string[], serial: number, root = '/'): HookAction {
  const [vmid, phase] = args;
  if (vmid === undefined || phase === undefined) return { kind: 'none', note: 'Proxmox passes VMID PHASE; got fewer' };
  if (!/^\d{1,9}$/.test(vmid)) return { kind: 'none', note: `not a VMID: ${JSON.stringify(vmid)}` };
  const runDir = join(root, PVE_RUN_DIR);
  const pidfile = join(runDir, `${vmid}.pid`);
  if (phase === 'pre-stop') {
    const pid = pidFrom(readSmallFile(pidfile, 32), pidfile);
    return typeof pid === 'string' ? { kind: 'none', note: undefined } : { kind: 'detach', vm: String(pid) };
  }
  if (phase !== 'post-start') return { kind: 'none', note: undefined };
  const configFile = join(root, PVE_CONFIG_DIR, `${vmid}.conf`);
  const text = readSmallFile(configFile, MAX_PVE_CONFIG_BYTES);
  if (typeof text !== 'string') return { kind: 'none', note: `cannot read ${configFile}: ${text === undefined ? 'no such file' : text.message}` };
  const config = parsePveConfig(text);
  if (config.serials.get(serial) !== 'socket') return { kind: 'none', note: `VM ${vmid} has no "serial${serial}: socket" line in ${configFile}: nothing to attach` };
  const pid = pidFrom(readSmallFile(pidfile, 32), pidfile);
  if (typeof pid === 'string') return { kind: 'none', note: `cannot attach VM ${vmid}: ${pid}` };
  return {
    kind: 'attach',
    specs: [{ pid, name: config.name ?? `vm${vmid}`, uuid: config.uuid, transport: 'isa-serial', guestSocket: join(runDir, `${vmid}.serial${serial}`), qmpSocket: undefined, guestDevice: `/dev/ttyS${serial}` }],
    notes: [],
  };
}
