// A second libvirtd on this machine, posing as another host, for live migration between two
// libvirtds. libvirt refuses to migrate to its own host (it compares host UUIDs), and one libvirtd
// owns /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt. So
// this one runs, with a virtlogd of its own, in a mount namespace of its own (unshare -m) where
// those five are private bind mounts of directories under `dir`: its libvirtd.conf has another
// host_uuid, its hooks are its own, and its sockets, in `dir`/run, are reachable from the host's
// namespace by that path. Its pid files are under `dir` (the host's are /run/libvirtd.pid and
// /run/virtlogd.pid, outside /run/libvirt). Its domains get their own cgroup partition
// (machine/NAME.partition, made here: without systemd libvirt only uses an existing one), or the
// destination would join the source's machine/qemu-ID-NAME cgroup when both number the domain alike.
// The host's libvirtd must already run (startLibvirtd starts one only when no libvirtd runs).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { until } from '../e2e/harness.js';
import type { Teardown } from '../helpers/logged-process.js';

/** The private mounts, as (name under dir, path in the namespace). */
const PRIVATE = [['etc', '/etc/libvirt'], ['run', '/run/libvirt'], ['lib', '/var/lib/libvirt'], ['log', '/var/log/libvirt'], ['cache', '/var/cache/libvirt']] as const;

export interface SecondLibvirtd {
  /** Its connection URI, for virsh -c and `virsh migrate`'s destination. */
  readonly uri: string;
  readonly hostUuid: string;
  /** Where its /var/lib/libvirt is seen from the host's namespace (and from its own). */
  readonly libDir: string;
  /** Where its /run/libvirt is seen from the host's namespace. */
  readonly runDir: string;
  /** For the domain XML it runs: <resource><partition>THIS</partition></resource>. */
  readonly partition: string;
  virsh(...args: string[]): { code: number | null; out: string };
}

export async function startSecondLibvirtd(t: Teardown, dir: string, options: { readonly hook?: string } = {}): Promise<SecondLibvirtd> {
  for (const [name] of PRIVATE) mkdirSync(path.join(dir, name), { recursive: true });
  // The host's config, state skeleton and QEMU capability cache (so nothing is re-probed), with
  // owners and modes kept (libvirt-qemu's 0750 /var/lib/libvirt/qemu); then minus hooks and domains.
  for (const [name, at] of [['etc', '/etc/libvirt'], ['lib', '/var/lib/libvirt'], ['cache', '/var/cache/libvirt']] as const) {
    const r = spawnSync('cp', ['-a', `${at}/.`, path.join(dir, name)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cp -a ${at}: ${r.stderr}`);
  }
  rmSync(path.join(dir, 'etc', 'hooks'), { recursive: true, force: true });
  mkdirSync(path.join(dir, 'etc', 'hooks'));
  for (const file of readdirSync(path.join(dir, 'etc', 'qemu'))) if (file.endsWith('.xml')) rmSync(path.join(dir, 'etc', 'qemu', file));
  const hostUuid = randomUUID();
  writeFileSync(path.join(dir, 'etc', 'libvirtd.conf'), `${readFileSync('/etc/libvirt/libvirtd.conf', 'utf8')}\n# second libvirtd (a test's): another host\nhost_uuid = "${hostUuid}"\n`);
  if (options.hook !== undefined) writeFileSync(path.join(dir, 'etc', 'hooks', 'qemu'), options.hook, { mode: 0o755 });
  mkdirSync(path.join(dir, 'log', 'qemu'), { recursive: true });

  const partitionName = `hostinfo-${process.pid}`;
  const partitionDirs = makePartition(partitionName);
  const pidfile = (name: string): string => path.join(dir, `${name}.pid`);
  const script = [
    'set -e',
    'mount --make-rprivate /',
    ...PRIVATE.map(([name, at]) => `mount --bind ${path.join(dir, name)} ${at}`),
    `virtlogd -d -p ${pidfile('virtlogd')}`,
    `exec libvirtd -p ${pidfile('libvirtd')}`,
  ].join('\n');
  writeFileSync(path.join(dir, 'start.sh'), `${script}\n`, { mode: 0o755 });
  const out = path.join(dir, 'libvirtd.out');
  // Its own session, like the host's libvirtd; the namespace ends with its last process.
  const child = spawn('sh', ['-c', `exec unshare -m sh ${path.join(dir, 'start.sh')} >${out} 2>&1`], { detached: true, stdio: 'ignore' });
  child.unref();
  const libvirtdPid = child.pid ?? 0; // exec all the way: sh, unshare (no --fork), sh, libvirtd
  const uri = `qemu+unix:///system?socket=${path.join(dir, 'run', 'libvirt-sock')}`;
  const virsh = (...args: string[]): { code: number | null; out: string } => {
    const r = spawnSync('virsh', ['-c', uri, ...args], { encoding: 'utf8', timeout: 120_000 });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  };
  t.teardown(async () => {
    for (const id of virsh('list', '--name').out.split('\n').map((line) => line.trim()).filter(Boolean)) virsh('destroy', id);
    const pids = [libvirtdPid, pidOf(pidfile('virtlogd'))].filter((pid): pid is number => pid !== undefined && pid > 0);
    for (const pid of pids) try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
    await until(() => pids.every((pid) => !existsSync(`/proc/${pid}`) || /State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8'))), 20_000, () => `second libvirtd/virtlogd ${pids.join(' ')} stopping`);
    for (const partition of partitionDirs) rmdirSync(partition); // empty once its domains are gone
  });
  await until(() => virsh('version').code === 0, 30_000, () => `the second libvirtd answering on ${uri} (${existsSync(out) ? readFileSync(out, 'utf8').slice(-400) : ''})`);
  return { uri, hostUuid, libDir: path.join(dir, 'lib'), runDir: path.join(dir, 'run'), partition: `/machine/${partitionName}`, virsh };
}

function pidOf(file: string): number | undefined {
  try {
    return Number(readFileSync(file, 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** machine/NAME.partition in each cgroup hierarchy libvirt uses (those with a machine/); cpuset's
 * needs its parent's cpus and mems, or no task could join it. */
function makePartition(name: string): string[] {
  const made: string[] = [];
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const machine = path.join('/sys/fs/cgroup', hierarchy, 'machine');
    if (!existsSync(machine)) continue;
    const partition = path.join(machine, `${name}.partition`);
    mkdirSync(partition);
    made.push(partition);
    for (const file of ['cpuset.cpus', 'cpuset.mems']) {
      if (existsSync(path.join(machine, file))) writeFileSync(path.join(partition, file), readFileSync(path.join(machine, file)));
    }
  }
  return made;
}
