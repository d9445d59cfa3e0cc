// The per-VM meter's tick: fake /proc and cgroup roots and a scripted QMP, read into VM facts
// stamped on the monotonic clock given, with why for each thing it cannot measure.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { QmpCommandError, QmpTimeoutError, type QmpExecutor } from '../../sidecar/qmp/index.js';
import { vmMeters } from '../../sidecar/vm-meters.js';
import { sessionId } from '../../sidecar/vm-session.js';

const PID = 777;
const BOOT_ID = '0f3c5a1e-2b4d-4c6e-8f10-123456789abc';
const STAT = (ticks: number): string => `${PID} (qemu) S 1 1 1 0 -1 0 0 0 0 0 ${ticks} 0 0 0 20 0 3 0 1 1 1`;

function fakeRoot(t: { teardown(fn: () => unknown): void }) {
  const root = mkdtempSync(join(tmpdir(), 'vmmeters-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const write = (path: string, text: string): void => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  write(`proc/${PID}/cgroup`, '0::/vm\n');
  write('proc/sys/kernel/random/boot_id', `${BOOT_ID}\n`);
  write('cgroup/cgroup.controllers', 'cpu memory\n');
  write('cgroup/vm/cpu.max', '200000 100000\n');
  write('cgroup/vm/memory.max', 'max\n');
  return { roots: { proc: join(root, 'proc'), cgroup: join(root, 'cgroup') }, write };
}

/** A QMP that answers from a table; a function value may throw. */
function qmpAnswering(table: Record<string, unknown>): QmpExecutor & { readonly asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    execute: async <T>(command: string): Promise<T> => {
      asked.push(command);
      const answer = table[command];
      return (typeof answer === 'function' ? (answer as () => unknown)() : answer) as T;
    },
  };
}

const SIZES = { 'query-memory-size-summary': { 'base-memory': 268435456, 'plugged-memory': 134217728 } };

t.test('two ticks: CPU time, vCPU usage and delay, limits, memory', async (t) => {
  const { roots, write } = fakeRoot(t);
  write(`proc/${PID}/stat`, STAT(1234));
  write(`proc/${PID}/task/${PID + 1}/schedstat`, '0 0 1\n');
  let clock = 5000;
  const qmp = qmpAnswering({ ...SIZES, 'query-balloon': { actual: 201326592 } });
  const tick = vmMeters({ pid: () => PID, vcpuThreads: [PID + 1], qmp, monotonic: () => clock, roots });
  t.same(await tick(), {
    cpuTime: { value: 12.34, measuredAt: 5000 },
    cpuLimit: { value: 2, measuredAt: 5000 },
    memLimit: { value: null, measuredAt: 5000 },
    memory: { value: { total: 393216, balloon: 196608 }, measuredAt: 5000 },
    session: { value: sessionId(BOOT_ID, PID, '1') },
  }, 'the first tick: everything but the two shares, which need a second reading');
  t.same(qmp.asked, ['query-memory-size-summary', 'query-balloon']);
  write(`proc/${PID}/stat`, STAT(1300));
  write(`proc/${PID}/task/${PID + 1}/schedstat`, '5000000000 3000000000 9\n');
  clock = 6000;
  const second = await tick();
  t.same(second?.cpuTime, { value: 13, measuredAt: 6000 });
  t.same(second?.vcpuUsage, { value: 100, measuredAt: 6000 }, 'more run time than elapsed: capped at 100');
  t.same(second?.vcpuDelay, { percent: 100, measuredAt: 6000 }, 'vcpudelay from the same reading');
  t.same(second?.session, { value: sessionId(BOOT_ID, PID, '1') }, 'the session stays');
});

t.test('what cannot be measured says why', async (t) => {
  const { roots } = fakeRoot(t);
  const noPid = vmMeters({ pid: () => undefined, vcpuThreads: [], qmp: undefined, monotonic: () => 1, roots });
  t.same(await noPid(), {
    cpuTime: { why: 'QEMU pid not known' }, cpuLimit: { why: 'QEMU pid not known' }, memLimit: { why: 'QEMU pid not known' },
    session: { why: 'QEMU pid not known' }, memory: { why: 'no QMP socket for this VM' },
  });
  const noStat = vmMeters({ pid: () => PID, vcpuThreads: [], qmp: qmpAnswering({ 'query-memory-size-summary': () => { throw new QmpTimeoutError('query-memory-size-summary: no reply within 2000 ms'); }, 'query-balloon': { actual: 1024 } }), monotonic: () => 1, roots });
  const facts = await noStat();
  t.match(facts?.cpuTime, { why: /^cannot read .*\/777\/stat$/ });
  t.match(facts?.session, { why: /\/777\/stat does not exist$/ });
  t.same(facts?.vcpuUsage, { why: 'vCPU threads not known' });
  t.match(facts?.memory, { why: /^QMP did not tell the memory size \(query-memory-size-summary: no reply/ });
});

t.test('no balloon device: balloon none; a VM without plugged memory: total is -m', async (t) => {
  const { roots } = fakeRoot(t);
  const qmp = qmpAnswering({
    'query-memory-size-summary': { 'base-memory': 268435456 },
    'query-balloon': () => { throw new QmpCommandError('query-balloon', 'DeviceNotActive', 'No balloon device has been activated'); },
  });
  const facts = await vmMeters({ pid: () => PID, vcpuThreads: [], qmp, monotonic: () => 1, roots })();
  t.same(facts?.memory, { value: { total: 262144, balloon: null }, measuredAt: 1 });
});

t.test('a tick while the previous one still waits for QMP does nothing', async (t) => {
  const { roots } = fakeRoot(t);
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => { release = resolve; });
  const qmp: QmpExecutor = { execute: async <T>(command: string): Promise<T> => { await held; return (command === 'query-balloon' ? { actual: 1024 } : SIZES[command as keyof typeof SIZES]) as T; } };
  const tick = vmMeters({ pid: () => PID, vcpuThreads: [], qmp, monotonic: () => 1, roots });
  const first = tick();
  t.equal(await tick(), undefined, 'skipped, not queued');
  release();
  t.same((await first)?.memory, { value: { total: 393216, balloon: 1 }, measuredAt: 1 });
  t.not(await tick(), undefined, 'the next one runs again');
});
