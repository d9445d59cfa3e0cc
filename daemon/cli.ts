// Command-line flags of hostinfod, parsed without side effects so tests can cover them.

import { parseFlagValues } from '../common/flags.js';

export const MIN_INTERVAL_SECONDS = 0.01;
export const MAX_INTERVAL_SECONDS = 3600;

export const USAGE = `Usage: hostinfod [--config FILE] [--runtime-dir DIR] [--interval SECONDS] [--log-file]
                 [--foreground] [--help] [--version]

The hostinfo host daemon: samples host statistics once per interval, adopts every VM registered
under <runtime_dir>/vms/ (hostinfo-qemu registers them), runs one unprivileged hostinfo-sidecar
per VM and sends it the host data its VM's policy allows. No TCP listener exists.

  --config FILE        host config (default: $HOSTINFO_CONFIG, else /etc/hostinfo/hostinfo.toml)
  --runtime-dir DIR    runtime directory (default: $HOSTINFO_RUNTIME_DIR, else runtime_dir of the config)
  --interval SECONDS   seconds between samples, ${MIN_INTERVAL_SECONDS} to ${MAX_INTERVAL_SECONDS} (default: [cache] interval, 1.0)
  --log-file           log to <runtime_dir>/logs/hostinfod.log instead of stderr (hostinfo-qemu
                       starts it so when no daemon runs)
  --foreground         accepted for clarity and has no effect: hostinfod never daemonizes itself
  --help, --version

Logs are JSON lines. SIGHUP: re-read the host config, every VM's policy and the static inventory.
SIGTERM or SIGINT: stop the sidecars, close the control socket, exit 0; running VMs keep their
runtime directories and are adopted again by the next hostinfod.
Exit status: 0 stopped by signal, 1 error, 2 bad flags, 3 another hostinfod already serves the runtime directory.
`;

export interface DaemonFlags {
  readonly configPath: string | undefined;
  readonly runtimeDir: string | undefined;
  readonly intervalSeconds: number | undefined;
  readonly logFile: boolean;
}

export type ParsedFlags = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; flags: DaemonFlags } | { kind: 'error'; message: string };

export function parseFlags(argv: readonly string[]): ParsedFlags {
  const parsed = parseFlagValues(argv, {
    config: { type: 'string' },
    'runtime-dir': { type: 'string' },
    interval: { type: 'string' },
    'log-file': { type: 'boolean' },
    foreground: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean' },
  });
  if (!parsed.ok) return { kind: 'error', message: parsed.message };
  const { values } = parsed;
  if (values.help === true) return { kind: 'help' };
  if (values.version === true) return { kind: 'version' };
  for (const name of ['config', 'runtime-dir'] as const) {
    if (values[name] === '') return { kind: 'error', message: `--${name} needs a path` };
  }
  let intervalSeconds: number | undefined;
  if (values.interval !== undefined) {
    // Decimal seconds only: Number() would also take "0x10" or "1e3".
    intervalSeconds = /^\d+(\.\d+)?$/.test(values.interval) ? Number(values.interval) : NaN;
    if (!(intervalSeconds >= MIN_INTERVAL_SECONDS && intervalSeconds <= MAX_INTERVAL_SECONDS)) {
      return { kind: 'error', message: `--interval needs seconds between ${MIN_INTERVAL_SECONDS} and ${MAX_INTERVAL_SECONDS}, got ${JSON.stringify(values.interval)}` };
    }
  }
  return { kind: 'run', flags: { configPath: values.config, runtimeDir: values['runtime-dir'], intervalSeconds, logFile: values['log-file'] === true } };
}
