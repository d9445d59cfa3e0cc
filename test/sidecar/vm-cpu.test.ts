// vmcputime and vmcpuusage from /proc: parsing, the arithmetic over two readings, a fake /proc
// root, and the real files of a real process read as the sidecar user.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseCpuTicks, parseSchedstat, readVmCpu, USER_HZ, vmCpuFigures, vmCpuMeter } from '../../sidecar/vm-cpu.js';
import { needsRootAndSetpriv, runNodeAs } from '../helpers/as-user.js';

const STAT = '4242 (qemu-system-x86) S 1 4242 4242 0 -1 4194560 2143 0 0 0 1234 567 0 0 20 0 5 0 98765 1234567 890 18446744073709551615 1 1 0 0 0 0 0 4096 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0';

t.test('utime + stime from /proc/<pid>/stat, comm with spaces and parentheses included', async (t) => {
  t.equal(parseCpuTicks(STAT), 1234 + 567);
  t.equal(parseCpuTicks(STAT.replace('(qemu-system-x86)', '(a) b (c))')), 1801, 'fields counted from the last )');
  t.equal(parseCpuTicks('garbage'), undefined);
  t.equal(parseCpuTicks('1 (x) S 1 2'), undefined, 'too short');
  t.equal(parseCpuTicks(STAT.replace(' 1234 567 ', ' -1 567 ')), undefined);
  t.equal(USER_HZ, Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()), 'USER_HZ is what getconf CLK_TCK says here');
});

t.test('schedstat: run time and run delay', async (t) => {
  t.same(parseSchedstat('149102965 10241641 353\n'), { runNs: 149102965, delayNs: 10241641 });
  t.equal(parseSchedstat('12'), undefined);
  t.equal(parseSchedstat('1 -5 2'), undefined);
});

t.test('figures over two readings: CPU seconds, usage and delay as shares of vCPUs x elapsed', async (t) => {
  const first = { atNs: 0n, cpuTicks: 100, run: new Map([[10, 0], [11, 0]]), delay: new Map([[10, 0], [11, 0]]) };
  const second = { atNs: 2_000_000_000n, cpuTicks: 350, run: new Map([[10, 2_000_000_000], [11, 1_000_000_000]]), delay: new Map([[10, 40_000_000], [11, 0]]) };
  t.same(vmCpuFigures(undefined, first), { cpuSeconds: 1, vcpuUsage: undefined, vcpuDelay: undefined }, 'CPU time from one reading; shares need two');
  t.same(vmCpuFigures(first, second), { cpuSeconds: 3.5, vcpuUsage: 75, vcpuDelay: 1 }, '3 s run of 2 vCPUs x 2 s; 40 ms waited');
  t.same(vmCpuFigures(first, { ...second, cpuTicks: undefined, run: new Map() }), { cpuSeconds: undefined, vcpuUsage: undefined, vcpuDelay: 1 });
});

t.test('a fake /proc root: the meter reads stat and each vCPU thread\'s schedstat', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'vmcpu-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const write = (ticks: number, run: number): void => {
    mkdirSync(join(root, '4242', 'task', '4243'), { recursive: true });
    writeFileSync(join(root, '4242', 'stat'), STAT.replace(' 1234 567 ', ` ${ticks} 0 `));
    writeFileSync(join(root, '4242', 'task', '4243', 'schedstat'), `${run} 0 7\n`);
  };
  write(250, 0);
  const meter = vmCpuMeter(root, [4243, 9999]);
  t.same(meter(4242), { cpuSeconds: 2.5, vcpuUsage: undefined, vcpuDelay: undefined });
  write(300, 1_000_000_000);
  const second = meter(4242);
  t.equal(second.cpuSeconds, 3);
  t.ok(second.vcpuUsage !== undefined && second.vcpuUsage > 0 && second.vcpuUsage <= 100, `usage over the real elapsed time, capped at 100: ${second.vcpuUsage}`);
  const none = readVmCpu(root, 1, [1]);
  t.equal(none.cpuTicks, undefined, 'a pid without files: no CPU time');
  t.equal(none.run.size, 0, 'and no thread');
});

t.test('the real files of this process', async (t) => {
  const tids = (await readdir(`/proc/${process.pid}/task`)).map(Number);
  const reading = readVmCpu('/proc', process.pid, tids);
  t.ok(reading.cpuTicks !== undefined && reading.cpuTicks >= 0, `CPU ticks ${reading.cpuTicks}`);
  t.equal(reading.run.size, tids.length, 'every thread has a schedstat');
});

t.test('as the sidecar user, a root process\'s stat and schedstat are readable', { skip: needsRootAndSetpriv }, async (t) => {
  const script = `const {readVmCpu}=await import(${JSON.stringify(new URL('../../sidecar/vm-cpu.js', import.meta.url).href)});` +
    `const r=readVmCpu('/proc',${process.pid},[${process.pid}]);console.log(JSON.stringify({ticks:r.cpuTicks,threads:r.run.size}))`;
  const out = runNodeAs({ user: 'hostinfo', group: 'hostinfo', groups: 'none' }, `(async()=>{${script}})()`);
  const parsed = JSON.parse(out.split(' (stderr')[0] ?? 'null') as { ticks: number | null; threads: number } | null;
  t.ok(parsed !== null && typeof parsed.ticks === 'number', `utime + stime read as hostinfo: ${out}`);
  t.equal(parsed?.threads, 1, 'and the main thread\'s schedstat');
});
