// vmsession: the id of one QEMU process on one host boot. Against real processes and this
// host's /proc (the expected value computed here from what /proc says, independently of the
// code), and a fake proc root for what may go wrong.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { readSession, sessionMeter } from '../../sidecar/vm-session.js';
import { vmSessionOf } from '../helpers/proc-stats.js';

async function sleeper(t: Test) {
  // A command name with a space and a parenthesis: comm must not shift the fields.
  const dir = mkdtempSync(join(tmpdir(), 'vmsession-bin-'));
  const program = join(dir, 'qemu (x) y');
  copyFileSync('/bin/sleep', program);
  chmodSync(program, 0o755);
  const child = spawn(program, ['30'], { stdio: 'ignore' });
  t.teardown(() => { child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); });
  await once(child, 'spawn');
  t.match(readFileSync(`/proc/${child.pid}/stat`, 'latin1'), /^\d+ \(qemu \(x\) y\) /, 'comm holds the space and parentheses');
  return child;
}

t.test('a real process: the hash of boot id, pid and start time, 16 lowercase hex digits', async (t) => {
  const reading = readSession(process.pid);
  t.same(reading, { value: vmSessionOf(process.pid) });
  t.match(reading, { value: /^[0-9a-f]{16}$/ });
  t.same(readSession(process.pid), reading, 'the same process, the same id');
});

t.test('two processes, two ids; a process gone, no id', async (t) => {
  const one = await sleeper(t);
  const two = await sleeper(t);
  const first = readSession(one.pid!);
  const second = readSession(two.pid!);
  t.same(first, { value: vmSessionOf(one.pid!) });
  t.same(second, { value: vmSessionOf(two.pid!) });
  t.not((first as { value: string }).value, (second as { value: string }).value);
  one.kill('SIGKILL');
  await once(one, 'exit');
  t.match(readSession(one.pid!), { why: /stat/ }, 'reaped: nothing to name');
  t.match(readSession(0), { why: '0 is not a pid' });
});

function fakeProc(t: { teardown(fn: () => unknown): void }) {
  const root = mkdtempSync(join(tmpdir(), 'vmsession-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const write = (path: string, text: string): string => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
    return join(root, path);
  };
  return { root, write };
}

const BOOT = '0f3c5a1e-2b4d-4c6e-8f10-123456789abc';
const stat = (start: string, state = 'S'): string => `42 (qemu-system-x86) ${state} 1 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 3 0 ${start} 1 1\n`;

t.test('a fake proc root: what makes an id, and what does not', async (t) => {
  const { root, write } = fakeProc(t);
  t.match(readSession(42, root), { why: /boot_id does not exist$/ });
  write('sys/kernel/random/boot_id', 'not-a-uuid\n');
  t.match(readSession(42, root), { why: /boot_id is not a boot id$/ });
  write('sys/kernel/random/boot_id', `${BOOT}\n`);
  t.match(readSession(42, root), { why: /42\/stat does not exist$/ });
  write('42/stat', stat('777'));
  const id = createHash('sha256').update(`${BOOT}\u000042\u0000777`).digest('hex').slice(0, 16);
  t.same(readSession(42, root), { value: id });
  write('42/stat', stat('777', 'Z'));
  t.match(readSession(42, root), { why: /no start time/ }, 'a zombie is no longer the VM');
  write('42/stat', 'x'.repeat(10_000));
  t.match(readSession(42, root), { why: /larger than|no start time/ }, 'a stat that is not one');
});

t.test('a symlinked boot_id is not followed', async (t) => {
  const { root, write } = fakeProc(t);
  const target = write('elsewhere', `${BOOT}\n`);
  mkdirSync(join(root, 'sys/kernel/random'), { recursive: true });
  symlinkSync(target, join(root, 'sys/kernel/random/boot_id'));
  write('42/stat', stat('777'));
  t.match(readSession(42, root), { why: /symbolic link/ });
});

t.test('the meter reads once per pid, and again after a failure', async (t) => {
  const { root, write } = fakeProc(t);
  write('sys/kernel/random/boot_id', `${BOOT}\n`);
  const meter = sessionMeter(root);
  t.match(meter(42), { why: /stat does not exist/ });
  write('42/stat', stat('777'));
  const first = meter(42);
  t.match(first, { value: /^[0-9a-f]{16}$/ }, 'a failure is retried');
  write('42/stat', stat('999'));
  t.same(meter(42), first, 'the same pid is not read again');
  write('43/stat', stat('999').replace(/^42/, '43'));
  const other = meter(43);
  t.match(other, { value: /^[0-9a-f]{16}$/ });
  t.not((other as { value: string }).value, (first as { value: string }).value, 'a new pid (QEMU daemonized, say) is read');
});
