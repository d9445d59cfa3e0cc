// Descriptors a caller left open without close-on-exec, seen and closed from inside a real Node
// child that inherited them, as hostinfo's processes get them. Node itself (libuv's
// uv_disable_stdio_inheritance at start-up) marks close-on-exec every descriptor from 0 up to the
// first unused one above 15, so what can still leak through an exec sits above such a gap: the
// child gets fds 3 and 4 low (Node's start-up scan reaches them) and fds 20 and 21 past a gap.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { inheritableFds } from '../../common/inherited-fds.js';
import { withTimeout } from '../helpers/logged-process.js';

const REPORT = fileURLToPath(new URL('../../../test/fixtures/programs/fd-report.mjs', import.meta.url));
const MODULE = new URL('../../common/inherited-fds.js', import.meta.url).href;
const LOW_PIPE = 3;
const LOW_FILE = 4;
const HIGH_PIPE = 20;
const HIGH_FILE = 21;

interface Report {
  before: number[];
  openBefore: number[];
  nodeOwn: number[];
  closed: number[];
  after: number[];
  nodeOwnOpen: boolean;
  asyncRead: boolean;
  grandchild: string[];
}

async function runReport(t: { teardown(fn: () => unknown): void }, keep: string) {
  const dir = mkdtempSync(join(tmpdir(), 'hostinfo-fds-'));
  const lowFile = join(dir, 'low');
  const highFile = join(dir, 'high');
  // Opened here close-on-exec (as Node opens everything); the child gets them as plain fds.
  const low = openSync(lowFile, 'w');
  const high = openSync(highFile, 'w');
  const gap = Array<'ignore'>(HIGH_PIPE - LOW_FILE - 1).fill('ignore');
  const child = spawn(process.execPath, [REPORT, MODULE, keep], { stdio: ['ignore', 'pipe', 'inherit', 'pipe', low, ...gap, 'pipe', high] });
  closeSync(low);
  closeSync(high);
  t.teardown(() => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  // EOF on our end of the high pipe: every copy of the child's end is closed. Listened for from
  // the start, since it comes as soon as the child closes it.
  const highPipe = (child.stdio as unknown as Readable[])[HIGH_PIPE] as Readable;
  const highEof = new Promise<{ childRunning: boolean }>((resolve) => highPipe.once('end', () => resolve({ childRunning: child.exitCode === null && child.signalCode === null })));
  highPipe.resume();
  let stdout = '';
  child.stdout?.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  const report = await withTimeout((async () => {
    while (!stdout.includes('\n')) await once(child.stdout as Readable, 'data');
    return JSON.parse(stdout) as Report;
  })(), 'the report');
  return { report, lowFile, highFile, highEof: withTimeout(highEof, 'EOF on the closed pipe') };
}

t.test('inherited descriptors are listed and closed, except the kept ones and Node\'s own', async (t) => {
  const { report, lowFile, highFile, highEof } = await runReport(t, String(HIGH_FILE));
  t.ok(report.before.includes(HIGH_PIPE) && report.before.includes(HIGH_FILE), `fds past the gap would survive an exec (${report.before})`);
  t.ok(report.openBefore.includes(LOW_PIPE) && report.openBefore.includes(LOW_FILE), 'the low ones are open in the child');
  t.notOk(report.before.includes(LOW_PIPE) || report.before.includes(LOW_FILE), 'but Node made them close-on-exec, so they are not listed');
  t.ok(report.nodeOwn.length > 0, `Node has descriptors of its own (${report.nodeOwn})`);
  t.ok(report.closed.includes(HIGH_PIPE), 'the inherited pipe was closed');
  t.notOk(report.closed.includes(HIGH_FILE), 'the kept file was not');
  t.same(report.after, [HIGH_FILE], 'only the kept one would survive an exec now');
  t.ok(report.nodeOwnOpen, 'Node\'s own descriptors are all still open');
  t.ok(report.asyncRead, 'and the event loop still works');
  t.same(await highEof, { childRunning: true }, 'the closed pipe saw EOF while the child still runs');
  t.equal(readFileSync(highFile, 'utf8'), 'kept\n', 'the kept descriptor still writes to its file');
  t.equal(readFileSync(lowFile, 'utf8'), '');
  const leaked = report.grandchild.filter((target) => !/^\/proc\/\d+\/fd$/.test(target));
  t.same(leaked, [highFile], 'a program started afterwards gets the kept descriptor and nothing else inherited');
});

t.test('with nothing to keep, everything inheritable is closed and nothing reaches a program started next', async (t) => {
  const { report, highFile, highEof } = await runReport(t, '');
  t.same(report.closed, report.before);
  t.same(report.after, []);
  t.ok(report.nodeOwnOpen);
  t.same(await highEof, { childRunning: true });
  t.equal(readFileSync(highFile, 'utf8'), '');
  t.same(report.grandchild.filter((target) => !/^\/proc\/\d+\/fd$/.test(target)), []);
});

t.test('what Node opens itself is never listed', async (t) => {
  const fd = openSync(fileURLToPath(import.meta.url), 'r');
  t.teardown(() => closeSync(fd));
  t.notOk(inheritableFds().includes(fd), 'fs.openSync opens close-on-exec');
  t.notOk(inheritableFds().some((n) => n < 3), 'stdio is never listed');
});
