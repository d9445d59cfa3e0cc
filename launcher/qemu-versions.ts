// What differs between the QEMU versions hostinfo-qemu plans for, as data looked up by the
// version QEMU reports (`-version`, read by qemu-version-probe.ts; QMP query-version says the
// same). Every entry names the QEMU fact it rests on. Tested on Debian 12's 7.2.22 and
// bookworm-backports' 10.0.2 (test/launcher/qemu-versions-real.test.ts checks every option of both
// against how the binary itself reads it).
//
// What differs: the options. 8.0 to 10.0 added some and removed others, and the launcher must
// know which words take a value (qemu-options-table.ts says why). No option changed its arity
// between 7.2.22 and 10.0.2 (checked for every option either `-help` lists), and QEMU refuses an
// option it does not know before it starts ("invalid option", in its first pass over argv). So a
// release number below that is too early costs nothing (that QEMU refuses the option anyway) and
// one that is too late only misreads an option whose value starts with '-' (`-run-with` takes
// `key=value`, `-shim` a path); either changes the note about unknown options. Without a version
// (it could not be read) the planner knows every option listed here, each with its one arity.
//
// Checked and found equal, so not data:
//   - Default devices. With the planner's arguments and QEMU's own (-display none, -nographic,
//     -nodefaults, -machine q35, -vga none, a virtio-serial bus), `info qtree` lists the same
//     devices on both and query-chardev the same serial, parallel and monitor backends. Since 8.2
//     system/vl.c qemu_create_default_devices takes the graphical default from
//     qemu_display_get_vc() (ui/console.c), which is "vc:80Cx24C" (the planner's DEFAULT_VC, what
//     7.2 hard-coded) on builds with pixman, as Debian's and Fedora's are. A build without pixman
//     makes `-serial null`, `-parallel null` and no monitor instead: a build option, not a
//     version, and not handled.
//   - `reconnect=` on socket chardevs: deprecated in 9.2 for `reconnect-ms=` (qapi/char.json
//     ChardevSocket), removed in 10.2 (docs/about/removed-features.rst). It only ever applied to
//     client sockets (qemu.git 5dd1f02b, "qemu-char: Add reconnecting to client sockets"); the
//     launcher's chardevs are servers (server=on,wait=off) and carry neither key. 7.2.22 refuses
//     `reconnect-ms` ("Invalid parameter"), 10.0.2 takes both: checked.

import { optionArity, type OptionArity } from './qemu-options-table.js';

export interface QemuVersion {
  readonly major: number;
  readonly minor: number;
  readonly micro: number;
}

/** `major.minor`, the release a fact is tied to. */
type Release = readonly [major: number, minor: number];

/**
 * The version in `qemu -version` output: "QEMU emulator version 10.0.2 (Debian
 * 1:10.0.2+ds-2+deb13u1~bpo12+1)" (system/vl.c version()); RHEL's qemu-kvm prints the same line.
 * Undefined when there is no such line.
 */
export function parseQemuVersion(text: string): QemuVersion | undefined {
  const match = /^QEMU emulator version (\d{1,4})\.(\d{1,4})\.(\d{1,4})\b/m.exec(text);
  if (match === null) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]), micro: Number(match[3]) };
}

export const formatQemuVersion = (version: QemuVersion): string => `${version.major}.${version.minor}.${version.micro}`;

const atLeast = (version: QemuVersion, [major, minor]: Release): boolean => version.major > major || (version.major === major && version.minor >= minor);

/** A QEMU option that exists only in some versions. */
export interface VersionedOption {
  readonly arity: Exclude<OptionArity, 'unknown'>;
  /** The first release that has it; undefined: older than any QEMU the launcher plans for. */
  readonly since?: Release;
  /** The first release without it. */
  readonly removedIn?: Release;
  /** The QEMU fact this rests on. */
  readonly source: string;
}

const REMOVED_IN_9_0 = 'qemu.git merge 313aa1030a (pull-request-2024-01-19, for 9.0): "Remove deprecated CLI options -no-hpet, -no-acpi, -async-teardown, -chroot and -singlestep"';
/** Not pinned to a release: what a QEMU we ran shows, the earliest release it can be. */
const ONLY_OBSERVED = 'not listed by 10.0.2 -help and refused by it ("invalid option"), listed by 7.2.22: the release that dropped it is not pinned here';

export const VERSIONED_OPTIONS: Readonly<Record<string, VersionedOption>> = {
  perfmap: { arity: 'flag', since: [8, 0], source: 'qemu.git merge 7c9236d6d6 (pull-tcg-20230116, for 8.0): "tcg: add perfmap and jitdump" adds DEF("perfmap") to qemu-options.hx' },
  jitdump: { arity: 'flag', since: [8, 0], source: 'qemu.git merge 7c9236d6d6 (pull-tcg-20230116, for 8.0): "tcg: add perfmap and jitdump" adds DEF("jitdump") to qemu-options.hx' },
  'run-with': { arity: 'value', since: [8, 1], source: 'docs/about/deprecated.rst: -async-teardown, deprecated in 8.1, is replaced by -run-with async-teardown=on (chroot= came in 9.0, user= in 9.1 with qemu.git 95e0fb0afa, which deprecates -runas)' },
  shim: { arity: 'value', since: [10, 0], source: 'qemu-options.hx DEF("shim", HAS_ARG): listed by 10.0.2 -help ("-shim shim.efi"), refused by 7.2.22; the release that added it is not pinned here' },
  'no-acpi': { arity: 'flag', removedIn: [9, 0], source: `${REMOVED_IN_9_0} (deprecated in 8.0 for -machine acpi=off)` },
  'no-hpet': { arity: 'flag', removedIn: [9, 0], source: `${REMOVED_IN_9_0}; qemu.git 48c1c25a55 "qemu-options: Remove the deprecated -no-hpet option"` },
  'async-teardown': { arity: 'flag', removedIn: [9, 0], source: `${REMOVED_IN_9_0}; replaced by -run-with async-teardown=on` },
  chroot: { arity: 'value', removedIn: [9, 0], source: `${REMOVED_IN_9_0}; replaced by -run-with chroot=` },
  singlestep: { arity: 'flag', removedIn: [9, 0], source: `${REMOVED_IN_9_0}; replaced by -accel tcg,one-insn-per-tb=on` },
  runas: { arity: 'value', removedIn: [10, 0], source: 'docs/about/removed-features.rst "-runas (removed in 10.0)": deprecated in 9.1 (qemu.git 95e0fb0afa) for -run-with user=' },
  portrait: { arity: 'flag', removedIn: [10, 0], source: ONLY_OBSERVED },
  rotate: { arity: 'value', removedIn: [10, 0], source: ONLY_OBSERVED },
  'audio-help': { arity: 'flag', removedIn: [10, 0], source: ONLY_OBSERVED },
};

/** Whether `version` has the versioned option. */
export function hasOption(option: VersionedOption, version: QemuVersion): boolean {
  return (option.since === undefined || atLeast(version, option.since)) && (option.removedIn === undefined || !atLeast(version, option.removedIn));
}

/**
 * How the QEMU of `version` reads option `name` (without its dashes): a versioned option it does
 * not have is unknown to it, as it is to that QEMU; every other option as qemu-options-table.ts
 * says. With no version, any QEMU's reading.
 */
export function optionArityOn(name: string, version: QemuVersion | undefined): OptionArity {
  const versioned = Object.hasOwn(VERSIONED_OPTIONS, name) ? VERSIONED_OPTIONS[name] : undefined;
  if (versioned === undefined) return optionArity(name);
  return version === undefined || hasOption(versioned, version) ? versioned.arity : 'unknown';
}
