// hostinfo-qemu's own options, which all come before `--`; everything after `--` belongs to QEMU
// and is passed on unchanged.

import { flagTokens } from '../common/flags.js';
import type { Transport } from './qemu-args.js';

export const USAGE = `Usage: hostinfo-qemu [--qemu PATH] [--config FILE] [--policy-dir DIR] [--runtime-dir DIR]
                     [--transport isa-serial|virtio-serial] [--quiet] -- <qemu args>

Becomes QEMU (exec) exactly as 'qemu-system-x86_64 <qemu args>' would run: same pid, file
descriptors, terminal, exit status and signals. Before that it gives the guest a hostinfo port: a
spare serial port (default; the first free COM port, e.g. /dev/ttyS1 with -nographic) or a
virtio-serial port named org.hostinfo.0, and registers the VM with hostinfod (started if none runs),
which runs an unprivileged hostinfo-sidecar that answers the guest according to the VM's policy.

  --qemu PATH          QEMU binary (default: $HOSTINFO_QEMU, else the first of qemu-kvm,
                       /usr/libexec/qemu-kvm, qemu-system-x86_64 found)
  --config FILE        host config (default: $HOSTINFO_CONFIG, else /etc/hostinfo/hostinfo.toml);
                       its runtime_dir says where to register, and a hostinfod this starts reads it
  --policy-dir DIR     per-VM policies for a hostinfod this starts (default: $HOSTINFO_POLICY_DIR,
                       else policy_dir of the config); a running hostinfod keeps its own
  --runtime-dir DIR    where hostinfod runs and VMs register (default: $HOSTINFO_RUNTIME_DIR, else
                       runtime_dir of the config)
  --transport T        isa-serial (default) or virtio-serial
  --quiet              do not print the guest port line ("hostinfo: guest port /dev/ttyS1 (COM2)")
                       nor the note on QEMU options hostinfo-qemu does not know; warnings and
                       errors are still printed
  --help, --version

Invocations that only ask QEMU something (--help, -version, -machine none, ... help) run QEMU
unchanged. -daemonize and -pidfile work. When hostinfo cannot serve the VM (broken config, unsafe
runtime directory, no daemon) it says why and QEMU starts without hostinfo. Exit status: QEMU's
own; 127 when no QEMU binary is found; 2 for bad options or QEMU arguments it cannot extend.
`;

export interface LauncherFlags {
  readonly qemu: string | undefined;
  readonly configPath: string | undefined;
  readonly policyDir: string | undefined;
  readonly runtimeDir: string | undefined;
  readonly transport: Transport;
  /** No guest port line, no note on unknown options. */
  readonly quiet: boolean;
  readonly qemuArgs: readonly string[];
}

export type ParsedLauncherFlags =
  | { readonly kind: 'help' }
  | { readonly kind: 'version' }
  | { readonly kind: 'run'; readonly flags: LauncherFlags }
  | { readonly kind: 'error'; readonly message: string };

const OPTIONS = {
  qemu: { type: 'string' },
  config: { type: 'string' },
  'policy-dir': { type: 'string' },
  'runtime-dir': { type: 'string' },
  transport: { type: 'string' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;
type Option = keyof typeof OPTIONS;
const isOption = (name: string): name is Option => Object.hasOwn(OPTIONS, name);

export function parseLauncherFlags(argv: readonly string[]): ParsedLauncherFlags {
  const split = argv.indexOf('--');
  const own = split === -1 ? argv : argv.slice(0, split);
  const values: Partial<Record<Option, string | true>> = {};
  for (const token of flagTokens(own, OPTIONS)) {
    if (token.kind === 'option-terminator') continue;
    // Anything not ours is almost always QEMU's, given before the --.
    if (token.kind === 'positional' || !isOption(token.name)) {
      return { kind: 'error', message: `unknown option ${JSON.stringify(own[token.index])}; QEMU's arguments go after --, as in: hostinfo-qemu -- ${argv.slice(token.index).join(' ')}` };
    }
    if (token.name === 'help') return { kind: 'help' };
    if (token.name === 'version') return { kind: 'version' };
    if (OPTIONS[token.name].type === 'boolean') {
      if (token.inlineValue === true) return { kind: 'error', message: `${token.rawName} takes no value` };
      values[token.name] = true;
    } else {
      if (token.value === undefined || token.value === '') return { kind: 'error', message: `${token.rawName} needs a value` };
      values[token.name] = token.value;
    }
  }
  if (split === -1) return { kind: 'error', message: 'no QEMU arguments: hostinfo-qemu [options] -- <qemu args>' };
  const text = (name: Option): string | undefined => (typeof values[name] === 'string' ? values[name] : undefined);
  const transport = text('transport') ?? 'isa-serial';
  if (transport !== 'isa-serial' && transport !== 'virtio-serial') {
    return { kind: 'error', message: `--transport expects isa-serial or virtio-serial, received ${JSON.stringify(transport)}` };
  }
  return {
    kind: 'run',
    flags: {
      qemu: text('qemu'),
      configPath: text('config'),
      policyDir: text('policy-dir'),
      runtimeDir: text('runtime-dir'),
      transport,
      quiet: values.quiet === true,
      qemuArgs: argv.slice(split + 1),
    },
  };
}

/**
 * hostinfo-kvm (bin/hostinfo-kvm) takes QEMU's arguments alone, as libvirt's <emulator> or as
 * `kvm` first on PATH: nothing in argv is hostinfo's. Its settings come from the environment
 * (HOSTINFO_QEMU, HOSTINFO_CONFIG, HOSTINFO_POLICY_DIR, HOSTINFO_RUNTIME_DIR, HOSTINFO_TRANSPORT,
 * HOSTINFO_QUIET) and hostinfo.toml. A bad HOSTINFO_TRANSPORT is a `problem`: the VM starts
 * without hostinfo, it does not fail.
 */
export function kvmFlags(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): { readonly flags: LauncherFlags; readonly problem: string | undefined } {
  const value = (key: string): string | undefined => (env[key] === '' ? undefined : env[key]);
  const transport = value('HOSTINFO_TRANSPORT') ?? 'isa-serial';
  const valid = transport === 'isa-serial' || transport === 'virtio-serial';
  const quiet = value('HOSTINFO_QUIET');
  return {
    flags: {
      qemu: undefined, // findQemu reads HOSTINFO_QEMU itself
      configPath: undefined, // loadHostConfig reads HOSTINFO_CONFIG
      policyDir: value('HOSTINFO_POLICY_DIR'),
      runtimeDir: undefined, // loadHostConfig reads HOSTINFO_RUNTIME_DIR
      transport: valid ? transport : 'isa-serial',
      quiet: quiet !== undefined && quiet !== '0',
      qemuArgs: argv,
    },
    problem: valid ? undefined : `HOSTINFO_TRANSPORT expects isa-serial or virtio-serial, received ${JSON.stringify(transport)}`,
  };
}
