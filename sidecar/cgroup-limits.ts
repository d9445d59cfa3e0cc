// cpulimit and memlimit: the CPU quota and memory limit of QEMU's cgroup, read from the kernel's
// files (all world-readable, so `sidecar_user` reads root's VMs too). QEMU's cgroup per hierarchy
// comes from /proc/<pid>/cgroup (`<id>:<controllers>:<path>`); the limit that binds is the
// tightest one from that cgroup up to the root (libvirt and systemd put it on the VM's scope or
// on a parent slice, QEMU's own process may sit in a child such as libvirt's `emulator`).
// Per-vCPU-thread cgroups (libvirt's vcpuN) are not seen: they hold threads, not the process.
//
//   cgroup v2 (line `0::<path>`, mounted at <root>, or <root>/unified beside v1):
//     cpu.max "<quota|max> <period>", memory.max "<bytes|max>"
//   cgroup v1 (a line naming the controller, mounted at <root>/<controllers>, e.g. cpu,cpuacct):
//     cpu.cfs_quota_us (-1: none) / cpu.cfs_period_us, memory.limit_in_bytes (a huge number: none)
//
// `none` means no cgroup on the way limits it; unavailable means the files could not be found or
// read (no cgroup file system here, QEMU outside this sidecar's cgroup namespace, ...).

import { statSync } from 'node:fs';
import { readSmallFile } from '../common/small-file.js';

export interface CgroupRoots {
  /** Default /proc. */
  readonly proc: string;
  /** Where the hierarchies are mounted; default /sys/fs/cgroup. */
  readonly cgroup: string;
}

export const SYSTEM_CGROUP_ROOTS: CgroupRoots = { proc: '/proc', cgroup: '/sys/fs/cgroup' };

/** A limit (null: none) or why it cannot be told. */
export type LimitReading = { readonly limit: number | null } | { readonly why: string };

export interface CgroupLimits {
  /** In CPUs (quota / period). */
  readonly cpus: LimitReading;
  /** In kB. */
  readonly memoryKb: LimitReading;
}

/** /proc/<pid>/cgroup has one short line per hierarchy; limit files hold one number or two. */
const MAX_CGROUP_LIST_BYTES = 64 * 1024;
const MAX_LIMIT_BYTES = 256;
/** Deeper trees than this are not walked (systemd's are a handful of levels). */
const MAX_DEPTH = 64;
/**
 * v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes (9223372036854771712 on 64-bit
 * kernels); no machine has an exbibyte of RAM, so anything from 2^60 up means none.
 */
const V1_UNLIMITED_BYTES = 2 ** 60;

interface Membership {
  readonly id: string;
  readonly controllers: readonly string[];
  readonly path: string;
}

export function parseCgroupList(text: string): Membership[] {
  const memberships: Membership[] = [];
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first <= 0 || second === -1) continue;
    const controllers = line.slice(first + 1, second);
    memberships.push({ id: line.slice(0, first), controllers: controllers === '' ? [] : controllers.split(','), path: line.slice(second + 1) });
  }
  return memberships;
}

/** The cgroup and its ancestors, leaf first, as paths relative to the hierarchy's root. */
function levels(path: string): string[] | undefined {
  // "/.." leads a path when QEMU is outside the reader's cgroup namespace: not ours to resolve.
  const parts = path.split('/').filter((part) => part !== '');
  if (!path.startsWith('/') || parts.some((part) => part === '.' || part === '..') || parts.length > MAX_DEPTH) return undefined;
  return parts.map((_, index) => parts.slice(0, parts.length - index).join('/')).concat('');
}

type Read = string | undefined | Error;
/** A file's text, undefined when absent, or the error (a read may fail after the open). */
function readBounded(path: string, maxBytes: number): Read {
  try {
    return readSmallFile(path, maxBytes);
  } catch (error) {
    return error as Error;
  }
}
const readLimit = (path: string): Read => readBounded(path, MAX_LIMIT_BYTES);
const isDirectory = (path: string): boolean => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
};

interface Hierarchy {
  readonly mount: string;
  readonly version: 1 | 2;
  readonly path: string;
}

/** Where `controller` of QEMU's cgroup lives; undefined when no mounted hierarchy has it. */
function hierarchyOf(memberships: readonly Membership[], controller: string, root: string): Hierarchy | undefined {
  const v1 = memberships.find((m) => m.id !== '0' && m.controllers.includes(controller));
  if (v1 !== undefined) {
    // systemd and cgroupfs-mount name each v1 mount after its controllers (cpu,cpuacct), with
    // per-controller symlinks (cpu) to it.
    const mount = [`${root}/${v1.controllers.join(',')}`, `${root}/${controller}`].find(isDirectory);
    return mount === undefined ? undefined : { mount, version: 1, path: v1.path };
  }
  const v2 = memberships.find((m) => m.id === '0' && m.controllers.length === 0);
  if (v2 === undefined) return undefined;
  const mount = [root, `${root}/unified`].find((dir) => typeof readLimit(`${dir}/cgroup.controllers`) === 'string');
  return mount === undefined ? undefined : { mount, version: 2, path: v2.path };
}

/** One level's limit: a number, null (none at this level), or why the file cannot be read. */
type LevelLimit = number | null | { readonly why: string };

function v2Cpu(dir: string): LevelLimit {
  const text = readLimit(`${dir}/cpu.max`);
  if (typeof text !== 'string') return text instanceof Error ? { why: text.message } : null;
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === 'max') return null;
  return ratio(Number(quota), Number(period), `${dir}/cpu.max`);
}

function v1Cpu(dir: string): LevelLimit {
  const quota = readLimit(`${dir}/cpu.cfs_quota_us`);
  const period = readLimit(`${dir}/cpu.cfs_period_us`);
  if (quota instanceof Error || period instanceof Error) return { why: (quota instanceof Error ? quota : period as Error).message };
  if (quota === undefined || period === undefined) return null;
  if (Number(quota) === -1) return null;
  return ratio(Number(quota), Number(period), `${dir}/cpu.cfs_quota_us`);
}

function ratio(quota: number, period: number, file: string): LevelLimit {
  return Number.isSafeInteger(quota) && Number.isSafeInteger(period) && quota > 0 && period > 0 ? quota / period : { why: `${file} does not hold a quota and period` };
}

function bytesLimit(dir: string, file: string, unlimited: (text: string, bytes: number) => boolean): LevelLimit {
  const text = readLimit(`${dir}/${file}`);
  if (typeof text !== 'string') return text instanceof Error ? { why: text.message } : null;
  const bytes = Number(text.trim());
  if (unlimited(text.trim(), bytes)) return null;
  return Number.isFinite(bytes) && bytes >= 0 ? Math.floor(bytes / 1024) : { why: `${dir}/${file} does not hold a byte count` };
}

const LEVEL_READERS = {
  cpu: { 1: v1Cpu, 2: v2Cpu },
  memory: {
    1: (dir: string) => bytesLimit(dir, 'memory.limit_in_bytes', (_, bytes) => bytes >= V1_UNLIMITED_BYTES),
    2: (dir: string) => bytesLimit(dir, 'memory.max', (text) => text === 'max'),
  },
} as const;

function tightest(memberships: readonly Membership[], controller: keyof typeof LEVEL_READERS, root: string): LimitReading {
  const hierarchy = hierarchyOf(memberships, controller, root);
  if (hierarchy === undefined) return { why: `no cgroup hierarchy with the ${controller} controller under ${root}` };
  const chain = levels(hierarchy.path);
  if (chain === undefined) return { why: `QEMU's cgroup ${JSON.stringify(hierarchy.path)} is outside this sidecar's view` };
  const leaf = `${hierarchy.mount}/${chain[0]}`;
  if (!isDirectory(leaf)) return { why: `QEMU's cgroup ${leaf} is not there` };
  let limit: number | null = null;
  for (const level of chain) {
    const found = LEVEL_READERS[controller][hierarchy.version](level === '' ? hierarchy.mount : `${hierarchy.mount}/${level}`);
    if (found !== null && typeof found === 'object') return found;
    if (found !== null) limit = limit === null ? found : Math.min(limit, found);
  }
  return { limit };
}

/** The limits binding QEMU process `pid` now. */
export function readCgroupLimits(pid: number, roots: CgroupRoots = SYSTEM_CGROUP_ROOTS): CgroupLimits {
  const list = readBounded(`${roots.proc}/${pid}/cgroup`, MAX_CGROUP_LIST_BYTES);
  if (typeof list !== 'string') {
    const why = `cannot read ${roots.proc}/${pid}/cgroup${list instanceof Error ? `: ${list.message}` : ''}`;
    return { cpus: { why }, memoryKb: { why } };
  }
  const memberships = parseCgroupList(list);
  return { cpus: tightest(memberships, 'cpu', roots.cgroup), memoryKb: tightest(memberships, 'memory', roots.cgroup) };
}
