import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseLoadavg } from '../../../daemon/collectors/loadavg.js';
import { parseMeminfo } from '../../../daemon/collectors/meminfo.js';
import { parsePressureSomeAvg10 } from '../../../daemon/collectors/pressure.js';
import { cpuUsageBetween, parseProcStat } from '../../../daemon/collectors/proc-stat.js';
import { parseUptime } from '../../../daemon/collectors/uptime.js';
import { PROC_FIXTURES } from '../helpers.js';

const fixture = (kernel: string, file: string): string => readFileSync(join(PROC_FIXTURES, kernel, file), 'latin1');

t.test('/proc/stat: aggregate counters and the online CPU count', async (t) => {
  const stat = parseProcStat(fixture('linux-4.19-no-psi', 'stat'));
  t.same(stat, { total: { user: 4705, nice: 356, system: 584, idle: 3699176, iowait: 23060, irq: 0, softirq: 277, steal: 0 }, onlineCpus: 4 });
  t.equal(parseProcStat(fixture('linux-6.18-psi', 'stat'))?.onlineCpus, 2);
  t.equal(parseProcStat(fixture('linux-3.2-no-memavailable', 'stat'))?.onlineCpus, 2);
});

t.test('/proc/stat: an offline CPU has no line, so it is not counted', async (t) => {
  const text = 'cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 0 5 50 0 0 0 0 0 0\ncpu2 5 0 5 50 0 0 0 0 0 0\nintr 1\n';
  t.equal(parseProcStat(text)?.onlineCpus, 2);
});

t.test('/proc/stat: old kernels without steal columns read them as zero', async (t) => {
  t.same(parseProcStat('cpu  1 2 3 4 5\ncpu0 1 2 3 4 5\n')?.total, { user: 1, nice: 2, system: 3, idle: 4, iowait: 5, irq: 0, softirq: 0, steal: 0 });
});

t.test('/proc/stat: garbage is rejected, not half-read', async (t) => {
  t.equal(parseProcStat(''), undefined);
  t.equal(parseProcStat('intr 1 2 3\n'), undefined);
  t.equal(parseProcStat('cpu  1 2 x 4\ncpu0 1 2 3 4\n'), undefined);
  t.equal(parseProcStat('cpu  1 2 -3 4\ncpu0 1 2 3 4\n'), undefined);
  t.equal(parseProcStat('cpu  1 2\ncpu0 1 2\n'), undefined);
  t.equal(parseProcStat('cpu  1 2 3 4 0 0 0 0\n'), undefined, 'no per-CPU line: not a real /proc/stat');
});

t.test('cpuusage: percentages of the ticks between two readings', async (t) => {
  const before = { user: 100, nice: 0, system: 50, idle: 800, iowait: 10, irq: 5, softirq: 5, steal: 0 };
  const after = { user: 200, nice: 25, system: 80, idle: 1600, iowait: 20, irq: 10, softirq: 15, steal: 50 };
  // deltas: user 100 + nice 25, system 30 + irq 5 + softirq 10, idle 800, iowait 10, steal 50; total 1030
  t.same(cpuUsageBetween(before, after), { user: 12.1, system: 4.4, iowait: 1, steal: 4.9, idle: 77.7 });
});

t.test('cpuusage: no tick elapsed, or a counter went backwards, gives no figure', async (t) => {
  const reading = { user: 1, nice: 1, system: 1, idle: 1, iowait: 1, irq: 1, softirq: 1, steal: 1 };
  t.equal(cpuUsageBetween(reading, reading), undefined);
  t.equal(cpuUsageBetween({ ...reading, idle: 5 }, { ...reading, user: 9 }), undefined);
});

t.test('/proc/loadavg', async (t) => {
  t.same(parseLoadavg(fixture('linux-3.2-no-memavailable', 'loadavg')), [1.05, 0.7, 0.5]);
  t.same(parseLoadavg('0.00 0.01 0.05 1/80 2963\n'), [0, 0.01, 0.05]);
  t.equal(parseLoadavg('0.00 0.01\n'), undefined);
  t.equal(parseLoadavg('a b c 1/2 3\n'), undefined);
});

t.test('/proc/uptime: the first field, fractional', async (t) => {
  t.equal(parseUptime(fixture('linux-4.19-no-psi', 'uptime')), 350735.47);
  t.equal(parseUptime(''), undefined);
  t.equal(parseUptime('x 1\n'), undefined);
});

t.test('/proc/meminfo with MemAvailable', async (t) => {
  t.same(parseMeminfo(fixture('linux-4.19-no-psi', 'meminfo')), {
    physmem: { total: 8046452, free: 511960, available: 5631780 },
    swap: { total: 2097148, free: 2083068 },
  });
});

t.test('/proc/meminfo before 3.14: physmem is unavailable, a zero-sized swap is still a fact', async (t) => {
  t.same(parseMeminfo(fixture('linux-3.2-no-memavailable', 'meminfo')), { swap: { total: 0, free: 0 } });
});

t.test('/proc/meminfo: similar-looking keys and malformed numbers are not taken', async (t) => {
  t.same(parseMeminfo('MemTotalX: 5 kB\nMemTotal: 12x kB\nMemFree: 1 kB\nMemAvailable: 2 kB\n'), {});
});

t.test('PSI: "some avg10", with or without a "full" line', async (t) => {
  t.equal(parsePressureSomeAvg10(fixture('linux-5.4-psi-cpu-some-only', 'pressure/cpu')), 1.2);
  t.equal(parsePressureSomeAvg10(fixture('linux-5.4-psi-cpu-some-only', 'pressure/io')), 0.35);
  t.equal(parsePressureSomeAvg10('full avg10=9.00 avg60=0 avg300=0 total=0\nsome avg10=0.50 avg60=0 avg300=0 total=0\n'), 0.5);
  t.equal(parsePressureSomeAvg10('full avg10=9.00 avg60=0.00 avg300=0.00 total=0\n'), undefined, 'no some line');
  t.equal(parsePressureSomeAvg10('some avg60=1.00 total=0\n'), undefined, 'no avg10');
  t.equal(parsePressureSomeAvg10('some xavg10=1.00\n'), undefined);
});
