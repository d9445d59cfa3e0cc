// The textfile writer against a real file system: replaced by rename (a reader never sees a
// partial file), 0644 whatever the umask, a directory that is a symlink, not a directory or
// writable by everyone refused, an entry planted at the temporary name never written through, and
// one warning per distinct failure however many intervals it lasts.

import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { TextfileWriter, randomTempName, writeAtomically } from '../../../daemon/metrics/textfile-writer.js';
import { tempDir } from '../helpers.js';
import { RecordingLog } from './fixtures.js';

/** A temp-name generator that records what it handed out and can be told what to hand out. */
function names(planned: string[] = []): { next: (target: string) => string; given: string[] } {
  const given: string[] = [];
  return { given, next: (target) => { const name = planned.shift() ?? randomTempName(target); given.push(name); return name; } };
}

t.test('written by rename of a dot-named temporary file, 0644 whatever the umask, nothing left behind', async (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'hostinfo.prom');
  const temp = names();
  const previous = process.umask(0o077);
  try {
    await writeAtomically(target, 'one 1\n', temp.next);
    const first = statSync(target);
    await writeAtomically(target, 'two 2\n', temp.next);
    const second = statSync(target);
    t.equal(readFileSync(target, 'utf8'), 'two 2\n');
    t.not(second.ino, first.ino, 'replaced by a new inode (rename), not rewritten in place');
    t.equal(second.mode & 0o7777, 0o644, 'node_exporter, another user, can read it under the unit\'s UMask=0077');
  } finally {
    process.umask(previous);
  }
  t.equal(temp.given.length, 2);
  for (const name of temp.given) {
    t.match(name, /^\.hostinfo\.prom\.[0-9a-f]{12}\.tmp$/, 'starts with a dot, does not end in .prom');
    t.notOk(name.endsWith('.prom'), 'node_exporter never reads a temporary file');
  }
  t.same(readdirSync(dir), ['hostinfo.prom'], 'no temporary file left');
});

t.test('a reader running alongside only ever sees a whole old or whole new file', async (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'big.prom');
  // Large enough that a write in place would be seen half done by some read.
  const texts = ['a'.repeat(512 * 1024), 'b'.repeat(512 * 1024)] as const;
  await writeAtomically(target, texts[0]);
  let writing = true;
  let reads = 0;
  const torn: number[] = [];
  const reader = (async () => {
    while (writing) {
      const text = await readFile(target, 'utf8');
      reads += 1;
      if (text !== texts[0] && text !== texts[1]) torn.push(text.length);
    }
  })();
  for (let i = 1; i <= 200; i++) await writeAtomically(target, texts[i % 2]!);
  writing = false;
  await reader;
  t.ok(reads > 10, `${reads} reads during 200 writes`);
  t.same(torn, [], 'no partial or mixed file was read');
});

t.test('a target directory that is a symlink, not a directory, or writable by all without the sticky bit is refused', async (t) => {
  const dir = tempDir(t);
  const real = join(dir, 'real');
  mkdirSync(real, { mode: 0o755 });
  symlinkSync(real, join(dir, 'link'));
  await t.rejects(writeAtomically(join(dir, 'link', 'hostinfo.prom'), 'x 1\n'), {
    code: 'TEXTFILE_DIR_UNSAFE', message: `cannot write ${join(dir, 'link', 'hostinfo.prom')}: its directory ${join(dir, 'link')} (owner uid ${process.getuid?.()}, mode 0777) is a symbolic link; refusing to write there`,
  });
  t.same(readdirSync(real), [], 'nothing written through the symlink');
  writeFileSync(join(dir, 'file'), '');
  await t.rejects(writeAtomically(join(dir, 'file', 'hostinfo.prom'), 'x 1\n'), { code: 'TEXTFILE_DIR_UNSAFE', message: /its directory .*\/file .* is not a directory/ });
  const open = join(dir, 'open');
  mkdirSync(open);
  chmodSync(open, 0o777);
  await t.rejects(writeAtomically(join(open, 'hostinfo.prom'), 'x 1\n'), { code: 'TEXTFILE_DIR_UNSAFE', message: /mode 0777\) is writable by everyone and not sticky/ });
  t.same(readdirSync(open), []);
  chmodSync(open, 0o1777);
  await writeAtomically(join(open, 'hostinfo.prom'), 'x 1\n');
  t.equal(readFileSync(join(open, 'hostinfo.prom'), 'utf8'), 'x 1\n', 'sticky and writable by all (like /tmp): others cannot rename or remove our file');
  await t.rejects(writeAtomically(join(dir, 'missing', 'hostinfo.prom'), 'x 1\n'), { code: 'TEXTFILE_WRITE', message: /^cannot write .*\/missing\/hostinfo\.prom: its directory .*ENOENT/ });
});

t.test('a symlink planted at the temporary name is never followed: a fresh name, or an error', async (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'hostinfo.prom');
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious\n');
  symlinkSync(victim, join(dir, '.planted'));
  symlinkSync(join(dir, 'would-be-created'), join(dir, '.dangling'));
  const temp = names(['.planted', '.dangling']);
  await writeAtomically(target, 'ok 1\n', temp.next);
  t.same(temp.given.slice(0, 2), ['.planted', '.dangling'], 'both planted names were tried first');
  t.equal(temp.given.length, 3, 'then a fresh one');
  t.equal(readFileSync(target, 'utf8'), 'ok 1\n');
  t.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the symlink\'s target is untouched');
  t.notOk(readdirSync(dir).includes('would-be-created'), 'a dangling symlink did not create its target (O_EXCL)');
  t.ok(lstatSync(join(dir, '.planted')).isSymbolicLink(), 'and someone else\'s entry is left alone');

  const always = (): string => '.planted';
  await t.rejects(writeAtomically(join(dir, 'other.prom'), 'no 1\n', always), { code: 'TEXTFILE_WRITE', message: /^cannot write .*\/other\.prom: a new temporary file in .*EEXIST/ });
  t.equal(readFileSync(victim, 'utf8'), 'precious\n');
  t.notOk(readdirSync(dir).includes('other.prom'));
});

t.test('a failed rename leaves no temporary file', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'hostinfo.prom'));
  writeFileSync(join(dir, 'hostinfo.prom', 'inside'), '');
  await t.rejects(writeAtomically(join(dir, 'hostinfo.prom'), 'x 1\n'), { code: 'TEXTFILE_WRITE', message: /rename of .*\.tmp over it/ });
  t.same(readdirSync(dir), ['hostinfo.prom']);
});

t.test('the writer never rejects, logs each distinct failure once and the recovery once, and skips a tick while busy', async (t) => {
  const dir = tempDir(t);
  const log = new RecordingLog();
  const writer = new TextfileWriter({ log });
  const target = join(dir, 'sub', 'hostinfo.prom');
  for (let i = 0; i < 5; i++) await writer.write(target, () => 'x 1\n');
  t.match(log.lines, [{ level: 'warn', event: 'metrics-textfile-failed', file: target, code: 'TEXTFILE_WRITE', err: /ENOENT/ }], 'five failures of one kind: one warning');
  mkdirSync(join(dir, 'sub'));
  chmodSync(join(dir, 'sub'), 0o777);
  for (let i = 0; i < 3; i++) await writer.write(target, () => 'x 1\n');
  t.equal(log.lines.length, 2, 'another problem: another warning');
  t.match(log.lines[1], { code: 'TEXTFILE_DIR_UNSAFE', err: /writable by everyone/ });
  chmodSync(join(dir, 'sub'), 0o755);
  await writer.write(target, () => 'x 2\n');
  await writer.write(target, () => 'x 3\n');
  t.match(log.lines.slice(2), [{ level: 'info', event: 'metrics-textfile-ok', file: target }], 'recovery logged once');
  t.equal(readFileSync(target, 'utf8'), 'x 3\n');

  await writer.write(target, () => { throw new Error('render bug'); });
  t.match(log.lines.at(-1), { level: 'warn', code: 'TEXTFILE_WRITE', err: /render bug/ }, 'a throwing render is a logged failure, not a rejection');
  t.equal(readFileSync(target, 'utf8'), 'x 3\n', 'the previous file stays');

  await writer.write(target, () => 'x 4\n');
  t.match(log.lines.at(-1), { level: 'info', event: 'metrics-textfile-ok' });
  const lines = log.lines.length;

  let rendered = 0;
  const render = (): string => `x ${++rendered}\n`;
  const first = writer.write(target, render);
  const skipped = Array.from({ length: 150 }, () => writer.write(target, render));
  await Promise.all([first, ...skipped]);
  t.equal(rendered, 1, 'the ticks that found a write running did not even render');
  t.equal(readFileSync(target, 'utf8'), 'x 1\n');
  t.match(log.lines.slice(lines), [
    { level: 'warn', event: 'metrics-textfile-skipped', file: target, skipped: 1 },
    { level: 'warn', event: 'metrics-textfile-skipped', file: target, skipped: 101 },
  ], '150 skips: logged at the first and the 101st');
  t.equal(log.lines.length, lines + 2, 'and the write that did happen logs nothing (it was no recovery)');
});
