// Which QEMU to run: --qemu, else $HOSTINFO_QEMU, else the usual names in the order distributions
// install them (RHEL's qemu-kvm first, then Debian's qemu-system-x86_64).
// hostinfo-kvm stands in for QEMU itself (first on PATH as `kvm`, or libvirt's <emulator>): it
// looks for the name it was called by too, and skips every candidate that is itself (the script,
// or a symlink to it), so it never execs itself.

import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export const QEMU_CANDIDATES = ['qemu-kvm', '/usr/libexec/qemu-kvm', 'qemu-system-x86_64'] as const;

export type QemuBinary = { readonly found: true; readonly path: string } | { readonly found: false; readonly tried: readonly string[] };

export interface FindQemuOptions {
  /** Real paths that are not QEMU (hostinfo-kvm's own script): candidates resolving to one are skipped. */
  readonly skip?: readonly string[];
  /** Names to try before the usual ones (hostinfo-kvm: the name it was called by, e.g. `kvm`). */
  readonly firstCandidates?: readonly string[];
}

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

function realpathOf(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Resolves a name the way a shell would: a path with a slash as is, a bare name along PATH; but
 * past any match that is in `skip` (a shell would stop at the first).
 */
function resolveOnPath(name: string, pathVariable: string, skip: ReadonlySet<string>): string | undefined {
  const usable = (candidate: string): boolean => {
    if (!executable(candidate)) return false;
    if (skip.size === 0) return true;
    const real = realpathOf(candidate);
    return real !== undefined && !skip.has(real);
  };
  if (name.includes('/')) return usable(name) ? name : undefined;
  for (const dir of pathVariable.split(delimiter)) {
    if (dir === '' || !isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    if (usable(candidate)) return candidate;
  }
  return undefined;
}

export function findQemu(explicit: string | undefined, env: Readonly<Record<string, string | undefined>>, options: FindQemuOptions = {}): QemuBinary {
  const chosen = explicit ?? (env['HOSTINFO_QEMU'] || undefined);
  const usual: string[] = [...(options.firstCandidates ?? [])];
  for (const name of QEMU_CANDIDATES) if (!usual.includes(name)) usual.push(name);
  const candidates = chosen === undefined ? usual : [chosen];
  const skip = new Set((options.skip ?? []).map((path) => realpathOf(path) ?? path));
  for (const candidate of candidates) {
    const path = resolveOnPath(candidate, env['PATH'] ?? '', skip);
    if (path !== undefined) return { found: true, path };
  }
  return { found: false, tried: candidates };
}
