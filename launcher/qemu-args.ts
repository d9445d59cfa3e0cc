// The launcher's argument rewriting, as one pure function: the user's QEMU arguments in, the
// arguments to run QEMU with out (the user's unchanged and in order, the launcher's appended), or
// a reason to add nothing, or a typed error. The process side (launcher/main.ts) creates the
// runtime directory, spawns QEMU and the sidecar; nothing here touches the system.
//
// Known limits, by design of a pure reader of argv:
//   - `-readconfig FILE` sections (a [device] isa-serial, a [mon]) are not seen; the plan says
//     `readconfig: true` so the caller can warn. (A [mon] from -readconfig does NOT switch off
//     QEMU's default monitor on 7.2: only the command-line options do.)
//   - `-set` is followed where it can move a serial port (`-set device.ID.index=N` on a key=value
//     isa-serial, its driver and iobase, `-set global.ID.*`), as are `-global isa-serial.index`
//     and `.iobase`; a `-set` leaving an isa-serial index or iobase QEMU cannot read is refused
//     (SET_UNSUPPORTED) rather than guessed at.
//   - `-S`, `-incoming`, `-loadvm`, `-snapshot` and everything else just pass through.
//   - `-daemonize` without `-pidfile` gets a pidfile in the VM's directory: QEMU's own pid is
//     only known from it once QEMU has forked.

import { posix } from 'node:path';
import { safeNameStem, safeUuidStem } from '../policies/policy-lookup.js';
import { scanQemuArgs, type PassthroughReason, type ScannedArgs } from './qemu-args-scan.js';
import { chooseSerialIndex, countSerials, MAX_ISA_SERIAL_PORTS, ourIobase, ourSerialAsJson, restoredDefaults } from './qemu-args-serial.js';
import { escapeOptionValue } from './qemu-options.js';
import type { QemuVersion } from './qemu-versions.js';
import { VHOSTMD_PORT_NAME, vhostmdArguments, vhostmdIds, vhostmdNameTaken, type VhostmdIds } from './qemu-args-vhostmd.js';

import type { Transport } from '../common/vm-record.js';
import { GUEST_SOCKET, QEMU_PIDFILE, QMP_SOCKET, VHOSTMD_SOCKET } from '../common/runtime-tree.js';

export type { Transport };

export interface PlanOptions {
  readonly transport: Transport;
  /** Absolute: QEMU resolves socket paths against its own working directory. */
  readonly vmsDir: string;
  readonly launcherPid: number;
  /** Directory names already taken (the caller got EEXIST): the next candidate is used. */
  readonly existingDirs?: Iterable<string>;
  /** hostinfo.toml `[vhostmd] enabled`: add vhostmd's port too (qemu-args-vhostmd.ts). */
  readonly vhostmd?: boolean;
  /** The QEMU that will run (its `-version`): which options it has (qemu-versions.ts). Undefined: any QEMU's. */
  readonly qemuVersion?: QemuVersion | undefined;
}

export type PlanErrorCode =
  | 'NO_FREE_SERIAL'
  | 'SOCKET_PATH_TOO_LONG'
  | 'ID_CLASH'
  | 'PORT_NAME_CLASH'
  | 'SET_UNSUPPORTED'
  | 'NOGRAPHIC_DAEMONIZE'
  | 'VM_DIR_EXHAUSTED';

export interface PlanError {
  readonly mode: 'error';
  readonly code: PlanErrorCode;
  readonly message: string;
}

export interface PassthroughPlan {
  readonly mode: 'passthrough';
  readonly reason: PassthroughReason;
  /** The user's arguments, untouched. */
  readonly args: readonly string[];
}

export interface PlanIds {
  /** The guest-facing chardev; the stem the others derive from. */
  readonly chardev: string;
  readonly qmpChardev: string;
  /** The isa-serial or virtserialport device. */
  readonly port: string;
  /** virtio-serial only: the virtio-serial-pci device; its bus is `${bus}.0`. */
  readonly bus?: string;
  /** With [vhostmd] enabled: vhostmd's port, its chardev and (isa-serial) its bus. */
  readonly vhostmd?: VhostmdIds;
}

export interface WrapPlan {
  readonly mode: 'wrap';
  /** The user's arguments unchanged and in order, then `added`. */
  readonly args: readonly string[];
  /** Only the launcher's own arguments (restored defaults included). */
  readonly added: readonly string[];
  /** Of `added`, the options re-creating QEMU defaults that the launcher's devices switch off. */
  readonly restoredDefaults: readonly string[];
  readonly transport: Transport;
  readonly vmDirName: string;
  readonly vmDir: string;
  readonly guestSocket: string;
  readonly qmpSocket: string;
  /** With [vhostmd] enabled: the chardev socket of vhostmd's port. */
  readonly vhostmdSocket?: string;
  /** From the user's `-name` / `-uuid`, for logging and the directory name; QMP stays the authority. */
  readonly name?: string;
  readonly uuid?: string;
  /** isa-serial only: the guest sees the port as /dev/ttyS<serialIndex>. */
  readonly serialIndex?: number;
  /** virtio-serial only. */
  readonly portName?: string;
  readonly ids: PlanIds;
  readonly daemonize: boolean;
  /** Where QEMU writes its pid with -daemonize (the user's -pidfile, else one in vmDir). */
  readonly pidfile: string | undefined;
  /** Options the launcher does not know (treated as flags, see qemu-options-table.ts). */
  readonly unknownOptions: readonly string[];
  readonly readconfig: boolean;
}

export type QemuPlan = WrapPlan | PassthroughPlan | PlanError;

/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_UNIX_SOCKET_PATH_BYTES = 107;
export const VIRTIO_PORT_NAME = 'org.hostinfo.0';
const ID_STEM = 'hostinfo';
const MAX_ID_TRIES = 100;
const MAX_DIR_CANDIDATES = 100;

function planError(code: PlanErrorCode, message: string): PlanError {
  return { mode: 'error', code, message };
}

/**
 * Per-VM directory names, best first: the name when it is a safe file name, else the UUID, else
 * `vm-<launcher pid>`; then `-2`, `-3`, ... so two live VMs with one name never share a directory.
 */
export function* vmDirCandidates(identity: { readonly name?: string | undefined; readonly uuid?: string | undefined }, launcherPid: number): Generator<string> {
  const base = safeNameStem(identity.name) ?? safeUuidStem(identity.uuid) ?? `vm-${launcherPid}`;
  yield base;
  for (let n = 2; n <= MAX_DIR_CANDIDATES; n += 1) yield `${base}-${n}`;
}

/**
 * `hostinfo0`, or the first `hostinfoN` no user argument mentions. Any mention counts (an id, a
 * path, a bus name): a false alarm only costs a different number, a miss would be a clash.
 */
function chooseIdStem(args: readonly string[]): string | undefined {
  for (let n = 0; n < MAX_ID_TRIES; n += 1) {
    const stem = `${ID_STEM}${n}`;
    const mention = new RegExp(`${stem}(?![0-9])`);
    if (!args.some((word) => mention.test(word))) return stem;
  }
  return undefined;
}

function socketOption(id: string, path: string): string {
  // wait=off: server=on alone makes QEMU wait for a client before starting the VM.
  return `socket,id=${id},path=${escapeOptionValue(path)},server=on,wait=off`;
}

/** A step's result or the error that ends the plan. */
type Step<T> = T | PlanError;
const failed = <T>(step: Step<T>): step is PlanError => typeof step === 'object' && step !== null && (step as { mode?: unknown }).mode === 'error';

/** Step: the ids of the launcher's chardevs and devices. */
function chooseIds(userArgs: readonly string[], transport: Transport, vhostmd: boolean): Step<PlanIds> {
  const stem = chooseIdStem(userArgs);
  if (stem === undefined) {
    return planError('ID_CLASH', `hostinfo-qemu could not find a free id: the QEMU arguments mention every id from ${ID_STEM}0 to ${ID_STEM}${MAX_ID_TRIES - 1}.`);
  }
  const ids = transport === 'virtio-serial'
    ? { chardev: stem, qmpChardev: `${stem}-qmp`, port: `${stem}-port`, bus: `${stem}-bus` }
    : { chardev: stem, qmpChardev: `${stem}-qmp`, port: `${stem}-port` };
  return vhostmd ? { ...ids, vhostmd: vhostmdIds(stem, ids.bus) } : ids;
}

/** Step: the QEMU defaults the launcher's options switch off, to be written out again. */
function chooseRestoredDefaults(scan: ScannedArgs, transport: Transport): Step<string[]> {
  const restored = restoredDefaults(scan, transport === 'isa-serial');
  if (scan.daemonize && scan.nographic && restored.length > 0) {
    // QEMU refuses this combination itself; writing the defaults out would hide its refusal.
    return planError('NOGRAPHIC_DAEMONIZE', '-nographic cannot be used with -daemonize (QEMU refuses it too): redirect the serial port and monitor explicitly.');
  }
  return restored;
}

type GuestPort = { readonly serialIndex: number } | { readonly portName: string };

/** Step: where the guest finds the port, an ISA serial index or the virtio-serial port name. */
function chooseGuestPort(scan: ScannedArgs, transport: Transport, restored: readonly string[], vhostmd: boolean): Step<GuestPort> {
  if (vhostmd && vhostmdNameTaken(scan)) {
    return planError('PORT_NAME_CLASH', `The QEMU arguments already define a virtio-serial port named ${VHOSTMD_PORT_NAME}; hostinfo-qemu needs that name for its vhostmd port ([vhostmd] enabled in hostinfo.toml).`);
  }
  if (transport === 'virtio-serial') {
    if (scan.virtserialportNames.includes(VIRTIO_PORT_NAME)) {
      return planError('PORT_NAME_CLASH', `The QEMU arguments already define a virtio-serial port named ${VIRTIO_PORT_NAME}; hostinfo-qemu needs that name for its own port.`);
    }
    return { portName: VIRTIO_PORT_NAME };
  }
  if (scan.unreadableSet !== undefined) {
    const { set, property } = scan.unreadableSet;
    return planError(
      'SET_UNSUPPORTED',
      `hostinfo-qemu cannot follow -set ${set}: QEMU reads an isa-serial ${property} as an unsigned integer (decimal, 0x hex, 0 octal) and will refuse this value too, ` +
        'so which serial ports are free is unknown. Fix the value, or use --transport virtio-serial.',
    );
  }
  const serialIndex = chooseSerialIndex(scan, countSerials(restored));
  if (serialIndex === undefined) {
    return planError(
      'NO_FREE_SERIAL',
      `hostinfo-qemu needs a free ISA serial port but the QEMU arguments use all ${MAX_ISA_SERIAL_PORTS} (-serial and -device isa-serial options). ` +
        'Free one, or use --transport virtio-serial.',
    );
  }
  return { serialIndex };
}

interface VmPaths {
  readonly vmDirName: string;
  readonly vmDir: string;
  readonly guestSocket: string;
  readonly qmpSocket: string;
  readonly vhostmdSocket?: string;
}

/** Step: the VM's directory (the first free candidate) and the sockets in it. */
function chooseVmPaths(scan: ScannedArgs, options: PlanOptions): Step<VmPaths> {
  const taken = new Set(options.existingDirs ?? []);
  let vmDirName: string | undefined;
  for (const candidate of vmDirCandidates(scan, options.launcherPid)) {
    if (!taken.has(candidate)) {
      vmDirName = candidate;
      break;
    }
  }
  if (vmDirName === undefined) {
    return planError('VM_DIR_EXHAUSTED', `hostinfo-qemu found no free runtime directory name under ${options.vmsDir} (${MAX_DIR_CANDIDATES} tried); remove stale directories.`);
  }
  const vmDir = posix.join(options.vmsDir, vmDirName);
  const guestSocket = posix.join(vmDir, GUEST_SOCKET);
  const qmpSocket = posix.join(vmDir, QMP_SOCKET);
  const vhostmd = options.vhostmd === true ? { vhostmdSocket: posix.join(vmDir, VHOSTMD_SOCKET) } : {};
  for (const socket of [guestSocket, qmpSocket, ...Object.values(vhostmd)]) {
    const bytes = Buffer.byteLength(socket);
    if (bytes > MAX_UNIX_SOCKET_PATH_BYTES) {
      return planError(
        'SOCKET_PATH_TOO_LONG',
        `The socket path ${socket} is ${bytes} bytes; unix sockets allow at most ${MAX_UNIX_SOCKET_PATH_BYTES}. Use a shorter --runtime-dir or VM name.`,
      );
    }
  }
  return { vmDirName, vmDir, guestSocket, qmpSocket, ...vhostmd };
}

/** The `-device` options of the launcher's port. */
function portDevices(scan: ScannedArgs, ids: PlanIds, port: GuestPort): string[] {
  if ('portName' in port) {
    return [
      '-device', `virtio-serial-pci,id=${ids.bus}`,
      '-device', `virtserialport,id=${ids.port},bus=${ids.bus}.0,chardev=${ids.chardev},name=${port.portName}`,
    ];
  }
  const index = port.serialIndex;
  const iobase = ourIobase(scan, index);
  const device = ourSerialAsJson(scan)
    ? JSON.stringify({ driver: 'isa-serial', id: ids.port, chardev: ids.chardev, index, ...(iobase === undefined ? {} : { iobase }) })
    : `isa-serial,id=${ids.port},chardev=${ids.chardev},index=${index}${iobase === undefined ? '' : `,iobase=0x${iobase.toString(16)}`}`;
  return ['-device', device];
}

/** Step: the launcher's own arguments, appended after the user's. */
function ourArguments(scan: ScannedArgs, ids: PlanIds, restored: readonly string[], port: GuestPort, paths: VmPaths, ownPidfile: string | undefined): string[] {
  return [
    ...restored,
    '-chardev', socketOption(ids.chardev, paths.guestSocket),
    ...portDevices(scan, ids, port),
    ...(ids.vhostmd === undefined || paths.vhostmdSocket === undefined ? [] : vhostmdArguments(ids.vhostmd, ids.bus, socketOption(ids.vhostmd.chardev, paths.vhostmdSocket))),
    '-chardev', socketOption(ids.qmpChardev, paths.qmpSocket),
    '-mon', `chardev=${ids.qmpChardev},mode=control`,
    ...(ownPidfile === undefined ? [] : ['-pidfile', ownPidfile]),
  ];
}

export function planQemuArgs(userArgs: readonly string[], options: PlanOptions): QemuPlan {
  const scan = scanQemuArgs(userArgs, options.qemuVersion);
  if (scan.passthrough !== undefined) return { mode: 'passthrough', reason: scan.passthrough, args: [...userArgs] };
  const ids = chooseIds(userArgs, options.transport, options.vhostmd === true);
  if (failed(ids)) return ids;
  const restored = chooseRestoredDefaults(scan, options.transport);
  if (failed(restored)) return restored;
  const port = chooseGuestPort(scan, options.transport, restored, options.vhostmd === true);
  if (failed(port)) return port;
  const paths = chooseVmPaths(scan, options);
  if (failed(paths)) return paths;
  // -daemonize: QEMU's own pid is only known from a pidfile once it has forked.
  const ownPidfile = scan.daemonize && scan.pidfile === undefined ? posix.join(paths.vmDir, QEMU_PIDFILE) : undefined;
  const added = ourArguments(scan, ids, restored, port, paths, ownPidfile);
  return {
    mode: 'wrap',
    args: [...userArgs, ...added],
    added,
    restoredDefaults: restored,
    transport: options.transport,
    ...paths,
    ...(scan.name !== undefined ? { name: scan.name } : {}),
    ...(scan.uuid !== undefined ? { uuid: scan.uuid } : {}),
    ...port,
    ids,
    daemonize: scan.daemonize,
    pidfile: scan.daemonize ? ownPidfile ?? scan.pidfile : undefined,
    unknownOptions: scan.unknownOptions,
    readconfig: scan.readconfig,
  };
}
