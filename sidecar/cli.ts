// Command-line flags of hostinfo-sidecar, parsed without side effects so tests can cover them.

export const USAGE = `Usage: hostinfo-sidecar --qmp PATH --guest PATH [--cache PATH] [--config FILE]
                        [--policy-dir DIR] [--qemu-pid PID] [--help] [--version]

Stands beside one QEMU VM: learns the VM's identity over QMP, applies its hostinfo policy, and
answers the guest's requests on the hostinfo chardev with host statistics from hostinfo-cache.
hostinfo-qemu starts it for you; run it by hand only to attach to a QEMU started otherwise.

  --qmp PATH        QEMU's QMP monitor socket (QEMU listening: server=on,wait=off)
  --guest PATH      the hostinfo chardev socket (QEMU listening: server=on,wait=off); the sidecar
                    connects to it and reconnects whenever it drops
  --cache PATH      hostinfo-cache socket (default: <runtime_dir>/cache.sock from the host config)
  --config FILE     host config (default: $HOSTINFO_CONFIG, else /etc/hostinfo/hostinfo.toml)
  --policy-dir DIR  per-VM policies (default: $HOSTINFO_POLICY_DIR, else policy_dir from the config)
  --qemu-pid PID    QEMU's pid, for vcpudelay (default: found from the QMP socket in /proc)
  --help, --version

Logs are JSON lines on stderr, including one audit line per guest request (rate-bounded).
SIGHUP re-reads the host config and the policy; policy files are also watched for changes.
Exits 0 when QEMU shuts down or closes QMP, or on SIGTERM/SIGINT; 1 on errors; 2 on bad flags.
`;

export interface SidecarFlags {
  readonly qmpPath: string;
  readonly guestPath: string;
  readonly cachePath: string | undefined;
  readonly configPath: string | undefined;
  readonly policyDir: string | undefined;
  readonly qemuPid: number | undefined;
}

export type ParsedSidecarFlags =
  | { readonly kind: 'help' }
  | { readonly kind: 'version' }
  | { readonly kind: 'run'; readonly flags: SidecarFlags }
  | { readonly kind: 'error'; readonly message: string };

const VALUE_FLAGS = ['--qmp', '--guest', '--cache', '--config', '--policy-dir', '--qemu-pid'] as const;
type ValueFlag = (typeof VALUE_FLAGS)[number];

export function parseSidecarFlags(argv: readonly string[]): ParsedSidecarFlags {
  const values = new Map<ValueFlag, string>();
  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index] ?? '';
    if (arg === '--help' || arg === '-h') return { kind: 'help' };
    if (arg === '--version') return { kind: 'version' };
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    if (!(VALUE_FLAGS as readonly string[]).includes(name)) return { kind: 'error', message: `unknown option ${JSON.stringify(arg)}` };
    const value = eq === -1 ? argv[(index += 1)] : arg.slice(eq + 1);
    if (value === undefined || value === '') return { kind: 'error', message: `${name} needs a value` };
    if (values.has(name as ValueFlag)) return { kind: 'error', message: `${name} given twice` };
    values.set(name as ValueFlag, value);
  }
  const qmpPath = values.get('--qmp');
  const guestPath = values.get('--guest');
  if (qmpPath === undefined || guestPath === undefined) return { kind: 'error', message: '--qmp and --guest are required' };
  const pidText = values.get('--qemu-pid');
  const qemuPid = pidText === undefined ? undefined : Number(pidText);
  if (qemuPid !== undefined && !(Number.isSafeInteger(qemuPid) && qemuPid > 0 && /^\d+$/.test(pidText ?? ''))) {
    return { kind: 'error', message: `--qemu-pid expects a positive integer, received ${JSON.stringify(pidText)}` };
  }
  return {
    kind: 'run',
    flags: { qmpPath, guestPath, cachePath: values.get('--cache'), configPath: values.get('--config'), policyDir: values.get('--policy-dir'), qemuPid },
  };
}
