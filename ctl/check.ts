// hostinfo-ctl check: the host config and the policies validated by the daemon's own parsers
// (loadHostConfig/parseHostConfig, parseVmPolicy, the group lookup), so a file passes here exactly
// when the daemon would take it. Reads files only: no socket, no runtime directory.

import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { configGroupIds } from '../daemon/group.js';
import { ConfigError } from '../policies/config-error.js';
import { DEFAULT_CONFIG_PATH, loadHostConfig, type ConfigEnvironment, type HostConfig } from '../policies/host-config.js';
import { safeNameStem, safeUuidStem } from '../policies/policy-lookup.js';
import { parseVmPolicy } from '../policies/vm-policy.js';
import type { Location } from './cli.js';

export type CheckedKind = 'host config' | 'policy';

export interface CheckReport {
  /** Every file read, in the order checked. */
  readonly files: readonly { readonly file: string; readonly kind: CheckedKind; readonly valid: boolean }[];
  readonly errors: readonly ConfigError[];
  /** Not errors: what an administrator may still want to know (no config file, unused names). */
  readonly notes: readonly string[];
}

/** A policy directory is a handful of files; more than this is not one. */
export const MAX_POLICY_FILES = 10_000;

/** The host config file the daemon would read: --config, else $HOSTINFO_CONFIG, else the default. */
export function configPathOf(location: Location, environment: ConfigEnvironment): string {
  const fromEnvironment = environment.env['HOSTINFO_CONFIG'];
  return resolve(environment.cwd, location.configPath ?? (fromEnvironment === undefined || fromEnvironment === '' ? DEFAULT_CONFIG_PATH : fromEnvironment));
}

class Report {
  readonly files: { file: string; kind: CheckedKind; valid: boolean }[] = [];
  readonly errors: ConfigError[] = [];
  readonly notes: string[] = [];

  add(file: string, kind: CheckedKind, error: ConfigError | undefined): void {
    this.files.push({ file, kind, valid: error === undefined });
    if (error !== undefined) this.errors.push(error);
  }

  /** An error found after `file` was counted (its policy_dir): the file is invalid after all. */
  fail(file: string, error: ConfigError): void {
    for (const entry of this.files) if (entry.file === file) entry.valid = false;
    this.errors.push(error);
  }
}

const asConfigError = (error: unknown): ConfigError => {
  if (error instanceof ConfigError) return error;
  throw error;
};

/**
 * The host config as the daemon loads it, its groups resolved as the daemon does at start. The
 * runtime directory is given so that a user without XDG_RUNTIME_DIR can check too: check uses none.
 */
async function checkHostConfig(location: Location, environment: ConfigEnvironment, report: Report): Promise<HostConfig | undefined> {
  let config: HostConfig;
  try {
    config = await loadHostConfig({ configPath: location.configPath, runtimeDir: location.runtimeDir ?? '/' }, environment);
  } catch (error) {
    const problem = asConfigError(error);
    report.add(problem.file, 'host config', problem);
    return undefined;
  }
  if (config.file === undefined) {
    report.notes.push(`no host config at ${configPathOf(location, environment)}: built-in defaults, nothing is served`);
    return config;
  }
  let groupError: ConfigError | undefined;
  try {
    configGroupIds(config);
  } catch (error) {
    groupError = asConfigError(error);
  }
  report.add(config.file, 'host config', groupError);
  return config;
}

/** Read as findVmPolicy reads a candidate (any read failure is an error there too), then parsed. */
async function checkPolicy(file: string, report: Report): Promise<void> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    report.add(file, 'policy', new ConfigError('CONFIG_READ', { file, expected: 'a readable file', received: code ?? String(error) }, 'cannot read policy'));
    return;
  }
  try {
    parseVmPolicy(text, file);
    report.add(file, 'policy', undefined);
  } catch (error) {
    report.add(file, 'policy', asConfigError(error));
  }
}

/** A stem the lookup can ever produce: default, a VM name of the safe shape, or a lower-case uuid. */
const reachable = (stem: string): boolean => stem === 'default' || safeNameStem(stem) !== undefined || safeUuidStem(stem) === stem;

async function checkPolicyDir(config: HostConfig, report: Report): Promise<void> {
  let names: string[];
  try {
    names = (await readdir(config.policyDir)).filter((name) => name.endsWith('.toml')).sort();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    // Without a config file nothing is set up, and a missing default directory is no surprise.
    if (config.file === undefined) report.notes.push(`no policy directory ${config.policyDir} (${code})`);
    else report.fail(config.file, new ConfigError('CONFIG_READ', { file: config.file, key: 'policy_dir', expected: 'a readable directory of policies', received: `${config.policyDir}: ${code}` }, 'cannot list the policy directory'));
    return;
  }
  if (names.length > MAX_POLICY_FILES) {
    report.notes.push(`${config.policyDir} holds ${names.length} *.toml files; only the first ${MAX_POLICY_FILES} were checked`);
    names = names.slice(0, MAX_POLICY_FILES);
  }
  if (names.length === 0) report.notes.push(`no policy in ${config.policyDir}: no VM is served`);
  for (const name of names) {
    const file = join(config.policyDir, name);
    // The lookup reads <stem>.toml by name only, so a directory there just fails its read too.
    if (await stat(file).then((found) => found.isDirectory(), () => false)) {
      report.notes.push(`${file} is a directory, not a policy`);
      continue;
    }
    await checkPolicy(file, report);
    const stem = name.slice(0, -'.toml'.length);
    if (!reachable(stem)) report.notes.push(`${file} is never used: "${stem}" is not a VM name, uuid or "default" the lookup tries`);
  }
}

const sameFile = async (a: string, b: string): Promise<boolean> =>
  a === b || ((await realpath(a).catch(() => a)) === (await realpath(b).catch(() => b)));

/**
 * Without FILEs: the host config and every policy in its policy_dir (not checked when the config
 * itself is invalid: which directory it means is then unknown). With FILEs: each one alone, as the
 * host config if it is the config file the daemon would read, else as a policy.
 */
export async function checkFiles(location: Location, environment: ConfigEnvironment, files: readonly string[]): Promise<CheckReport> {
  const report = new Report();
  if (files.length === 0) {
    const config = await checkHostConfig(location, environment, report);
    if (config === undefined) report.notes.push('policies not checked: the host config must be valid first');
    else await checkPolicyDir(config, report);
    return report;
  }
  const configPath = configPathOf(location, environment);
  for (const named of files) {
    const file = resolve(environment.cwd, named);
    if (await sameFile(file, configPath)) await checkHostConfig({ ...location, configPath: file }, environment, report);
    else await checkPolicy(file, report);
  }
  return report;
}

const plural = (count: number, word: string): string => `${count} ${word}${count === 1 ? '' : 's'}`;

export function checkText(report: CheckReport): string {
  const lines = [...report.errors.map((error) => error.message), ...report.notes.map((note) => `note: ${note}`)];
  lines.push(`${plural(report.files.length, 'file')} checked, ${plural(report.errors.length, 'error')}`);
  return `${lines.join('\n')}\n`;
}

/** --json: stable keys; each error with its parts as ConfigError carries them. */
export function checkJson(report: CheckReport): object {
  return {
    ok: report.errors.length === 0,
    files: report.files,
    errors: report.errors.map((error) => ({
      code: error.code, file: error.file, line: error.line ?? null, key: error.key ?? null,
      expected: error.expected ?? null, received: error.received ?? null, message: error.message,
    })),
    notes: report.notes,
  };
}
