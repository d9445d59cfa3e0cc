// cpulimit and memlimit from cgroup files, under fake /proc and cgroup roots laid out as the
// kernel does for v2, v1 (cpu,cpuacct mounts) and hybrid hosts; then this machine's own files,
// read as the sidecar user.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { parseCgroupList, readCgroupLimits, SYSTEM_CGROUP_ROOTS, type CgroupRoots } from '../../sidecar/cgroup-limits.js';
import { needsRootAndSetpriv, runNodeAs } from '../helpers/as-user.js';
import { limitedCgroup } from './real-cgroup.js';

const PID = 4242;
const V1_UNLIMITED = '9223372036854771712';

/** A fake host: `files` relative to its root (proc/... and cgroup/...). */
function fakeHost(t: { teardown(fn: () => unknown): void }, files: Record<string, string>): CgroupRoots {
  const root = mkdtempSync(join(tmpdir(), 'cgroups-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    if (path.endsWith('/')) mkdirSync(join(root, path), { recursive: true });
    else writeFileSync(join(root, path), text);
  }
  return { proc: join(root, 'proc'), cgroup: join(root, 'cgroup') };
}

const SCOPE = '/machine.slice/machine-qemu\\x2d1\\x2dweb1.scope';

t.test('/proc/<pid>/cgroup lines', async (t) => {
  t.same(parseCgroupList('0::/a/b\n4:memory:/x:y\n1:cpu,cpuacct:/\n9:name=systemd:/z\n'), [
    { id: '0', controllers: [], path: '/a/b' },
    { id: '4', controllers: ['memory'], path: '/x:y' },
    { id: '1', controllers: ['cpu', 'cpuacct'], path: '/' },
    { id: '9', controllers: ['name=systemd'], path: '/z' },
  ]);
});

t.test('cgroup v2: the tightest limit from QEMU\'s cgroup up to the root', async (t) => {
  const roots = fakeHost(t, {
    [`proc/${PID}/cgroup`]: `0::${SCOPE}/libvirt/emulator\n`,
    'cgroup/cgroup.controllers': 'cpuset cpu io memory pids\n',
    'cgroup/machine.slice/cpu.max': 'max 100000\n',
    'cgroup/machine.slice/memory.max': '8589934592\n',
    [`cgroup${SCOPE}/cpu.max`]: '150000 100000\n',
    [`cgroup${SCOPE}/memory.max`]: 'max\n',
    [`cgroup${SCOPE}/libvirt/cpu.max`]: '400000 100000\n',
    [`cgroup${SCOPE}/libvirt/emulator/`]: '',
  });
  t.same(readCgroupLimits(PID, roots), { cpus: { limit: 1.5 }, memoryKb: { limit: 8388608 } }, 'the scope\'s 1.5 CPUs; the slice\'s 8 GiB');
});

t.test('cgroup v2 without any limit on the way: none', async (t) => {
  const roots = fakeHost(t, {
    [`proc/${PID}/cgroup`]: '0::/user.slice/user-1000.slice/session-3.scope\n',
    'cgroup/cgroup.controllers': 'memory pids\n',
    'cgroup/user.slice/memory.max': 'max\n',
    'cgroup/user.slice/user-1000.slice/session-3.scope/memory.max': 'max\n',
  });
  t.same(readCgroupLimits(PID, roots), { cpus: { limit: null }, memoryKb: { limit: null } }, 'cpu not enabled: no cpu.max anywhere, nothing limits');
});

t.test('cgroup v1 (cpu,cpuacct mount): quota / period, limit_in_bytes, "unlimited" as none', async (t) => {
  const roots = fakeHost(t, {
    [`proc/${PID}/cgroup`]: `12:memory:${SCOPE}\n4:cpu,cpuacct:${SCOPE}/emulator\n1:name=systemd:${SCOPE}\n`,
    'cgroup/cpu,cpuacct/cpu.cfs_quota_us': '-1\n',
    'cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
    [`cgroup/cpu,cpuacct${SCOPE}/cpu.cfs_quota_us`]: '-1\n',
    [`cgroup/cpu,cpuacct${SCOPE}/cpu.cfs_period_us`]: '100000\n',
    [`cgroup/cpu,cpuacct${SCOPE}/emulator/cpu.cfs_quota_us`]: '25000\n',
    [`cgroup/cpu,cpuacct${SCOPE}/emulator/cpu.cfs_period_us`]: '50000\n',
    'cgroup/memory/memory.limit_in_bytes': `${V1_UNLIMITED}\n`,
    [`cgroup/memory${SCOPE}/memory.limit_in_bytes`]: `${V1_UNLIMITED}\n`,
  });
  t.same(readCgroupLimits(PID, roots), { cpus: { limit: 0.5 }, memoryKb: { limit: null } });
});

t.test('hybrid (v1 controllers beside cgroup2 at unified/): v1 has cpu and memory', async (t) => {
  const roots = fakeHost(t, {
    [`proc/${PID}/cgroup`]: '4:memory:/vm\n1:cpu:/vm\n0::/\n',
    'cgroup/unified/cgroup.controllers': 'hugetlb\n',
    'cgroup/cpu/vm/cpu.cfs_quota_us': '300000\n',
    'cgroup/cpu/vm/cpu.cfs_period_us': '100000\n',
    'cgroup/memory/vm/memory.limit_in_bytes': '1073741824\n',
  });
  t.same(readCgroupLimits(PID, roots), { cpus: { limit: 3 }, memoryKb: { limit: 1048576 } });
});

t.test('unavailable, with why, when the files cannot tell', async (t) => {
  const missingList = fakeHost(t, { 'cgroup/cgroup.controllers': 'cpu memory\n' });
  t.match(readCgroupLimits(PID, missingList), { cpus: { why: /^cannot read .*\/4242\/cgroup$/ }, memoryKb: { why: /^cannot read / } }, 'QEMU gone or hidden');
  const noMount = fakeHost(t, { [`proc/${PID}/cgroup`]: '0::/vm\n', 'cgroup/.keep': '' });
  t.match(readCgroupLimits(PID, noMount), { cpus: { why: /^no cgroup hierarchy with the cpu controller under / } }, 'no cgroup file system visible');
  const outside = fakeHost(t, { [`proc/${PID}/cgroup`]: '0::/../../other.slice/vm\n', 'cgroup/cgroup.controllers': 'cpu memory\n' });
  t.match(readCgroupLimits(PID, outside), { cpus: { why: /outside this sidecar's view/ } }, 'QEMU outside the reader\'s cgroup namespace');
  const gone = fakeHost(t, { [`proc/${PID}/cgroup`]: '0::/vm\n', 'cgroup/cgroup.controllers': 'cpu memory\n' });
  t.match(readCgroupLimits(PID, gone), { cpus: { why: /QEMU's cgroup .*\/vm is not there/ } }, 'a cgroup the mount does not have: not this host\'s file system');
  const garbage = fakeHost(t, { [`proc/${PID}/cgroup`]: '0::/vm\n', 'cgroup/cgroup.controllers': 'cpu memory\n', 'cgroup/vm/cpu.max': 'lots 100000\n', 'cgroup/vm/memory.max': 'x\n' });
  t.match(readCgroupLimits(PID, garbage), { cpus: { why: /cpu\.max does not hold a quota and period/ }, memoryKb: { why: /memory\.max does not hold a byte count/ } });
});

t.test('this machine, as the sidecar user: the limits of this very process', { skip: needsRootAndSetpriv }, async (t) => {
  const mine = readCgroupLimits(process.pid);
  t.comment(`this machine: ${JSON.stringify(mine)}; /proc/self/cgroup: ${JSON.stringify(parseCgroupList(readFileSync('/proc/self/cgroup', 'utf8')))}`);
  const url = new URL('../../sidecar/cgroup-limits.js', import.meta.url).href;
  const out = runNodeAs({ user: 'hostinfo', group: 'hostinfo', groups: 'none' }, `(async()=>{const m=await import(${JSON.stringify(url)});console.log(JSON.stringify(m.readCgroupLimits(${process.pid})))})()`);
  t.same(JSON.parse(out), mine, `hostinfo reads what root reads: ${out}`);
  t.equal(SYSTEM_CGROUP_ROOTS.cgroup, '/sys/fs/cgroup');
});

t.test('a real cgroup this test makes: its limits, read as the sidecar user', { skip: needsRootAndSetpriv }, async (t) => {
  const cgroup = limitedCgroup(t, { quotaUs: 150_000, periodUs: 100_000, memoryBytes: 2 * 1024 ** 3 });
  if (typeof cgroup === 'string') {
    t.pass(`skipped, this machine makes no cgroup: ${cgroup}`);
    return;
  }
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.teardown(() => sleeper.kill('SIGKILL'));
  cgroup.add(sleeper.pid!);
  t.comment(`cgroup v${cgroup.version}: ${cgroup.dirs.join(', ')}`);
  t.same(readCgroupLimits(sleeper.pid!), { cpus: { limit: 1.5 }, memoryKb: { limit: 2097152 } }, 'as root');
  const url = new URL('../../sidecar/cgroup-limits.js', import.meta.url).href;
  const out = runNodeAs({ user: 'hostinfo', group: 'hostinfo', groups: 'none' }, `(async()=>{const m=await import(${JSON.stringify(url)});console.log(JSON.stringify(m.readCgroupLimits(${sleeper.pid})))})()`);
  t.same(JSON.parse(out), { cpus: { limit: 1.5 }, memoryKb: { limit: 2097152 } }, `as hostinfo: ${out}`);
});
