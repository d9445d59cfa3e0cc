// hostinfo-ctl's command line, parsed without side effects so tests can cover it: a verb, its
// operands, and the flags that verb takes (any other flag is a usage error, not ignored).

import { parseFlagValues } from '../common/flags.js';
import type { Transport } from '../common/vm-record.js';
import { attachSpecOf, type AttachSpec } from '../daemon/control-messages.js';
import { isQueryLine, MAX_QUERY_LINE } from '../daemon/message-types.js';

export const EXIT_OK = 0;
/** The daemon refused or the request failed. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
/** No hostinfod answers on the control socket. */
export const EXIT_NO_DAEMON = 3;
/** The control socket is not this user's to use. */
export const EXIT_PERMISSION = 4;

export const USAGE = `Usage: hostinfo-ctl [--config FILE] [--runtime-dir DIR] VERB [ARGS] [--json]

Administers the running hostinfod through its control socket (<runtime_dir>/hostinfod.sock, for
the daemon's user and, with admin_group in hostinfo.toml, that group's members). check reads files
only and needs no daemon.

Verbs:
  check [FILE...] [--json]
                         validate the host config and every policy (*.toml) in its policy_dir,
                         with the daemon's own parsers, touching nothing that runs; or only the
                         FILEs named: a FILE that is the host config (the one --config names) is
                         checked as one, any other as a policy. Prints each error as
                         FILE[:LINE]: key "KEY": ... expected ...: received ..., then
                         "N files checked, M errors"; exits 1 if any is invalid. For
                         hostinfo-ctl check && systemctl reload hostinfod
  status [VM] [--json]   the daemon and one row per VM (or just VM: id, name, uuid or QEMU pid):
                         QEMU pid, transport and guest device, access decision and why, items,
                         rate, requests by status, dropped bytes, sidecar restarts
  reload [--json]        re-read hostinfo.toml and every VM's policy now (as SIGHUP does) and
                         print, per VM, what changed
  attach --pid PID --guest-socket PATH [--transport isa-serial|virtio-serial] [--name NAME]
         [--uuid UUID] [--qmp-socket PATH] [--guest-device DEV] [--vhostmd-socket PATH] [--json]
                         serve a VM hostinfo did not launch until its QEMU (PID) exits. PATH is
                         the unix socket QEMU listens on for the guest's port (transport default
                         isa-serial, guest device default /dev/ttyS1 or org.hostinfo.0). Without
                         --qmp-socket, name and uuid are what you give, vCPU threads are found by
                         their names (QEMU's -name ...,debug-threads=on), hypervisor answers 503.
                         --vhostmd-socket: the chardev of the VM's port org.github.vhostmd.1
                         (a libvirt <channel> of that name), answered with vhostmd's protocol.
  detach VM [--json]     stop serving an attached VM (id, name, uuid or QEMU pid)
  explain VM [--json]    which policy file applies to VM (id, name, uuid or QEMU pid) and why:
                         every candidate (<uuid>.toml, <name>.toml, default.toml) and whether it
                         exists, the effective items, interval and burst, the host switch, read
                         now from the files with the daemon's lookup; and the daemon's current
                         decision, flagged when the two differ (hostinfo-ctl reload applies the
                         files)
  metrics                the daemon's Prometheus metrics now, the text [metrics] textfile holds
  query VM REQUEST... [--json]
                         the reply VM's guest would get to REQUEST (e.g. physcpus, or
                         PING "x") right now, computed by its sidecar without taking a token
                         (so a 429 means the guest is rate-limited now); marked query in the
                         audit, not counted in the VM's requests
  hook libvirt [--root DIR] -- NAME OPERATION SUB-OPERATION EXTRA
                         for /etc/libvirt/hooks/qemu (domain XML on stdin): attaches the
                         domain's hostinfo ports (and a vhostmd channel beside one) on "started"
                         and "reconnect", detaches libvirt's pidfile's QEMU on "stopped"; never
                         fails a domain's start (always exits 0). --root:
                         read /run/libvirt/qemu (the domain's pidfile) under DIR
  hook proxmox [--serial N] [--root DIR] -- VMID PHASE
                         for a Proxmox hookscript: attaches /var/run/qemu-server/VMID.serialN
                         (default N 1, "serial1: socket" in the VM config) on post-start,
                         detaches on pre-stop; always exits 0. --root: read /etc/pve and
                         /var/run/qemu-server under DIR (tests, chroots)

  --config FILE        host config (default: $HOSTINFO_CONFIG, else /etc/hostinfo/hostinfo.toml)
  --runtime-dir DIR    runtime directory (default: $HOSTINFO_RUNTIME_DIR, else runtime_dir of the config)
  --json               one JSON object on stdout instead of text (status, reload, attach, detach,
                       check, explain)
  --help, --version

A VM is named by its id (its directory under vms/), its QEMU pid, its name or its uuid; a name or
uuid two VMs share (both ends of a live migration on one host) is refused: give the id or pid.

Exit status: 0 done (check: every file valid), 1 refused or failed (check: an invalid file), 2 bad
usage, 3 no hostinfod answers, 4 permission denied.
`;

export interface Location {
  readonly configPath: string | undefined;
  readonly runtimeDir: string | undefined;
}

export type AttachFlags = Omit<AttachSpec, 'guestDevice'> & { readonly guestDevice: string | undefined };

export type Command =
  | { readonly verb: 'help' }
  | { readonly verb: 'version' }
  | { readonly verb: 'status'; readonly vm: string | undefined; readonly json: boolean }
  | { readonly verb: 'reload'; readonly json: boolean }
  | { readonly verb: 'attach'; readonly spec: AttachFlags; readonly json: boolean }
  | { readonly verb: 'detach'; readonly vm: string; readonly json: boolean }
  | { readonly verb: 'check'; readonly files: readonly string[]; readonly json: boolean }
  | { readonly verb: 'explain'; readonly vm: string; readonly json: boolean }
  | { readonly verb: 'metrics' }
  | { readonly verb: 'query'; readonly vm: string; readonly line: string; readonly json: boolean }
  | { readonly verb: 'hook'; readonly manager: 'libvirt' | 'proxmox'; readonly args: readonly string[]; readonly serial: number; readonly root: string };

export type ParsedCommand = { readonly ok: true; readonly command: Command; readonly location: Location } | { readonly ok: false; readonly message: string };

const FLAGS = {
  config: { type: 'string' }, 'runtime-dir': { type: 'string' }, json: { type: 'boolean' },
  pid: { type: 'string' }, 'guest-socket': { type: 'string' }, transport: { type: 'string' }, name: { type: 'string' },
  uuid: { type: 'string' }, 'qmp-socket': { type: 'string' }, 'guest-device': { type: 'string' }, serial: { type: 'string' }, root: { type: 'string' },
  'vhostmd-socket': { type: 'string' },
  help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' },
} as const;
type Flag = keyof typeof FLAGS;

const COMMON: readonly Flag[] = ['config', 'runtime-dir'];
/** The flags each verb takes besides --config and --runtime-dir. */
const VERB_FLAGS: Readonly<Record<string, readonly Flag[]>> = {
  status: ['json'],
  reload: ['json'],
  attach: ['json', 'pid', 'guest-socket', 'transport', 'name', 'uuid', 'qmp-socket', 'guest-device', 'vhostmd-socket'],
  detach: ['json'],
  query: ['json'],
  check: ['json'],
  explain: ['json'],
  metrics: [],
  hook: ['serial', 'root'],
};
const VERBS = 'status, check, explain, metrics, query, reload, attach, detach or hook';

const usage = (message: string): ParsedCommand => ({ ok: false, message });

export function parseCtlArgs(argv: readonly string[]): ParsedCommand {
  const parsed = parseFlagValues(argv, FLAGS, { positionals: true });
  if (!parsed.ok) return usage(parsed.message);
  const { values, positionals } = parsed;
  const location = { configPath: values.config, runtimeDir: values['runtime-dir'] };
  for (const name of ['config', 'runtime-dir'] as const) if (values[name] === '') return usage(`--${name} needs a path`);
  if (values.help === true) return { ok: true, command: { verb: 'help' }, location };
  if (values.version === true) return { ok: true, command: { verb: 'version' }, location };
  const [verb, ...operands] = positionals;
  if (verb === undefined) return usage(`a verb is needed: ${VERBS}`);
  const allowed = Object.hasOwn(VERB_FLAGS, verb) ? VERB_FLAGS[verb] : undefined;
  if (allowed === undefined) return usage(`unknown verb ${JSON.stringify(verb)}: ${VERBS}`);
  const stray = (Object.keys(values) as Flag[]).find((flag) => !COMMON.includes(flag) && !allowed.includes(flag));
  if (stray !== undefined) return usage(`${verb} does not take --${stray}`);
  const json = values.json === true;
  const command = commandOf(verb, operands, values, json);
  return typeof command === 'string' ? usage(command) : { ok: true, command, location };
}

type Values = Partial<Record<Flag, string | boolean>>;

function commandOf(verb: string, operands: readonly string[], values: Values, json: boolean): Command | string {
  switch (verb) {
    case 'status':
      return operands.length > 1 ? 'status takes at most one VM' : { verb, vm: operands[0], json };
    case 'reload':
      return operands.length > 0 ? 'reload takes no operand' : { verb, json };
    case 'detach':
      return operands.length !== 1 || operands[0] === undefined ? 'detach takes one VM: its id, name, uuid or QEMU pid' : { verb, vm: operands[0], json };
    case 'query': {
      const [vm, ...words] = operands;
      const line = words.join(' ');
      if (vm === undefined || words.length === 0) return 'query takes a VM and the request its guest would send (e.g. physcpus)';
      return isQueryLine(line) ? { verb, vm, line, json } : `query: the request must be printable ASCII of at most ${MAX_QUERY_LINE} characters`;
    }
    case 'attach':
      return operands.length > 0 ? `attach takes flags only, not ${JSON.stringify(operands[0])}` : attachOf(values, json);
    case 'check':
      return operands.includes('') ? 'check takes file paths, not an empty one' : { verb, files: operands, json };
    case 'explain':
      return operands.length !== 1 || operands[0] === undefined ? 'explain takes one VM: its id, name, uuid or QEMU pid' : { verb, vm: operands[0], json };
    case 'metrics':
      return operands.length > 0 ? 'metrics takes no operand' : { verb };
    default:
      return hookOf(operands, values);
  }
}

function attachOf(values: Values, json: boolean): Command | string {
  const text = (flag: Flag): string | undefined => (typeof values[flag] === 'string' ? values[flag] : undefined);
  const pid = text('pid');
  if (pid === undefined || !/^\d{1,10}$/.test(pid)) return `--pid needs QEMU's pid, got ${JSON.stringify(pid ?? '')}`;
  const guestSocket = text('guest-socket');
  if (guestSocket === undefined) return '--guest-socket is required: the unix socket QEMU listens on for the guest\'s port';
  const transport = (text('transport') ?? 'isa-serial') as Transport;
  const spec = attachSpecOf({ pid: Number(pid), name: text('name'), uuid: text('uuid'), transport, guestSocket, qmpSocket: text('qmp-socket'), guestDevice: text('guest-device'), vhostmdSocket: text('vhostmd-socket') });
  if (typeof spec === 'string') return spec.replace(/^vm\.(\w+)/, (_whole, key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  return { verb: 'attach', spec: { ...spec, guestDevice: text('guest-device') }, json };
}

function hookOf(operands: readonly string[], values: Values): Command | string {
  const [manager, ...args] = operands;
  if (manager !== 'libvirt' && manager !== 'proxmox') return 'hook needs a manager: libvirt or proxmox';
  const serialText = typeof values.serial === 'string' ? values.serial : '1';
  if (manager === 'libvirt' && values.serial !== undefined) return '--serial is for hook proxmox; libvirt\'s domain XML names the port';
  if (!/^\d{1,2}$/.test(serialText)) return `--serial needs a serial port number (serial1: socket is 1), got ${JSON.stringify(serialText)}`;
  const root = typeof values.root === 'string' ? values.root : '/';
  if (!root.startsWith('/')) return `--root needs an absolute directory, got ${JSON.stringify(root)}`;
  return { verb: 'hook', manager, args, serial: Number(serialText), root };
}
