// The planner's stdout is shell that bin/hostinfo-qemu evaluates (`plan=$(node main.js "$@")`,
// then `eval "$plan"`): every word must reach QEMU's argv exactly, and no word may run anything.
// Checked on a real sh (dash here, like Debian's /bin/sh), and on bash and busybox sh when present.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { execScript, exitScript, shellQuote } from '../../launcher/shell-plan.js';

const dir = await mkdtemp(join(tmpdir(), 'hostinfo-shell-plan-'));
const planted = join(dir, 'pwned');
/** Stands in for QEMU: prints its pid and argv as JSON. */
const echoArgv = join(dir, 'echo-argv.mjs');
await writeFile(echoArgv, 'process.stdout.write(JSON.stringify({ pid: process.pid, argv: process.argv.slice(2) }));\n');

const NASTY = [
  '', ' ', 'a b', '  two  spaces  ', "'", "''", "it's", '"', '"quoted"', '\\', '\\\\', "\\'", 'back\\slash\\n',
  '\n', 'line1\nline2', 'trailing newline\n\n', '\t', '$HOME', '${HOME}', '$(touch ' + planted + ')', '`touch ' + planted + '`',
  ';touch ' + planted, '&& touch ' + planted, '| touch ' + planted, '*', '?', '~', '~root', '!', '#not a comment', '-e', '-n', '--',
  '%s%d%%', "'; exit 9; '", '\'"\'"\'', 'caf\u00e9 \u{1f600}', '\x01\x1b[31m', 'x=y', '>out', '<in', '(', ')', '{', '}',
];

/** What the front does with the planner's stdout: command substitution, then eval. */
const FRONT_LIKE = 'plan=$(cat -- "$1") || exit; printf "%s" "$$" >&2; eval "$plan"';

const shells = [['sh'], ['bash', '--posix'], ['busybox', 'sh']].filter(([shell]) => spawnSync('sh', ['-c', `command -v ${shell ?? ''}`]).status === 0);

async function evaluate(shell: readonly string[], plan: string): Promise<{ status: number | null; stdout: string; shellPid: number }> {
  const file = join(dir, `plan-${Math.random().toString(36).slice(2)}`);
  await writeFile(file, plan);
  const [bin, ...args] = shell;
  const run = spawnSync(bin ?? 'sh', [...args, '-c', FRONT_LIKE, 'front', file], { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, shellPid: Number(run.stderr) };
}

t.test('shellQuote: single quotes, a quote as \'\\\'\'', async (t) => {
  t.equal(shellQuote(''), "''");
  t.equal(shellQuote('a b'), "'a b'");
  t.equal(shellQuote("it's"), "'it'\\''s'");
  t.equal(shellQuote('$x\\'), "'$x\\'");
});

for (const shell of shells) {
  t.test(`${shell.join(' ')}: execScript gives the program exactly these words, as the same process`, async (t) => {
    const run = await evaluate(shell, execScript(process.execPath, [echoArgv, ...NASTY]));
    t.equal(run.status, 0);
    const seen = JSON.parse(run.stdout) as { pid: number; argv: string[] };
    t.same(seen.argv, NASTY, 'every word arrives unchanged, empty ones included');
    t.equal(seen.pid, run.shellPid, 'exec: the program runs as the shell\'s own pid');
    t.notOk(existsSync(planted), 'no word was run as a command');
    // One word at a time too (first, last and only position), through printf(1) as the program.
    for (const word of NASTY) {
      const one = await evaluate(shell, execScript('printf', ['<%s>', word]));
      t.equal(one.stdout, `<${word}>`, `alone: ${JSON.stringify(word)}`);
    }
  });

  t.test(`${shell.join(' ')}: a binary path with spaces and quotes, and no arguments`, async (t) => {
    const odd = join(dir, "my 'node' $bin");
    spawnSync('ln', ['-s', process.execPath, odd]);
    const run = await evaluate(shell, execScript(odd, [echoArgv]));
    t.same((JSON.parse(run.stdout) as { argv: string[] }).argv, []);
  });

  t.test(`${shell.join(' ')}: exitScript prints its text byte for byte and exits with the status`, async (t) => {
    for (const text of ['', 'Usage: x\n', ...NASTY, NASTY.join('\n'), 'ends with newlines\n\n\n']) {
      const run = await evaluate(shell, exitScript(3, text));
      t.equal(run.status, 3, `status for ${JSON.stringify(text)}`);
      t.equal(run.stdout, text, `text ${JSON.stringify(text)}`);
    }
    const quiet = await evaluate(shell, exitScript(0));
    t.same([quiet.status, quiet.stdout], [0, ''], 'exit 0, nothing printed');
    t.equal((await evaluate(shell, exitScript(127))).status, 127);
    t.equal((await evaluate(shell, exitScript(2, '%s\\n$HOME')).then((r) => r.stdout)), '%s\\n$HOME', 'printf does not interpret the text');
    t.notOk(existsSync(planted), 'no text was run as a command');
  });
}

t.test('at least sh was tried', async (t) => {
  t.ok(shells.some(([shell]) => shell === 'sh'));
});
