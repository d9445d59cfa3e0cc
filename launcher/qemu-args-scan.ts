// Reads the user's QEMU arguments into the facts the launcher's rewriting depends on. Pure: no
// file is read (so `-readconfig` contents are invisible, see qemu-args.ts) and nothing is run.
// Every rule below was checked against QEMU 7.2 (see test/launcher/qemu-real.test.ts and the
// notes in test/launcher/qemu-args.test.ts).

import { asksForHelp, isHelpWord, optionValue, parseOptionString, type OptionPair } from './qemu-options.js';
import { optionArity } from './qemu-options-table.js';

/** One `-device isa-serial` of the user's. `index` undefined = QEMU assigns it from its counter. */
export interface UserIsaSerial {
  readonly json: boolean;
  readonly index: number | undefined;
}

export interface ScannedArgs {
  /** Why the launcher must add nothing (a probe, or arguments QEMU will refuse before it starts). */
  readonly passthrough: PassthroughReason | undefined;
  readonly name: string | undefined;
  readonly uuid: string | undefined;
  /** Each `-serial` value in order; `none` included, since it still consumes its index. */
  readonly serials: readonly string[];
  readonly isaSerials: readonly UserIsaSerial[];
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

/** A `-device` value: JSON when it starts with `{` (QEMU 7.2 accepts both forms), else an option string. */
function deviceProperties(value: string): { driver: string | undefined; props: (key: string) => unknown; json: boolean } {
  if (value.trimStart().startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      return { driver: undefined, props: () => undefined, json: true }; // QEMU refuses it; nothing to learn
    }
    const object = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
    const driver = typeof object['driver'] === 'string' ? object['driver'] : undefined;
    return { driver, props: (key) => object[key], json: true };
  }
  const pairs = parseOptionString(value, 'driver');
  return { driver: optionValue(pairs, 'driver'), props: (key) => optionValue(pairs, key), json: false };
}

/** QEMU parses uint32 properties with base auto-detection (`1`, `0x1`); anything else it refuses. */
function propertyIndex(raw: unknown): number | undefined {
  if (typeof raw === 'number' && Number.isInteger(raw) && raw >= 0) return raw;
  if (typeof raw !== 'string' || !/^(0x[0-9a-f]+|[0-9]+)$/i.test(raw)) return undefined;
  return Number(raw);
}

/** `-global isa-serial.prop=v` and `-global driver=isa-serial,...` both switch off the default serial. */
function globalDriver(value: string): string | undefined {
  const pairs = parseOptionString(value);
  const explicit = optionValue(pairs, 'driver');
  if (explicit !== undefined) return explicit;
  const legacy = /^([^.=,]+)\./.exec(value);
  return legacy?.[1];
}

export function scanQemuArgs(args: readonly string[]): ScannedArgs {
  let passthrough: PassthroughReason | undefined;
  const nameParts: OptionPair[] = [];
  let uuid: string | undefined;
  let machineType: string | undefined;
  const serials: string[] = [];
  const isaSerials: UserIsaSerial[] = [];
  const virtserialportNames: string[] = [];
  const unknownOptions: string[] = [];
  let nographic = false;
  let daemonize = false;
  let pidfile: string | undefined;
  let nodefaults = false;
  let monitorGiven = false;
  let serialDisabledByDevice = false;
  let readconfig = false;

  for (let i = 0; i < args.length; i += 1) {
    const word = args[i] ?? '';
    // vl.c: a word not starting with '-' is a disk image (hda); `--foo` is the same as `-foo`.
    if (!word.startsWith('-')) continue;
    const name = word.startsWith('--') ? word.slice(2) : word.slice(1);
    const arity = optionArity(name);
    if (arity === 'unknown') {
      unknownOptions.push(word);
      continue;
    }
    if (arity === 'flag') {
      if (name === 'h' || name === 'help') passthrough ??= 'help';
      else if (name === 'version') passthrough ??= 'version';
      else if (name === 'nographic') nographic = true;
      else if (name === 'daemonize') daemonize = true;
      else if (name === 'nodefaults') nodefaults = true;
      continue;
    }
    const value = args[i + 1];
    i += 1;
    if (value === undefined) {
      // QEMU exits with "requires an argument"; appending ours would hand it our first word instead.
      passthrough ??= 'missing-value';
      break;
    }
    if (HELP_OPTIONS.has(name)) {
      const implied = HELP_OPTIONS.get(name);
      if (isHelpWord(value) || asksForHelp(value, implied)) passthrough ??= 'option-help';
    }
    switch (name) {
      case 'name':
        nameParts.push(...parseOptionString(value, 'guest'));
        break;
      case 'uuid':
        uuid = value.toLowerCase(); // QEMU reports it lower-case (query-uuid)
        break;
      case 'machine':
      case 'M':
        // Machine options merge across repeats; the last type wins (`-M pc -M none` is none).
        machineType = optionValue(parseOptionString(value, 'type'), 'type') ?? machineType;
        break;
      case 'serial':
        serials.push(value);
        if (value.startsWith('mon:')) monitorGiven = true;
        break;
      case 'parallel':
        if (value.startsWith('mon:')) monitorGiven = true;
        break;
      case 'device': {
        const device = deviceProperties(value);
        if (device.driver === 'isa-serial') {
          isaSerials.push({ json: device.json, index: propertyIndex(device.props('index')) });
          serialDisabledByDevice = true;
        } else if (device.driver === 'virtserialport' || device.driver === 'virtconsole') {
          const portName = device.props('name');
          if (typeof portName === 'string') virtserialportNames.push(portName);
        }
        break;
      }
      case 'global':
        if (globalDriver(value) === 'isa-serial') serialDisabledByDevice = true;
        break;
      case 'readconfig':
        readconfig = true;
        break;
      case 'pidfile':
        pidfile = value;
        break;
      default:
        if (MONITOR_OPTIONS.has(name)) monitorGiven = true; // `-monitor none` too
    }
  }
  if (machineType === 'none') passthrough ??= 'machine-none';

  const guest = optionValue(nameParts, 'guest');
  return {
    passthrough,
    name: guest === '' ? undefined : guest,
    uuid,
    serials,
    isaSerials,
    virtserialportNames,
    nographic,
    daemonize,
    pidfile,
    defaultSerial: !nodefaults && serials.length === 0 && !serialDisabledByDevice,
    defaultMonitor: !nodefaults && !monitorGiven,
    unknownOptions,
    readconfig,
  };
}
