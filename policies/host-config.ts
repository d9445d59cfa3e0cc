// The host-wide configuration, hostinfo.toml: the administrator's master switch, where policies
// and runtime sockets live, and how often hostinfod samples. Precedence, lowest first: built-in
// defaults, the file, HOSTINFO_* environment variables, command-line overrides.

import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { ConfigError } from './config-error.js';
import { TableReader } from './table-reader.js';
import { parseTomlDocument } from './toml-file.js';

export const DEFAULT_CONFIG_PATH = '/etc/hostinfo/hostinfo.toml';
export const DEFAULT_POLICY_DIR = '/etc/hostinfo/policies';
export const DEFAULT_CACHE_INTERVAL_SECONDS = 1.0;
export const DEFAULT_MAX_AGE_SECONDS = 5.0;
/** The unprivileged user sidecars of root-run VMs run as (created by .ci/setup / the install step). */
export const DEFAULT_SIDECAR_USER = 'hostinfo';
/**
 * What one guest may send per second, whatever it is (requests, echoes, junk): past it the rest of
 * the read is dropped and its port is not read until the second is over. 100 lines/s is 100 times
 * the default policy's rate, so an honest guest never meets it.
 */
export const DEFAULT_GUEST_LINES_PER_SECOND = 100;
export const DEFAULT_GUEST_BYTES_PER_SECOND = 16_384;

export interface HostConfig {
  /** The file the settings came from; undefined when none existed at the default path. */
  readonly file: string | undefined;
  /** Host-wide switch: nothing is served to any guest unless this is true. */
  readonly enabled: boolean;
  readonly policyDir: string;
  readonly runtimeDir: string;
  /**
   * Group whose members may register VMs (enter the runtime directory, 0750, and add their own
   * directory to the sticky vms/, 1770); undefined keeps everything owner-only.
   */
  readonly group: string | undefined;
  /**
   * Group whose members may use the control socket (hostinfo-ctl) besides the daemon's user: the
   * socket is 0660 of this group. Optional in the type so hand-built configs need not name it.
   */
  readonly adminGroup?: string | undefined;
  readonly cache: { readonly intervalSeconds: number; readonly maxAgeSeconds: number };
  /** Sidecars of VMs whose runtime directory root owns run as this user, never as root. */
  readonly sidecarUser: string;
  readonly guest: { readonly linesPerSecond: number; readonly bytesPerSecond: number };
  /** node_exporter textfile (a *.prom path) rewritten after every sample; undefined: off. */
  readonly metrics: { readonly textfile: string | undefined };
  /**
   * `[vhostmd] enabled`: VMs the launcher starts get a second port, vhostmd's (SAP's
   * vm-dump-metrics). Optional in the type so hand-built configs need not name it: absent is off.
   */
  readonly vhostmd?: { readonly enabled: boolean };
}

export interface ConfigEnvironment {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Effective uid: root gets /run/hostinfo, anyone else their XDG runtime directory. */
  readonly uid: number;
  readonly cwd: string;
}

export interface ConfigOverrides {
  readonly configPath?: string | undefined;
  readonly policyDir?: string | undefined;
  readonly runtimeDir?: string | undefined;
}

const TOP_LEVEL_KEYS = ['enabled', 'policy_dir', 'runtime_dir', 'group', 'admin_group', 'sidecar_user', 'cache', 'guest', 'metrics', 'vhostmd'] as const;
const CACHE_KEYS = ['interval', 'max_age'] as const;
const GUEST_KEYS = ['lines_per_second', 'bytes_per_second'] as const;
const METRICS_KEYS = ['textfile'] as const;
const VHOSTMD_KEYS = ['enabled'] as const;

export function defaultRuntimeDir(environment: ConfigEnvironment): string {
  if (environment.uid === 0) return '/run/hostinfo';
  const xdg = environment.env['XDG_RUNTIME_DIR'];
  if (xdg === undefined || xdg === '') {
    throw new ConfigError('CONFIG_RANGE', {
      file: '(environment)',
      key: 'XDG_RUNTIME_DIR',
      expected: 'a per-user runtime directory, or runtime_dir in hostinfo.toml, or HOSTINFO_RUNTIME_DIR',
      received: 'unset',
    }, 'no runtime directory for a non-root user');
  }
  return resolve(xdg, 'hostinfo');
}

/** What hostinfo.toml itself says; paths still unset fall back later in loadHostConfig. */
export interface HostConfigFileSettings {
  readonly enabled: boolean;
  readonly policyDir: string | undefined;
  readonly runtimeDir: string | undefined;
  readonly group: string | undefined;
  readonly adminGroup: string | undefined;
  readonly cache: HostConfig['cache'];
  readonly sidecarUser: string;
  readonly guest: HostConfig['guest'];
  readonly metrics: HostConfig['metrics'];
  readonly vhostmd: { readonly enabled: boolean };
}

/** Parses hostinfo.toml text. Relative paths in it are relative to the file's own directory. */
export function parseHostConfig(text: string, file: string): HostConfigFileSettings {
  const top = new TableReader(parseTomlDocument(text, file), text, file);
  top.rejectUnknownKeys(TOP_LEVEL_KEYS);
  const cache = top.subTable('cache');
  cache?.rejectUnknownKeys(CACHE_KEYS);
  const intervalSeconds = cache?.positiveSeconds('interval', DEFAULT_CACHE_INTERVAL_SECONDS) ?? DEFAULT_CACHE_INTERVAL_SECONDS;
  const maxAgeSeconds = cache?.positiveSeconds('max_age', DEFAULT_MAX_AGE_SECONDS) ?? DEFAULT_MAX_AGE_SECONDS;
  if (cache !== undefined && maxAgeSeconds < intervalSeconds) {
    // Otherwise every sample would already be stale before the next one arrives.
    throw cache.error('CONFIG_RANGE', 'max_age', `at least cache.interval (${intervalSeconds})`, String(maxAgeSeconds));
  }
  const guest = top.subTable('guest');
  guest?.rejectUnknownKeys(GUEST_KEYS);
  const base = dirname(resolve(file));
  const metrics = top.subTable('metrics');
  metrics?.rejectUnknownKeys(METRICS_KEYS);
  const vhostmd = top.subTable('vhostmd');
  vhostmd?.rejectUnknownKeys(VHOSTMD_KEYS);
  return {
    enabled: top.boolean('enabled', false),
    policyDir: top.has('policy_dir') ? resolve(base, top.string('policy_dir', '')) : undefined,
    runtimeDir: top.has('runtime_dir') ? resolve(base, top.string('runtime_dir', '')) : undefined,
    group: top.has('group') ? top.string('group', '') : undefined,
    adminGroup: top.has('admin_group') ? top.string('admin_group', '') : undefined,
    cache: { intervalSeconds, maxAgeSeconds },
    sidecarUser: top.has('sidecar_user') ? top.string('sidecar_user', DEFAULT_SIDECAR_USER) : DEFAULT_SIDECAR_USER,
    guest: {
      linesPerSecond: guest?.integerAtLeast('lines_per_second', 1, DEFAULT_GUEST_LINES_PER_SECOND) ?? DEFAULT_GUEST_LINES_PER_SECOND,
      bytesPerSecond: guest?.integerAtLeast('bytes_per_second', 256, DEFAULT_GUEST_BYTES_PER_SECOND) ?? DEFAULT_GUEST_BYTES_PER_SECOND,
    },
    metrics: { textfile: metrics === undefined ? undefined : textfilePath(metrics, base) },
    vhostmd: { enabled: vhostmd?.boolean('enabled', false) ?? false },
  };
}

/** `[metrics] textfile`: node_exporter reads *.prom only, so any other name would be written every interval for nobody. */
function textfilePath(metrics: TableReader, base: string): string | undefined {
  if (!metrics.has('textfile')) return undefined;
  const written = metrics.string('textfile', '');
  if (!written.endsWith('.prom') || basename(written) === '.prom') {
    throw metrics.error('CONFIG_RANGE', 'textfile', 'a file name ending in .prom (node_exporter reads only those)', JSON.stringify(written));
  }
  return resolve(base, written);
}

/** Built-in settings when no config file exists: everything off. */
const NO_FILE_SETTINGS: HostConfigFileSettings = {
  enabled: false,
  policyDir: undefined,
  runtimeDir: undefined,
  group: undefined,
  adminGroup: undefined,
  cache: { intervalSeconds: DEFAULT_CACHE_INTERVAL_SECONDS, maxAgeSeconds: DEFAULT_MAX_AGE_SECONDS },
  sidecarUser: DEFAULT_SIDECAR_USER,
  guest: { linesPerSecond: DEFAULT_GUEST_LINES_PER_SECOND, bytesPerSecond: DEFAULT_GUEST_BYTES_PER_SECOND },
  metrics: { textfile: undefined },
  vhostmd: { enabled: false },
};

/**
 * Loads the effective host config. A file named explicitly (flag or HOSTINFO_CONFIG) must exist;
 * a missing file at the default path means "not set up", which is the disabled default.
 */
export async function loadHostConfig(overrides: ConfigOverrides, environment: ConfigEnvironment): Promise<HostConfig> {
  const named = overrides.configPath ?? nonEmpty(environment.env['HOSTINFO_CONFIG']);
  const file = resolve(environment.cwd, named ?? DEFAULT_CONFIG_PATH);
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (named !== undefined || code !== 'ENOENT') {
      throw new ConfigError('CONFIG_READ', { file, expected: 'a readable file', received: code ?? String(error) }, 'cannot read config');
    }
  }
  const settings = text === undefined ? NO_FILE_SETTINGS : parseHostConfig(text, file);
  const fromEnvironment = (value: string | undefined): string | undefined =>
    value === undefined ? undefined : resolve(environment.cwd, value);
  const policyDir = fromEnvironment(overrides.policyDir ?? nonEmpty(environment.env['HOSTINFO_POLICY_DIR'])) ??
    settings.policyDir ?? DEFAULT_POLICY_DIR;
  const runtimeDir = fromEnvironment(overrides.runtimeDir ?? nonEmpty(environment.env['HOSTINFO_RUNTIME_DIR'])) ??
    settings.runtimeDir ?? defaultRuntimeDir(environment);
  return {
    file: text === undefined ? undefined : file,
    enabled: settings.enabled,
    policyDir,
    runtimeDir,
    group: settings.group,
    adminGroup: settings.adminGroup,
    cache: settings.cache,
    sidecarUser: settings.sidecarUser,
    guest: settings.guest,
    metrics: settings.metrics,
    vhostmd: settings.vhostmd,
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
