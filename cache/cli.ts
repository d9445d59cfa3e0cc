// Command-line flags of hostinfo-cache, parsed without side effects so tests can cover them.

export const MIN_INTERVAL_SECONDS = 0.01;
export const MAX_INTERVAL_SECONDS = 3600;

export const USAGE = `Usage: hostinfo-cache [--config FILE] [--socket PATH] [--interval SECONDS] [--foreground] [--help]

Samples host statistics once per interval and pushes them to the hostinfo sidecars of the VMs
on this host over a WebSocket on a unix socket (there is no TCP listener).

  --config FILE        host config (default: $HOSTINFO_CONFIG, else /etc/hostinfo/hostinfo.toml)
  --socket PATH        socket to serve (default: <runtime_dir>/cache.sock from the host config)
  --interval SECONDS   seconds between samples, ${MIN_INTERVAL_SECONDS} to ${MAX_INTERVAL_SECONDS} (default: [cache] interval, 1.0)
  --foreground         accepted for clarity and has no effect: hostinfo-cache always runs in the
                       foreground and never daemonizes itself; the launcher or a service manager
                       runs it in the background
  --help               print this and exit

Logs are JSON lines on stderr. SIGTERM or SIGINT: close clients, remove the socket, exit 0.
SIGHUP: re-read the static inventory (CPU model, cores, sockets, MHz, hostname, kernel).
Exit status: 0 stopped by signal, 1 error, 2 bad flags, 3 another hostinfo-cache already serves the socket.
`;

export interface CacheFlags {
  readonly configPath?: string;
  readonly socketPath?: string;
  readonly intervalSeconds?: number;
}

export type ParsedFlags = { kind: 'help' } | { kind: 'run'; flags: CacheFlags } | { kind: 'error'; message: string };

export function parseFlags(argv: readonly string[]): ParsedFlags {
  const flags: { configPath?: string; socketPath?: string; intervalSeconds?: number } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const takeValue = (): string | undefined => {
      if (eq !== -1) return arg.slice(eq + 1);
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) return undefined;
      i++;
      return next;
    };
    switch (name) {
      case '--help':
      case '-h':
        return { kind: 'help' };
      case '--foreground':
        if (eq !== -1) return { kind: 'error', message: '--foreground takes no value' };
        break;
      case '--config':
      case '--socket': {
        const value = takeValue();
        if (value === undefined || value === '') return { kind: 'error', message: `${name} needs a path` };
        if (name === '--config') flags.configPath = value;
        else flags.socketPath = value;
        break;
      }
      case '--interval': {
        const value = takeValue();
        const seconds = value === undefined || value.trim() === '' ? NaN : Number(value);
        if (!(seconds >= MIN_INTERVAL_SECONDS && seconds <= MAX_INTERVAL_SECONDS)) {
          return { kind: 'error', message: `--interval needs seconds between ${MIN_INTERVAL_SECONDS} and ${MAX_INTERVAL_SECONDS}, got ${value === undefined ? 'nothing' : JSON.stringify(value)}` };
        }
        flags.intervalSeconds = seconds;
        break;
      }
      default:
        return { kind: 'error', message: `unknown argument ${JSON.stringify(arg)}` };
    }
  }
  return { kind: 'run', flags };
}
