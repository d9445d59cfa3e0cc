// pagedin / pagedout (/proc/vmstat pgpgin / pgpgout) and hostcputime (/proc/stat's cpu line):
// the parsers against this machine's /proc and a recorded file, and the odd texts a kernel (or
// a hostile test root) may give.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { USER_HZ } from '../../../common/proc.js';
import { busySeconds, parseProcStat } from '../../../daemon/collectors/proc-stat.js';
import { parseVmstatPaging } from '../../../daemon/collectors/vmstat.js';
import { PROC_FIXTURES } from '../helpers.js';

const counterOf = (text: string, name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);

t.test('/proc/vmstat of this machine: the two counters, a moment apart from a second reading', async (t) => {
  const before = readFileSync('/proc/vmstat', 'latin1');
  const paging = parseVmstatPaging(before);
  const after = readFileSync('/proc/vmstat', 'latin1');
  t.equal(paging.pagedin, counterOf(before, 'pgpgin'), 'pgpgin as the file says');
  t.equal(paging.pagedout, counterOf(before, 'pgpgout'));
  t.ok((paging.pagedin ?? Infinity) <= counterOf(after, 'pgpgin'), 'a counter that only grows');
  t.ok((paging.pagedin ?? 0) > 0, 'a booted host has read something from disk');
});

t.test('the recorded 6.18 file', async (t) => {
  t.same(parseVmstatPaging(readFileSync(join(PROC_FIXTURES, 'linux-6.18-psi', 'vmstat'), 'latin1')), { pagedin: 5515717, pagedout: 21381292 });
});

t.test('odd texts: each counter on its own, never a guess', async (t) => {
  t.same(parseVmstatPaging(''), {}, 'nothing (no CONFIG_VM_EVENT_COUNTERS): both absent');
  t.same(parseVmstatPaging('nr_free_pages 5\npgpgin 12\npswpin 3\n'), { pagedin: 12 }, 'one without the other');
  t.same(parseVmstatPaging('pgpgin 12\npgpgout 34'), { pagedin: 12, pagedout: 34 }, 'no final newline');
  t.same(parseVmstatPaging('pgpgin -1\npgpgout 1.5\n'), {}, 'not whole numbers');
  t.same(parseVmstatPaging('pgpgin 12 13\npgpgout  7\npgpgout\t8\n'), {}, 'extra fields or other spacing are not the kernel\'s format');
  t.same(parseVmstatPaging('pgpgin 99999999999999999999\npgpgout 9007199254740993\n'), {}, 'past 2^53 kB a number is not exact: left out');
  t.same(parseVmstatPaging('pgpgin 9007199254740991\n'), { pagedin: Number.MAX_SAFE_INTEGER }, 'the largest exact one is kept');
  t.same(parseVmstatPaging('pgpgin 5\npgpgin 6\n'), { pagedin: 5 }, 'the first line of a name counts');
  t.same(parseVmstatPaging('constructor 5\n__proto__ 6\ntoString 7\n'), {}, 'no name reaches the prototype');
  t.same(parseVmstatPaging('pgpgin 5\r\n'), {}, 'a CR is not the kernel\'s');
});

t.test('hostcputime of this machine: busy ticks of the cpu line over getconf CLK_TCK', async (t) => {
  t.equal(USER_HZ, Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()), 'USER_HZ is what getconf CLK_TCK says here');
  const text = readFileSync('/proc/stat', 'latin1');
  const stat = parseProcStat(text);
  const columns = (/^cpu +(.*)$/m.exec(text)?.[1] ?? '').split(' ').map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = columns;
  t.ok(stat !== undefined, '/proc/stat parses');
  t.equal(busySeconds(stat!.total), (user + nice + system + irq + softirq + steal) / USER_HZ);
  // A second reading a moment later: the figure only grows, and by no more than the CPUs could.
  const startedAt = process.hrtime.bigint();
  const until = Date.now() + 30;
  while (Date.now() < until);
  const later = busySeconds(parseProcStat(readFileSync('/proc/stat', 'latin1'))!.total);
  const elapsed = Number(process.hrtime.bigint() - startedAt) / 1e9;
  const grew = later - busySeconds(stat!.total);
  t.ok(grew >= 0 && grew <= stat!.onlineCpus * elapsed + 2 / USER_HZ, `grew ${grew.toFixed(2)} s in ${elapsed.toFixed(3)} s on ${stat!.onlineCpus} CPUs`);
});

t.test('hostcputime: idle and iowait are not busy; guest time is in user and nice already', async (t) => {
  // user nice system idle iowait irq softirq steal guest guest_nice
  const stat = parseProcStat('cpu  1000 200 300 90000 500 10 20 30 700 100\ncpu0 1000 200 300 90000 500 10 20 30 700 100\n');
  t.equal(busySeconds(stat!.total), 15.6, '(1000 + 200 + 300 + 10 + 20 + 30) / 100: guest 700 and guest_nice 100 not added again');
  t.equal(busySeconds(parseProcStat('cpu  1 2 3 4\ncpu0 1 2 3 4\n')!.total), 0.06, 'a kernel without the later columns');
});
