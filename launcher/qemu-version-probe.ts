// Which QEMU version will run: `<qemu> -version`, the one question every QEMU answers the same way
// and at once (it prints and exits while parsing its arguments, before any machine exists). That
// costs ~11 ms (a fork and QEMU's start-up; measured on the 2-core machine for 7.2 and 10.0), of
// which the config loading and the daemon probe it overlaps hide only part. So the answer is kept
// per binary in the user's cache, ${XDG_CACHE_HOME:-~/.cache}/hostinfo-qemu/qemu-versions.json,
// beside the guest image cache, keyed by what a package upgrade or a rebuild changes (device,
// inode, size, mtime of the file the path leads to): a hit costs a stat and a small read.
// Only hostinfo-qemu uses the cache. hostinfo-kvm runs as a VM manager's user, whose home is not
// ours to write into, and a VM manager's start-up is not where 11 ms count.
//
// Nothing in the cache is trusted that this user did not write: the directories must be this
// user's and writable by nobody else, the file is opened without following a symlink, must be
// this user's and small. A wrong entry could at most change how a version-dependent option is
// read (qemu-versions.ts says how little that can do).

import { execFile } from 'node:child_process';
import { closeSync, constants, fstatSync, mkdirSync, openSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { checkTrustedDir } from '../common/runtime-tree.js';
import { parseQemuVersion, type QemuVersion } from './qemu-versions.js';

/** Far above the ~11 ms it takes; a QEMU that does not answer by then plans version-less. */
export const VERSION_TIMEOUT_MS = 2_000;
/** The answer is one line and a copyright: anything longer is not QEMU's. */
const MAX_OUTPUT_BYTES = 4_096;
export const VERSION_CACHE_FILE = 'qemu-versions.json';
const MAX_CACHE_BYTES = 16_384;
/** Binaries remembered; the least recently written go first. */
const MAX_CACHE_ENTRIES = 16;

/**
 * QEMU's version from `binary -version`; undefined when it cannot be read (no such binary, a
 * wrapper that prints something else, no answer in time). Never rejects: without a version the
 * planner reads the arguments as any QEMU would (qemu-versions.ts).
 */
export function probeQemuVersion(binary: string, timeoutMs = VERSION_TIMEOUT_MS): Promise<QemuVersion | undefined> {
  return new Promise((resolve) => {
    execFile(binary, ['-version'], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_OUTPUT_BYTES, encoding: 'latin1' }, (error, stdout) => {
      resolve(error === null ? parseQemuVersion(stdout) : undefined);
    });
  });
}

/** ${XDG_CACHE_HOME:-$HOME/.cache}/hostinfo-qemu; undefined when neither is an absolute path. */
export function versionCacheDir(env: Readonly<Record<string, string | undefined>>): string | undefined {
  const xdg = env['XDG_CACHE_HOME'];
  const home = env['HOME'];
  const base = xdg !== undefined && isAbsolute(xdg) ? xdg : home !== undefined && isAbsolute(home) ? join(home, '.cache') : undefined;
  return base === undefined ? undefined : join(base, 'hostinfo-qemu');
}

interface CacheEntry {
  /** dev:ino:size:mtimeNs of the file the binary's path leads to. */
  readonly key: string;
  readonly version: QemuVersion;
}

const euid = (): number => process.geteuid?.() ?? 0;

function fileKey(binary: string): string | undefined {
  try {
    const stat = statSync(binary, { bigint: true });
    return `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}`;
  } catch {
    return undefined;
  }
}

const isVersion = (value: unknown): value is QemuVersion =>
  typeof value === 'object' && value !== null && ['major', 'minor', 'micro'].every((part) => Number.isSafeInteger((value as Record<string, unknown>)[part]));

function readCache(dir: string): Map<string, CacheEntry> {
  const entries = new Map<string, CacheEntry>();
  let fd: number | undefined;
  try {
    checkTrustedDir(dir, [euid()]);
    fd = openSync(join(dir, VERSION_CACHE_FILE), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const stat = fstatSync(fd);
    if (!stat.isFile() || stat.uid !== euid() || (stat.mode & 0o022) !== 0 || stat.size > MAX_CACHE_BYTES) return entries;
    const buffer = Buffer.alloc(Number(stat.size));
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    const parsed = JSON.parse(buffer.subarray(0, length).toString('utf8')) as { v?: unknown; entries?: unknown };
    if (parsed.v !== 1 || typeof parsed.entries !== 'object' || parsed.entries === null) return entries;
    for (const [path, entry] of Object.entries(parsed.entries as Record<string, { key?: unknown; version?: unknown }>)) {
      if (typeof entry?.key === 'string' && isVersion(entry.version)) entries.set(path, { key: entry.key, version: entry.version });
    }
  } catch {
    // no cache yet, or one that is not ours: ask QEMU
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return entries;
}

/** Written whole and renamed into place; the cache's parent must already be this user's. */
function writeCache(dir: string, entries: Map<string, CacheEntry>): void {
  const temp = join(dir, `${VERSION_CACHE_FILE}.${process.pid}.tmp`);
  try {
    checkTrustedDir(dirname(dir), [euid()]);
    mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return;
  }
  try {
    checkTrustedDir(dir, [euid()]);
    const kept = [...entries].slice(-MAX_CACHE_ENTRIES);
    writeFileSync(temp, `${JSON.stringify({ v: 1, entries: Object.fromEntries(kept) })}\n`, { flag: 'wx', mode: 0o600 });
    renameSync(temp, join(dir, VERSION_CACHE_FILE));
  } catch {
    // a cache that cannot be written only costs the next launch a -version
  }
}

/**
 * The version of the QEMU at `binary`, from the cache in `cacheDir` when the file there is still
 * the one asked before, else from `-version` (and then remembered). `cacheDir` undefined: no cache.
 */
export async function qemuVersionOf(binary: string, cacheDir: string | undefined): Promise<QemuVersion | undefined> {
  const key = cacheDir === undefined ? undefined : fileKey(binary);
  const entries = key === undefined || cacheDir === undefined ? new Map<string, CacheEntry>() : readCache(cacheDir);
  const cached = entries.get(binary);
  if (cached !== undefined && cached.key === key) return cached.version;
  const version = await probeQemuVersion(binary);
  if (version !== undefined && key !== undefined && cacheDir !== undefined && fileKey(binary) === key) {
    entries.delete(binary);
    entries.set(binary, { key, version });
    writeCache(cacheDir, entries);
  }
  return version;
}
