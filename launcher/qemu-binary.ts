// Which QEMU to run: --qemu, else $HOSTINFO_QEMU, else the usual names in the order distributions
// install them (RHEL's qemu-kvm first, then Debian's qemu-system-x86_64).

import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export const QEMU_CANDIDATES = ['qemu-kvm', '/usr/libexec/qemu-kvm', 'qemu-system-x86_64'] as const;

export type QemuBinary = { readonly found: true; readonly path: string } | { readonly found: false; readonly tried: readonly string[] };

function executable(path: string): boolean {
  try {
    // A directory passes the X_OK check too.
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Resolves a name the way a shell would: a path with a slash as is, a bare name along PATH. */
function resolveOnPath(name: string, pathVariable: string): string | undefined {
  if (name.includes('/')) return executable(name) ? name : undefined;
  for (const dir of pathVariable.split(delimiter)) {
    if (dir === '' || !isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

export function findQemu(explicit: string | undefined, env: Readonly<Record<string, string | undefined>>): QemuBinary {
  const chosen = explicit ?? (env['HOSTINFO_QEMU'] || undefined);
  const candidates = chosen === undefined ? QEMU_CANDIDATES : [chosen];
  for (const candidate of candidates) {
    const path = resolveOnPath(candidate, env['PATH'] ?? '');
    if (path !== undefined) return { found: true, path };
  }
  return { found: false, tried: candidates };
}
