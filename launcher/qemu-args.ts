// The launcher's argument rewriting, as one pure function: the user's QEMU arguments in, the
// arguments to run QEMU with out (the user's unchanged and in order, the launcher's appended), or
// a reason to add nothing, or a typed error. The process side (launcher/main.ts) creates the
// runtime directory, spawns QEMU and the sidecar; nothing here touches the system.
//
// Known limits, by design of a pure reader of argv:
//   - `-readconfig FILE` sections (a [device] isa-serial, a [mon]) are not seen; the plan says
//     `readconfig: true` so the caller can warn. (A [mon] from -readconfig does NOT switch off
//     QEMU's default monitor on 7.2: only the command-line options do.)
//   - `-set device.ID.index=N` rewrites are not followed.
//   - `-S`, `-incoming`, `-loadvm`, `-snapshot` and everything else just pass through.
//   - `-daemonize` without `-pidfile` gets a pidfile in the VM's directory: QEMU's own pid is
//     only known from it once QEMU has forked.

import { posix } from 'node:path';
import { safeNameStem, safeUuidStem } from '../policies/policy-lookup.js';
import { scanQemuArgs, type PassthroughReason } from './qemu-args-scan.js';
import { chooseSerialIndex, countSerials, MAX_ISA_SERIAL_PORTS, ourSerialAsJson, restoredDefaults } from './qemu-args-serial.js';
import { escapeOptionValue } from './qemu-options.js';

import type { Transport } from '../common/vm-record.js';
import { GUEST_SOCKET, QEMU_PIDFILE, QMP_SOCKET } from '../common/runtime-tree.js';

export type { Transport };

export interface PlanOptions {
  readonly transport: Transport;
  /** Absolute: QEMU resolves socket paths against its own working directory. */
  readonly vmsDir: string;
  readonly launcherPid: number;
  /** Directory names already taken (the caller got EEXIST): the next candidate is used. */
  readonly existingDirs?: Iterable<string>;
}

export type PlanErrorCode =
  | 'NO_FREE_SERIAL'
  | 'SOCKET_PATH_TOO_LONG'
  | 'ID_CLASH'
  | 'PORT_NAME_CLASH'
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

export function planQemuArgs(userArgs: readonly string[], options: PlanOptions): QemuPlan {
  const scan = scanQemuArgs(userArgs);
  if (scan.passthrough !== undefined) return { mode: 'passthrough', reason: scan.passthrough, args: [...userArgs] };

  const stem = chooseIdStem(userArgs);
  if (stem === undefined) {
    return planError('ID_CLASH', `hostinfo-qemu could not find a free id: the QEMU arguments mention every id from ${ID_STEM}0 to ${ID_STEM}${MAX_ID_TRIES - 1}.`);
  }
  const ids: PlanIds =
    options.transport === 'virtio-serial'
      ? { chardev: stem, qmpChardev: `${stem}-qmp`, port: `${stem}-port`, bus: `${stem}-bus` }
      : { chardev: stem, qmpChardev: `${stem}-qmp`, port: `${stem}-port` };

  const restored = restoredDefaults(scan, options.transport === 'isa-serial');
  if (scan.daemonize && scan.nographic && restored.length > 0) {
    // QEMU refuses this combination itself; writing the defaults out would hide its refusal.
    return planError('NOGRAPHIC_DAEMONIZE', '-nographic cannot be used with -daemonize (QEMU refuses it too): redirect the serial port and monitor explicitly.');
  }

  let serialIndex: number | undefined;
  if (options.transport === 'isa-serial') {
    serialIndex = chooseSerialIndex(scan, countSerials(restored));
    if (serialIndex === undefined) {
      return planError(
        'NO_FREE_SERIAL',
        `hostinfo-qemu needs a free ISA serial port but the QEMU arguments use all ${MAX_ISA_SERIAL_PORTS} (-serial and -device isa-serial options). ` +
          'Free one, or use --transport virtio-serial.',
      );
    }
  } else if (scan.virtserialportNames.includes(VIRTIO_PORT_NAME)) {
    return planError('PORT_NAME_CLASH', `The QEMU arguments already define a virtio-serial port named ${VIRTIO_PORT_NAME}; hostinfo-qemu needs that name for its own port.`);
  }

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
  for (const socket of [guestSocket, qmpSocket]) {
    const bytes = Buffer.byteLength(socket);
    if (bytes > MAX_UNIX_SOCKET_PATH_BYTES) {
      return planError(
        'SOCKET_PATH_TOO_LONG',
        `The socket path ${socket} is ${bytes} bytes; unix sockets allow at most ${MAX_UNIX_SOCKET_PATH_BYTES}. Use a shorter --runtime-dir or VM name.`,
      );
    }
  }

  const isaSerial = ourSerialAsJson(scan)
    ? JSON.stringify({ driver: 'isa-serial', id: ids.port, chardev: ids.chardev, index: serialIndex })
    : `isa-serial,id=${ids.port},chardev=${ids.chardev},index=${serialIndex}`;
  const port =
    options.transport === 'isa-serial'
      ? ['-device', isaSerial]
      : [
          '-device', `virtio-serial-pci,id=${ids.bus}`,
          '-device', `virtserialport,id=${ids.port},bus=${ids.bus}.0,chardev=${ids.chardev},name=${VIRTIO_PORT_NAME}`,
        ];
  const added = [
    ...restored,
    '-chardev', socketOption(ids.chardev, guestSocket),
    ...port,
    '-chardev', socketOption(ids.qmpChardev, qmpSocket),
    '-mon', `chardev=${ids.qmpChardev},mode=control`,
  ];
  const ownPidfile = scan.daemonize && scan.pidfile === undefined ? posix.join(vmDir, QEMU_PIDFILE) : undefined;
  if (ownPidfile !== undefined) added.push('-pidfile', ownPidfile);

  return {
    mode: 'wrap',
    args: [...userArgs, ...added],
    added,
    restoredDefaults: restored,
    transport: options.transport,
    vmDirName,
    vmDir,
    guestSocket,
    qmpSocket,
    ...(scan.name !== undefined ? { name: scan.name } : {}),
    ...(scan.uuid !== undefined ? { uuid: scan.uuid } : {}),
    ...(serialIndex !== undefined ? { serialIndex } : { portName: VIRTIO_PORT_NAME }),
    ids,
    daemonize: scan.daemonize,
    pidfile: scan.daemonize ? ownPidfile ?? scan.pidfile : undefined,
    unknownOptions: scan.unknownOptions,
    readconfig: scan.readconfig,
  };
}
