// Runs bin/hostinfo-ctl against a test site, as the installed command is run.

import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Site } from '../helpers/served-vm.js';

export const CTL = fileURLToPath(new URL('../../../bin/hostinfo-ctl', import.meta.url));

export function ctl(site: Site, args: readonly string[], input?: string): SpawnSyncReturns<string> {
  return spawnSync(CTL, ['--config', site.config, ...args], { encoding: 'utf8', input, timeout: 30_000, env: { ...process.env, HOSTINFO_NODE: process.execPath } });
}
