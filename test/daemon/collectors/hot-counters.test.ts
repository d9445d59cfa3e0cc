import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { HOT_PROC_FILES, HotCounters } from '../../../daemon/collectors/hot-counters.js';
import { ProcFiles } from '../../../daemon/collectors/proc-reader.js';
import { ProcTexts } from '../../helpers/proc-texts.js';
import { PROC_FIXTURES } from '../helpers.js';

t.test('a recorded 6.18 kernel with PSI: every hot item', async (t) => {
  const values = new HotCounters(new ProcFiles(join(PROC_FIXTURES, 'linux-6.18-psi'))).collect();
  t.same(values, {
    physcpus: 2,
    loadavg: [1.6, 1.27, 0.61],
    physmem: { total: 24683656, free: 23772068, available: 24308748 },
    swap: { total: 0, free: 0 },
    uptime: 1156.31,
    pressure: { cpu: 4.87, memory: 0, io: 0.73 },
    // (user 37970 + nice 0 + system 7278 + irq 0 + softirq 247 + steal 428) / 100
    hostcputime: 459.23,
    pagedin: 5515717,
    pagedout: 21381292,
  });
  t.notOk('cpuusage' in values, 'no cpuusage from a single reading: that would be a since-boot average');
});

t.test('a 4.19 kernel without PSI: pressure is absent, not zero', async (t) => {
  const values = new HotCounters(new ProcFiles(join(PROC_FIXTURES, 'linux-4.19-no-psi'))).collect();
  t.notOk('pressure' in values);
  t.notOk('pagedin' in values || 'pagedout' in values, 'no /proc/vmstat recorded: the paging counters are absent, not zero');
  t.equal(values.physcpus, 4);
  t.ok(values.physmem);
});

t.test('a 5.4 kernel whose cpu pressure has no "full" line', async (t) => {
  const values = new HotCounters(new ProcFiles(join(PROC_FIXTURES, 'linux-5.4-psi-cpu-some-only'))).collect();
  t.same(values.pressure, { cpu: 1.2, memory: 0, io: 0.35 });
});

t.test('a 3.2 kernel: no MemAvailable means no physmem, swap still there', async (t) => {
  const values = new HotCounters(new ProcFiles(join(PROC_FIXTURES, 'linux-3.2-no-memavailable'))).collect();
  t.notOk('physmem' in values);
  t.same(values.swap, { total: 0, free: 0 });
  t.notOk('pressure' in values);
  t.equal(values.uptime, 12);
});

t.test('PSI readable for one resource only: all of pressure is absent', async (t) => {
  const texts = { stat: 'cpu  1 0 1 10 0 0 0 0\ncpu0 1 0 1 10 0 0 0 0\n', 'pressure/cpu': 'some avg10=1.00 avg60=0 avg300=0 total=1\n' };
  t.notOk('pressure' in new HotCounters(new ProcTexts(texts)).collect());
});

t.test('cpuusage comes from the second reading on, over the interval between them', async (t) => {
  const texts: Record<string, string> = { stat: 'cpu  100 0 100 800 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0\n' };
  const proc = { read: (name: string) => texts[name] };
  const hot = new HotCounters(proc);
  t.notOk('cpuusage' in hot.collect());
  texts['stat'] = 'cpu  150 0 110 840 0 0 0 0\ncpu0 150 0 110 840 0 0 0 0\n';
  t.same(hot.collect().cpuusage, { user: 50, system: 10, iowait: 0, steal: 0, idle: 40 });
  // No tick since: no figure, and the baseline stays, so the next figure spans both intervals.
  t.notOk('cpuusage' in hot.collect());
  texts['stat'] = 'cpu  150 0 110 940 0 0 0 0\ncpu0 150 0 110 940 0 0 0 0\n';
  t.same(hot.collect().cpuusage, { user: 0, system: 0, iowait: 0, steal: 0, idle: 100 });
});

t.test('an unreadable proc root gives an empty reading, not zeros', async (t) => {
  t.same(new HotCounters(new ProcFiles('/nonexistent-proc-root')).collect(), {});
});

t.test('the real /proc of this machine', async (t) => {
  const hot = new HotCounters(new ProcFiles());
  hot.collect();
  // Burn a few ticks so the second reading has an interval to measure.
  const until = Date.now() + 50;
  while (Date.now() < until);
  const values = hot.collect();

  const online = readFileSync('/sys/devices/system/cpu/online', 'latin1').trim().split(',')
    .map((range) => range.split('-').map(Number))
    .reduce((sum, [from, to]) => sum + ((to ?? from ?? 0) - (from ?? 0) + 1), 0);
  t.ok(values.physcpus === online || values.physcpus === availableParallelism(), `physcpus ${values.physcpus} vs online ${online}`);
  t.equal(values.physcpus, online, 'physcpus is the online count');

  const memTotal = Number(/^MemTotal:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'latin1'))?.[1]);
  t.equal(values.physmem?.total, memTotal);
  t.equal((values.physmem?.total ?? 0) * 1024, totalmem(), 'agrees with os.totalmem() (sysinfo) too');

  t.equal('pressure' in values, existsSync('/proc/pressure/cpu'), 'pressure exactly when the kernel has PSI');
  t.ok((values.uptime ?? 0) > 0);
  t.equal(values.loadavg?.length, 3);
  const vmstat = readFileSync('/proc/vmstat', 'latin1');
  const counter = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(vmstat)?.[1]);
  // Counters that only grow, read a moment apart: the collector's reading lies between.
  const pagedinAfter = counter('pgpgin');
  t.ok((values.pagedin ?? -1) <= pagedinAfter && (values.pagedin ?? -1) >= pagedinAfter - 1024 * 1024, `pagedin ${values.pagedin} kB, /proc/vmstat then ${pagedinAfter}`);
  const pagedoutAfter = counter('pgpgout');
  t.ok((values.pagedout ?? -1) <= pagedoutAfter && (values.pagedout ?? -1) >= pagedoutAfter - 1024 * 1024, `pagedout ${values.pagedout} kB, /proc/vmstat then ${pagedoutAfter}`);
  const usage = values.cpuusage;
  if (usage === undefined) t.fail('no cpuusage after 50 ms of busy loop');
  else t.ok(Math.abs(usage.user + usage.system + usage.iowait + usage.steal + usage.idle - 100) < 0.6, 'sums to 100 (rounding aside)');
});

t.test('the file list covers what collect() reads', async (t) => {
  const read: string[] = [];
  new HotCounters({ read: (name) => { read.push(name); return 'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n'; } }).collect();
  t.same(new Set(read), new Set(HOT_PROC_FILES));
});
