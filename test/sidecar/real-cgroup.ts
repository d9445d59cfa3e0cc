// A real cgroup with a CPU quota and a memory limit, made by a test when the machine lets it
// (root, a writable cgroup file system with the cpu and memory controllers), and removed after.
// cgroup v2 when it has both controllers, else v1. The child is made below the test's own cgroup
// in each hierarchy (v2: below the root, the one cgroup exempt from the no-internal-processes
// rule), so what the machine accounts the test under still holds it.

import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = '/sys/fs/cgroup';

export interface Limits {
  readonly quotaUs: number;
  readonly periodUs: number;
  readonly memoryBytes: number;
}

export interface LimitedCgroup {
  readonly version: 1 | 2;
  /** The directories the limits were written in (one for v2; cpu and memory for v1). */
  readonly dirs: readonly string[];
  /** Moves a whole process (all its threads) into the cgroup. */
  add(pid: number): void;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

function ownCgroups(): Map<string, string> {
  const paths = new Map<string, string>();
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const [id, controllers, ...rest] = line.split(':');
    if (id === undefined || controllers === undefined || rest.length === 0) continue;
    paths.set(id === '0' ? '' : controllers, rest.join(':'));
  }
  return paths;
}

const words = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').trim().split(/\s+/) : []);

/** A limited cgroup, or why this machine does not allow one. */
export function limitedCgroup(t: Teardown, limits: Limits, name = `hostinfo-test-${process.pid}-${Date.now()}`): LimitedCgroup | string {
  if (process.geteuid?.() !== 0) return 'not root: cannot make cgroups';
  const v2Mount = [ROOT, join(ROOT, 'unified')].find((dir) => existsSync(join(dir, 'cgroup.controllers')));
  const v2Ready = v2Mount !== undefined && ['cpu', 'memory'].every((c) => words(join(v2Mount, 'cgroup.subtree_control')).includes(c));
  const made: { dir: string; parent: string }[] = [];
  t.teardown(() => {
    for (const { dir, parent } of made.reverse()) {
      // Processes still inside go back to the parent first: a cgroup with members cannot be removed.
      for (const pid of words(join(dir, 'cgroup.procs'))) {
        try {
          writeFileSync(join(parent, 'cgroup.procs'), pid);
        } catch {
          // it exited meanwhile
        }
      }
      try {
        rmdirSync(dir);
      } catch {
        // a zombie may hold it a moment longer; the name is unique, nothing reuses it
      }
    }
  });
  const make = (parent: string, files: Record<string, string>): string => {
    const dir = join(parent, name);
    mkdirSync(dir);
    made.push({ dir, parent });
    for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
    return dir;
  };
  try {
    if (v2Ready && v2Mount !== undefined) {
      const dir = make(v2Mount, { 'cpu.max': `${limits.quotaUs} ${limits.periodUs}`, 'memory.max': String(limits.memoryBytes) });
      return { version: 2, dirs: [dir], add: (pid) => writeFileSync(join(dir, 'cgroup.procs'), String(pid)) };
    }
    const own = ownCgroups();
    const mountOf = (controller: string): { mount: string; path: string } | undefined => {
      const entry = [...own].find(([controllers]) => controllers.split(',').includes(controller));
      if (entry === undefined) return undefined;
      const mount = [join(ROOT, entry[0]), join(ROOT, controller)].find((dir) => existsSync(dir));
      return mount === undefined ? undefined : { mount, path: entry[1] };
    };
    const cpu = mountOf('cpu');
    const memory = mountOf('memory');
    if (cpu === undefined || memory === undefined) {
      return `no cgroup v2 with cpu and memory delegated at ${v2Mount ?? ROOT} (subtree_control: ${v2Mount === undefined ? '-' : words(join(v2Mount, 'cgroup.subtree_control')).join(' ')}) and no v1 cpu and memory hierarchies`;
    }
    const cpuDir = make(join(cpu.mount, cpu.path), { 'cpu.cfs_period_us': String(limits.periodUs), 'cpu.cfs_quota_us': String(limits.quotaUs) });
    const memoryDir = make(join(memory.mount, memory.path), { 'memory.limit_in_bytes': String(limits.memoryBytes) });
    return {
      version: 1,
      dirs: [cpuDir, memoryDir],
      add: (pid) => {
        writeFileSync(join(cpuDir, 'cgroup.procs'), String(pid));
        writeFileSync(join(memoryDir, 'cgroup.procs'), String(pid));
      },
    };
  } catch (error) {
    return `cannot write cgroups here: ${(error as Error).message}`;
  }
}
