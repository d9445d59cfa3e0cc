// What /proc says about a process, checked against real processes: this one, children, a zombie,
// one whose name is built to fool a naive /proc/<pid>/stat parser, and one running as another uid.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { processCmdline, processStartTime, processUid, sameProcess } from '../../common/proc.js';
import { withTimeout } from '../helpers/logged-process.js';

const isRoot = process.geteuid?.() === 0;
const NOBODY = 65534;

function sleeper(t: { teardown(fn: () => unknown): void }, command = 'sleep', args: readonly string[] = ['30'], options: { uid?: number; gid?: number } = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'ignore'], ...options });
  t.teardown(() => void child.kill('SIGKILL'));
  return child;
}

/** Polls /proc (bounded) until the freshly spawned child has exec'd `comm`. */
async function execed(child: ChildProcess, comm: string): Promise<number> {
  const pid = child.pid ?? 0;
  await withTimeout((async () => {
    while (readFileSync(`/proc/${pid}/comm`, 'latin1').trim() !== comm) await new Promise((resolve) => setImmediate(resolve));
  })(), `${comm} to run`);
  return pid;
}

t.test('start time of this process and of a child', async (t) => {
  const own = processStartTime(process.pid);
  t.match(own, /^\d+$/);
  t.equal(processStartTime(process.pid), own, 'it does not change');
  const child = sleeper(t);
  const pid = await execed(child, 'sleep');
  const start = processStartTime(pid);
  t.match(start, /^\d+$/);
  t.ok(BigInt(start ?? 0) >= BigInt(own ?? 0), 'the child started no earlier than this process');
  t.ok(sameProcess(pid, start ?? ''));
  t.notOk(sameProcess(pid, `${start}0`), 'another start time is another process');
  child.kill('SIGKILL');
  await once(child, 'exit');
  t.equal(processStartTime(pid), undefined, 'gone once reaped');
  t.notOk(sameProcess(pid, start ?? ''), 'and no longer the same process');
});

t.test('the start time survives exec', async (t) => {
  const child = sleeper(t, 'sh', ['-c', 'read line; exec sleep 30']);
  const pid = await execed(child, 'sh');
  const start = processStartTime(pid);
  t.match(start, /^\d+$/);
  child.stdin?.end('\n');
  await execed(child, 'sleep');
  t.ok(sameProcess(pid, start ?? ''), 'sh, now sleep, is still the same process');
});

t.test('a zombie is not the process it was', async (t) => {
  // perl forks a child that exits at once and never reaps it. (A shell's `true & exec sleep`
  // was flaky: dash may reap the finished job before its exec.)
  const child = sleeper(t, 'perl', ['-e', '$| = 1; my $pid = fork(); exit 0 if $pid == 0; print "$pid\n"; sleep 30']);
  const [line] = (await withTimeout(once(child.stdout!, 'data'), 'the zombie pid')) as [Buffer];
  const zombie = Number(line.toString().trim());
  await withTimeout((async () => {
    while (!/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${zombie}/stat`, 'latin1'))) await new Promise((resolve) => setImmediate(resolve));
  })(), 'the background process to be a zombie');
  t.equal(processStartTime(zombie), undefined);
});

t.test('a process name with spaces and parentheses does not shift the fields', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostinfo-proc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A parser splitting at the first ')' would read state "Z" and call this a zombie.
  const name = 'x) Z 1 (y';
  symlinkSync('/bin/sleep', join(dir, name));
  const child = sleeper(t, join(dir, name));
  const pid = await execed(child, name);
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const expected = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  t.equal(processStartTime(pid), expected);
  t.match(expected, /^\d+$/);
  t.same(processCmdline(pid), [join(dir, name), '30']);
});

t.test('uid of this process and of one running as nobody', async (t) => {
  t.equal(processUid(process.pid), process.getuid?.());
  if (!isRoot) return void t.comment('not root: cannot start a process as nobody');
  const child = sleeper(t, 'sleep', ['30'], { uid: NOBODY, gid: NOBODY });
  const pid = await execed(child, 'sleep');
  t.equal(processUid(pid), NOBODY);
});

t.test('command line words, and nothing for a process that is gone', async (t) => {
  // `; :` keeps sh from exec'ing sleep: sh itself stays, with these arguments.
  const child = sleeper(t, 'sh', ['-c', 'sleep 30; :', 'a b', '', 'c']);
  const pid = await execed(child, 'sh');
  t.same(processCmdline(pid), ['sh', '-c', 'sleep 30; :', 'a b', 'c'], 'split at NUL, empty words dropped');
  t.same(processCmdline(process.pid)[0], process.argv0);
  child.kill('SIGKILL');
  await once(child, 'exit');
  t.same(processCmdline(pid), []);
  t.equal(processUid(pid), undefined);
});

t.test('impossible pids are answered, not thrown', async (t) => {
  for (const pid of [0, -1, 1.5, Number.NaN, 2 ** 53, 4_194_305]) {
    t.equal(processStartTime(pid), undefined, `start time of ${pid}`);
    t.equal(processUid(pid), undefined, `uid of ${pid}`);
    t.same(processCmdline(pid), [], `cmdline of ${pid}`);
    t.notOk(sameProcess(pid, '1'));
  }
});
