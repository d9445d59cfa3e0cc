// Reads the user's QEMU arguments into the facts the launcher's rewriting depends on. Pure: no
// file is read (so `-readconfig` contents are invisible, see qemu-args.ts) and nothing is run.
// Every rule below was checked against QEMU 7.2, and against 10.0 by test/launcher/qemu-real.test.ts
// (see it and the notes in test/launcher/qemu-args.test.ts and qemu-args-set.test.ts); what differs
// between versions is in qemu-versions.ts.
//
// The scan runs in three steps, as QEMU's vl.c does: the argv words are split into options
// (readOptions), each option is noted in command-line order (noteOption: `-set` changes the
// key=value `-device` or `-global` with its id defined before it, as QEMU applies it while
// parsing), and only then are devices, globals and defaults judged (summarize), from the final
// options: vl.c decides on default devices and creates devices after parsing everything.

import { asksForHelp, isHelpWord, optionValue, parseOptionString, type OptionPair } from './qemu-options.js';
import { optionArityOn, type QemuVersion } from './qemu-versions.js';
import {
  numberOf, type SettableOptions, type DeviceFacts, keyvalDevice, keyvalDeviceFacts, jsonDeviceFacts, globalOptions, type GlobalFacts, globalFacts, isaSerialGlobal, readSet,
} from './qemu-device-props.js';

/** One `-device isa-serial` of the user's, with its final properties. */
export interface UserIsaSerial {
  readonly json: boolean;
  /** Undefined: QEMU assigns it (the `-global isa-serial.index`, else its counter). */
  readonly index: number | undefined;
  /** Undefined: the `-global isa-serial.iobase`, else the standard address of its index. */
  readonly iobase: number | undefined;
}

/** What `-global isa-serial.index=` / `.iobase=` give every isa-serial that does not set its own. */
export interface IsaSerialGlobals {
  readonly index: number | undefined;
  readonly iobase: number | undefined;
}

/** A `-set` that leaves an isa-serial index or iobase QEMU cannot read. */
export interface UnreadableSet {
  /** The `-set` value as given, e.g. `device.s1.index=foo`. */
  readonly set: string;
  readonly property: string;
}

export interface ScannedArgs {
  /** Why the launcher must add nothing (a probe, or arguments QEMU will refuse before it starts). */
  readonly passthrough: PassthroughReason | undefined;
  readonly name: string | undefined;
  readonly uuid: string | undefined;
  /** Each `-serial` value in order; `none` included, since it still consumes its index. */
  readonly serials: readonly string[];
  /** Key=value devices in command-line order, then JSON ones: the order QEMU creates them in. */
  readonly isaSerials: readonly UserIsaSerial[];
  readonly isaSerialGlobals: IsaSerialGlobals;
  readonly unreadableSet: UnreadableSet | undefined;
  readonly virtserialportNames: readonly string[];
  readonly nographic: boolean;
  readonly daemonize: boolean;
  /** The last `-pidfile` value (QEMU keeps the last one), as given. */
  readonly pidfile: string | undefined;
  /** What QEMU's vl.c would leave set after parsing: it then creates these defaults itself. */
  readonly defaultSerial: boolean;
  readonly defaultMonitor: boolean;
  readonly unknownOptions: readonly string[];
  readonly readconfig: boolean;
}

export type PassthroughReason = 'help' | 'version' | 'machine-none' | 'option-help' | 'missing-value';

/**
 * Options whose value `help`/`?` (or a `help` flag inside it) makes QEMU 7.2 print a list (or refuse)
 * and exit before creating a VM: tried one by one here. The value is the option's implied key.
 */
const HELP_OPTIONS: ReadonlyMap<string, string | undefined> = new Map([
  ['machine', 'type'], ['M', 'type'], ['device', 'driver'], ['cpu', undefined], ['accel', 'accel'],
  ['chardev', 'backend'], ['netdev', 'type'], ['nic', 'type'], ['net', 'type'], ['object', 'qom-type'],
  ['display', 'type'], ['audiodev', 'driver'], ['audio', 'driver'], ['vga', undefined], ['d', undefined],
  ['trace', 'enable'], ['global', undefined], ['blockdev', 'driver'], ['smp', 'cpus'],
]);

const MONITOR_OPTIONS: ReadonlySet<string> = new Set(['monitor', 'qmp', 'qmp-pretty', 'mon']);

// ---------------------------------------------------------------------------------------------
// Step 1: argv words into options

type ArgOption =
  | { readonly kind: 'unknown'; readonly word: string }
  | { readonly kind: 'flag'; readonly name: string }
  | { readonly kind: 'value'; readonly name: string; readonly value: string }
  | { readonly kind: 'missing-value' };

/**
 * vl.c's reading of argv: a word not starting with '-' is a disk image (hda); `--foo` is `-foo`;
 * an option that takes a value takes the next word, whatever it looks like.
 */
function* readOptions(args: readonly string[], version: QemuVersion | undefined): Generator<ArgOption> {
  for (let i = 0; i < args.length; i += 1) {
    const word = args[i] ?? '';
    if (!word.startsWith('-')) continue;
    const name = word.startsWith('--') ? word.slice(2) : word.slice(1);
    const arity = optionArityOn(name, version);
    if (arity === 'unknown') {
      yield { kind: 'unknown', word };
      continue;
    }
    if (arity === 'flag') {
      yield { kind: 'flag', name };
      continue;
    }
    const value = args[i + 1];
    i += 1;
    if (value === undefined) {
      yield { kind: 'missing-value' };
      return;
    }
    yield { kind: 'value', name, value };
  }
}

// ---------------------------------------------------------------------------------------------
// Step 2: options noted in command-line order

interface ScanState {
  passthrough: PassthroughReason | undefined;
  readonly nameParts: OptionPair[];
  uuid: string | undefined;
  machineType: string | undefined;
  readonly serials: string[];
  readonly keyvalDevices: SettableOptions[];
  readonly jsonDevices: DeviceFacts[];
  readonly globals: SettableOptions[];
  readonly unknownOptions: string[];
  nographic: boolean;
  daemonize: boolean;
  pidfile: string | undefined;
  nodefaults: boolean;
  monitorGiven: boolean;
  readconfig: boolean;
}

function emptyState(): ScanState {
  return {
    passthrough: undefined, nameParts: [], uuid: undefined, machineType: undefined, serials: [], keyvalDevices: [],
    jsonDevices: [], globals: [], unknownOptions: [], nographic: false, daemonize: false, pidfile: undefined,
    nodefaults: false, monitorGiven: false, readconfig: false,
  };
}

function noteFlag(state: ScanState, name: string): void {
  if (name === 'h' || name === 'help') state.passthrough ??= 'help';
  else if (name === 'version') state.passthrough ??= 'version';
  else if (name === 'nographic') state.nographic = true;
  else if (name === 'daemonize') state.daemonize = true;
  else if (name === 'nodefaults') state.nodefaults = true;
}

function noteDevice(state: ScanState, value: string): void {
  if (!value.trimStart().startsWith('{')) {
    state.keyvalDevices.push(keyvalDevice(value));
    return;
  }
  const device = jsonDeviceFacts(value);
  if (device !== undefined) state.jsonDevices.push(device);
}

/**
 * `-set group.id.key=value` appends to the options of the key=value `-device` (or `-global`) that
 * has that id so far. Nothing else is reached: a JSON `-device` or one defined later makes QEMU
 * refuse ("there is no device"), `serial` is no group, `machine` is refused, and the other groups
 * (chardev, mon, drive, ...) cannot move a serial port.
 */
function noteSet(state: ScanState, value: string): void {
  const set = readSet(value);
  if (set === undefined) return; // QEMU: can't parse
  const list = set.group === 'device' ? state.keyvalDevices : set.group === 'global' ? state.globals : [];
  list.find((entry) => entry.id === set.id)?.pairs.push({ key: set.key, value: set.value, set: value });
}

function noteOption(state: ScanState, name: string, value: string): void {
  if (HELP_OPTIONS.has(name)) {
    const implied = HELP_OPTIONS.get(name);
    if (isHelpWord(value) || asksForHelp(value, implied)) state.passthrough ??= 'option-help';
  }
  switch (name) {
    case 'name':
      state.nameParts.push(...parseOptionString(value, 'guest'));
      break;
    case 'uuid':
      state.uuid = value.toLowerCase(); // QEMU reports it lower-case (query-uuid)
      break;
    case 'machine':
    case 'M':
      // Machine options merge across repeats; the last type wins (`-M pc -M none` is none).
      state.machineType = optionValue(parseOptionString(value, 'type'), 'type') ?? state.machineType;
      break;
    case 'serial':
      state.serials.push(value);
      if (value.startsWith('mon:')) state.monitorGiven = true;
      break;
    case 'parallel':
      if (value.startsWith('mon:')) state.monitorGiven = true;
      break;
    case 'device':
      noteDevice(state, value);
      break;
    case 'global':
      state.globals.push(globalOptions(value));
      break;
    case 'set':
      noteSet(state, value);
      break;
    case 'readconfig':
      state.readconfig = true;
      break;
    case 'pidfile':
      state.pidfile = value;
      break;
    default:
      if (MONITOR_OPTIONS.has(name)) state.monitorGiven = true; // `-monitor none` too
  }
}

// ---------------------------------------------------------------------------------------------
// Step 3: judged from the final options

/**
 * QEMU's device_help_func runs on the final options: a `-set` that makes a device's driver `help`
 * (or adds a `help` option) turns the run into a listing. (A `-device` asking for help by itself
 * is caught where it is read.)
 */
function setAsksForHelp(devices: readonly SettableOptions[]): boolean {
  return devices.some((device) =>
    device.pairs.some((pair) => pair.set !== undefined) &&
    (isHelpWord(optionValue(device.pairs, 'driver')) || device.pairs.some((pair) => isHelpWord(pair.key))));
}

/** The first `-set` that leaves an isa-serial property QEMU cannot read. */
function findUnreadableSet(isaSerials: readonly DeviceFacts[], globals: readonly GlobalFacts[]): UnreadableSet | undefined {
  for (const device of isaSerials) {
    for (const property of ['index', 'iobase'] as const) {
      const read = device[property];
      if (read.kind === 'unreadable' && read.set !== undefined) return { set: read.set, property };
    }
  }
  for (const property of ['index', 'iobase'] as const) {
    const read = isaSerialGlobal(globals, property);
    if (read.kind === 'unreadable' && read.set !== undefined) return { set: read.set, property };
  }
  return undefined;
}

function summarize(state: ScanState): ScannedArgs {
  // QEMU creates key=value devices first, in order, then the JSON ones (qemu_create_cli_devices).
  const devices = [...state.keyvalDevices.map(keyvalDeviceFacts), ...state.jsonDevices];
  const globals = state.globals.map(globalFacts);
  const isaSerialDevices = devices.filter((device) => device.driver === 'isa-serial');
  // vl.c's default_driver_check, on the final drivers of -device and -global.
  const serialDisabledByDevice = isaSerialDevices.length > 0 || globals.some((global) => global.driver === 'isa-serial');
  let passthrough = state.passthrough;
  if (state.machineType === 'none') passthrough ??= 'machine-none';
  if (setAsksForHelp(state.keyvalDevices)) passthrough ??= 'option-help';
  const guest = optionValue(state.nameParts, 'guest');
  return {
    passthrough,
    name: guest === '' ? undefined : guest,
    uuid: state.uuid,
    serials: state.serials,
    isaSerials: isaSerialDevices.map((device) => ({ json: device.json, index: numberOf(device.index), iobase: numberOf(device.iobase) })),
    isaSerialGlobals: { index: numberOf(isaSerialGlobal(globals, 'index')), iobase: numberOf(isaSerialGlobal(globals, 'iobase')) },
    unreadableSet: findUnreadableSet(isaSerialDevices, globals),
    virtserialportNames: devices
      .filter((device) => device.driver === 'virtserialport' || device.driver === 'virtconsole')
      .flatMap((device) => (typeof device.portName === 'string' ? [device.portName] : [])),
    nographic: state.nographic,
    daemonize: state.daemonize,
    pidfile: state.pidfile,
    defaultSerial: !state.nodefaults && state.serials.length === 0 && !serialDisabledByDevice,
    defaultMonitor: !state.nodefaults && !state.monitorGiven,
    unknownOptions: state.unknownOptions,
    readconfig: state.readconfig,
  };
}

/** `version`: the QEMU's that will run (qemu-versions.ts); undefined, any QEMU's reading. */
export function scanQemuArgs(args: readonly string[], version?: QemuVersion): ScannedArgs {
  const state = emptyState();
  for (const option of readOptions(args, version)) {
    if (option.kind === 'unknown') state.unknownOptions.push(option.word);
    else if (option.kind === 'flag') noteFlag(state, option.name);
    // QEMU exits with "requires an argument"; appending ours would hand it our first word instead.
    else if (option.kind === 'missing-value') state.passthrough ??= 'missing-value';
    else noteOption(state, option.name, option.value);
  }
  return summarize(state);
}
