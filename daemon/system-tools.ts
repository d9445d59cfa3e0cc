// The few system programs the daemon runs (from util-linux and coreutils, present on every Debian
// host), found in fixed system directories: processes it starts get an empty environment, and a
// PATH from a caller must never choose what runs as root.

import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

const SYSTEM_DIRS = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'] as const;

export function systemTool(name: 'setpriv' | 'rm'): string {
  for (const dir of SYSTEM_DIRS) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not in this one
    }
  }
  throw new Error(`${name} not found in ${SYSTEM_DIRS.join(', ')} (it comes with ${name === 'setpriv' ? 'util-linux' : 'coreutils'})`);
}
