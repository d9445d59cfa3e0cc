// Shared by the guest kit's tests (examples/guest-kit/): where its files are, running the shell
// client under each shell there is, the testdata cases, the metric tables of both clients, a
// small reader of the udev rule, and an initramfs with the kit installed in /usr/local/bin.

import { execFile, spawnSync } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The compiled file sits in dist/test/guest-kit/: the repository is three levels up.
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const KIT = path.join(REPO, 'examples', 'guest-kit');
export const CLIENT = path.join(KIT, 'hostinfo');
export const TEXTFILE = path.join(KIT, 'hostinfo-textfile');
export const TESTDATA = path.join(KIT, 'testdata');
export const kitFile = (name: string): string => readFileSync(path.join(KIT, name), 'utf8');

export interface Shell {
  readonly name: string;
  readonly argv: readonly string[];
}
/** The POSIX shells the client is written for, those installed here. busybox's sh runs its own
 * awk applet; dash and bash run the system awk (mawk on Debian). */
export const SHELLS: readonly Shell[] = [
  { name: 'dash', argv: ['dash'] },
  { name: 'bash', argv: ['bash', '--posix'] },
  { name: 'busybox', argv: ['busybox', 'sh'] },
].filter((shell) => spawnSync(shell.argv[0]!, [...shell.argv.slice(1), '-c', 'exit 0']).status === 0);

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** `SHELL CLIENT ARGS...` (or another script of the kit), bounded by `limitMs`. */
export function runClient(shell: Shell, args: readonly string[], options: { env?: NodeJS.ProcessEnv; script?: string; limitMs?: number } = {}): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(shell.argv[0]!, [...shell.argv.slice(1), options.script ?? CLIENT, ...args], { env: { ...process.env, ...options.env }, timeout: options.limitMs ?? 20_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}

// ------------------------------------------------------------------------------------ testdata

export interface Case {
  readonly name: string;
  readonly replies: string;
  readonly exit: number;
  readonly stderr: readonly string[];
  /** The case whose expected documents (.json, .prom, .influx) this one must print. */
  readonly documents: string;
}

/** testdata/<name>.replies with its `# expect ...` header lines. */
export function testCases(): Case[] {
  return readdirSync(TESTDATA).filter((file) => file.endsWith('.replies')).sort().map((file) => {
    const name = file.replace(/\.replies$/, '');
    const text = readFileSync(path.join(TESTDATA, file), 'utf8');
    const expect = [...text.matchAll(/^# expect (\S+) ?(.*)$/gm)].map((m) => [m[1] ?? '', m[2] ?? ''] as const);
    const exit = expect.find(([key]) => key === 'exit')?.[1];
    if (exit === undefined) throw new Error(`${file}: no "# expect exit N" line`);
    return {
      name,
      replies: path.join(TESTDATA, file),
      exit: Number(exit),
      stderr: expect.filter(([key]) => key === 'stderr').map(([, value]) => value),
      documents: expect.find(([key]) => key === 'documents')?.[1] ?? name,
    };
  });
}

export const MODES = [
  { flag: '--json', ext: 'json' },
  { flag: '--prometheus', ext: 'prom' },
  { flag: '--influx', ext: 'influx' },
] as const;

export const expected = (documents: string, ext: string): string => readFileSync(path.join(TESTDATA, `${documents}.${ext}`), 'utf8');

/** The lines between "metric table begin" and "metric table end" as item -> spec. */
export function metricTable(text: string, file: string): Map<string, string> {
  const body = /metric table begin\n([\s\S]*?)\n\s*# metric table end/.exec(text)?.[1];
  if (body === undefined) throw new Error(`${file}: no metric table`);
  const table = new Map<string, string>();
  for (const line of body.split('\n')) {
    if (/^\s*(\$Metrics = @\{|\})\s*$/.test(line)) continue; // hostinfo.ps1's hashtable brackets
    const m = /^\s*(?:m\["(\w+)"\]|'(\w+)')\s*=\s*["'](.*)["']\s*$/.exec(line);
    if (m === null) throw new Error(`${file}: unexpected line in the metric table: ${line}`);
    table.set(m[1] ?? m[2] ?? '', m[3] ?? '');
  }
  return table;
}

// ---------------------------------------------------------------------------------- udev rules

export interface UdevCondition {
  readonly key: string;
  readonly op: '==' | '!=';
  readonly value: string;
}
export interface UdevRule {
  readonly conditions: readonly UdevCondition[];
  readonly assignments: ReadonlyMap<string, string>;
}

/** Rules as udev reads them: KEY{attr}OP"value", comma separated; `#` lines are comments. */
export function parseUdevRules(text: string): UdevRule[] {
  return text.split('\n').filter((line) => line.trim() !== '' && !line.trimStart().startsWith('#')).map((line) => {
    const conditions: UdevCondition[] = [];
    const assignments = new Map<string, string>();
    for (const part of line.split(/,\s*/)) {
      const m = /^([A-Z_]+(?:\{[^}]+\})?)(==|!=|\+=|=)"([^"]*)"$/.exec(part.trim());
      if (m === null) throw new Error(`udev: cannot read ${JSON.stringify(part)} in ${line}`);
      const [, key = '', op = '', value = ''] = m;
      if (op === '==' || op === '!=') conditions.push({ key, op, value });
      else assignments.set(op === '+=' ? `${key}+` : key, value);
    }
    return { conditions, assignments };
  });
}

/** A device as the guest's sysfs describes it. */
export interface SysDevice {
  readonly subsystem: string;
  readonly kernel: string;
  readonly attrs: ReadonlyMap<string, string>;
}

/** Whether `rule` matches `device` (only the condition keys this kit uses). */
export function udevMatches(rule: UdevRule, device: SysDevice): boolean {
  return rule.conditions.every(({ key, op, value }) => {
    const attr = /^ATTR\{(.+)\}$/.exec(key)?.[1];
    const actual = key === 'SUBSYSTEM' ? device.subsystem : key === 'KERNEL' ? device.kernel : attr !== undefined ? device.attrs.get(attr) : undefined;
    if (actual === undefined && attr === undefined) throw new Error(`udev key ${key} is not known to this test`);
    return op === '==' ? actual === value : actual !== value;
  });
}

// ------------------------------------------------------------------------------------ initramfs

function exec(cmd: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, _stdout, stderr) => (err === null ? resolve() : reject(new Error(`${cmd} failed: ${stderr}`))));
  });
}

/**
 * Appends the kit (hostinfo, hostinfo-textfile in /usr/local/bin) to an initrd that
 * examples/guest/with-script.sh made: Linux unpacks concatenated archives in order.
 */
export async function addKit(initrd: string): Promise<void> {
  const stage = await mkdtemp(path.join(tmpdir(), 'hikit-'));
  try {
    await mkdir(path.join(stage, 'usr/local/bin'), { recursive: true });
    for (const [from, to] of [[CLIENT, 'hostinfo'], [TEXTFILE, 'hostinfo-textfile']] as const) {
      await exec('install', ['-m', '0755', from, path.join(stage, 'usr/local/bin', to)]);
    }
    const archive = path.join(stage, 'kit.cpio.gz');
    await exec('sh', ['-c', 'cd "$1" && printf "%s\\n" usr usr/local usr/local/bin usr/local/bin/hostinfo usr/local/bin/hostinfo-textfile | cpio --quiet -o -H newc -R 0:0 --reproducible | gzip -n -1 >"$2"', 'sh', stage, archive]);
    await appendFile(initrd, readFileSync(archive));
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------- phase scripts

/**
 * Shell functions for a script that runs the client in phases, in a guest or on a pty here:
 * `run LABEL CMD...` prints one block, "BEGIN LABEL", its stdout lines as "O ...", its stderr
 * as "E ...", then "END LABEL rc=N cs=N at=N" (centiseconds of /proc/uptime: how long, and when
 * it started). A block is written with one write, so concurrent runs do not interleave. $T is
 * a scratch directory.
 */
export const PHASE_PRELUDE = String.raw`
cs() { read -r u _ </proc/uptime; echo $((${'${u%.*}'} * 100 + 1${'${u#*.}'} - 100)); }
run() {
  l=$1; shift
  s=$(cs); "$@" >"$T/$l.out" 2>"$T/$l.err"; rc=$?; e=$(cs)
  { echo "BEGIN $l"; sed 's/^/O /' "$T/$l.out"; sed 's/^/E /' "$T/$l.err"; echo "END $l rc=$rc cs=$((e - s)) at=$s"; } >"$T/$l.block"
  cat "$T/$l.block"
}
`;

export interface Block {
  readonly rc: number;
  /** Centiseconds it took, and its start on the guest's clock. */
  readonly cs: number;
  readonly at: number;
  readonly out: string;
  readonly err: readonly string[];
}

/** The `run` blocks of a phase script's output, by label. */
export function blocksOf(text: string): Map<string, Block> {
  const blocks = new Map<string, Block>();
  for (const m of text.replace(/\r/g, '').matchAll(/^BEGIN (\S+)\n([\s\S]*?)^END \1 rc=(\d+) cs=(\d+) at=(\d+)$/gm)) {
    const lines = (m[2] ?? '').split('\n').filter((line) => line !== '');
    blocks.set(m[1] ?? '', {
      rc: Number(m[3]), cs: Number(m[4]), at: Number(m[5]),
      out: lines.filter((line) => line.startsWith('O ')).map((line) => `${line.slice(2)}\n`).join(''),
      err: lines.filter((line) => line.startsWith('E ')).map((line) => line.slice(2)),
    });
  }
  return blocks;
}
