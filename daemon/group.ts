// Group name → gid from /etc/group, without a native addon (node has no getgrnam). NSS sources
// such as LDAP are not consulted: the socket group is expected to be a local system group.

import { readFileSync } from 'node:fs';
import { ConfigError } from '../policies/config-error.js';
import type { HostConfig } from '../policies/host-config.js';
import { DaemonError } from './errors.js';

export const GROUP_FILE = '/etc/group';
/** /etc/group is small; a file beyond this is not one. */
export const MAX_GROUP_FILE_BYTES = 4 * 1024 * 1024;

/** `name:password:gid:members` lines; the first line naming the group wins, as in getgrnam. */
export function findGroupId(groupFileText: string, name: string): number | undefined {
  for (const line of groupFileText.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 3 || fields[0] !== name) continue;
    const gid = Number(fields[2]);
    return /^\d+$/.test(fields[2] ?? '') && Number.isSafeInteger(gid) ? gid : undefined;
  }
  return undefined;
}

/** A name from /etc/group, else a plain number taken as a gid. */
export function resolveGroup(name: string, file = GROUP_FILE): number {
  let text = '';
  try {
    const bytes = readFileSync(file);
    if (bytes.length <= MAX_GROUP_FILE_BYTES) text = bytes.toString('utf8');
  } catch {
    // Fall through: a numeric group still works without the file.
  }
  const gid = findGroupId(text, name) ?? (/^\d+$/.test(name) ? Number(name) : undefined);
  if (gid === undefined) throw new DaemonError('GROUP_UNKNOWN', `group "${name}" (from the host config) is not in ${file}`);
  return gid;
}

export interface ConfigGroupIds {
  /** `group`: who may register VMs. */
  readonly gid: number | undefined;
  /** `admin_group`: who may use the control socket. */
  readonly adminGid: number | undefined;
}

/**
 * The host config's groups as gids, for the daemon's start and `hostinfo-ctl check` alike: a
 * group that does not exist is a ConfigError naming the file and key, like any other bad value.
 */
export function configGroupIds(config: Pick<HostConfig, 'file' | 'group' | 'adminGroup'>, file = GROUP_FILE): ConfigGroupIds {
  const resolve = (key: 'group' | 'admin_group', name: string | undefined): number | undefined => {
    if (name === undefined) return undefined;
    try {
      return resolveGroup(name, file);
    } catch (error) {
      if (!(error instanceof DaemonError)) throw error;
      throw new ConfigError('CONFIG_RANGE', { file: config.file ?? '(no config file)', key, expected: `a group in ${file} or a numeric gid`, received: JSON.stringify(name) }, 'unknown group');
    }
  };
  return { gid: resolve('group', config.group), adminGid: resolve('admin_group', config.adminGroup) };
}
