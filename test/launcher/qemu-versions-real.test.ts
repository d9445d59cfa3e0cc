// The launcher's reading of QEMU's options, held against each real QEMU of
// test/helpers/qemu-versions.ts: for every option that QEMU's -help lists, and every option the
// version data names, the planner (for that QEMU's version) must read it as the binary itself
// does. Whether a binary takes a value is seen from `qemu -X -version -M help`:
//   - a flag: -version runs and prints the version (QEMU acts on -version while parsing);
//   - a value: "-version" became its value, so `-M help` lists the machines, or QEMU refuses the
//     value with an error located at "-X -version:" (both words: vl.c loc_set_cmdline for an
//     option with HAS_ARG);
//   - unknown: "-X: invalid option" (vl.c lookup_opt, in the first pass over argv);
//   - another target's option: "Option not supported for this target".
// Also: the version the launcher reads (-version) is the one QMP reports.

import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { probeQemuVersion } from '../../launcher/qemu-version-probe.js';
import { optionArityOn, VERSIONED_OPTIONS } from '../../launcher/qemu-versions.js';
import { forEachQemu, qemuLegs } from '../helpers/qemu-versions.js';

type Reading = 'flag' | 'value' | 'unknown' | 'other-target' | 'undetermined';
/** Options that exit before QEMU reads the next word, printing neither a version nor an error of theirs. */
const EXIT_AT_ONCE: Readonly<Record<string, string>> = { 'audio-help': 'prints the audio help and exits (7.2)' };
const PARALLEL = 4;

function run(binary: string, args: readonly string[], cwd: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(binary, args, { cwd, timeout: 10_000, killSignal: 'SIGKILL', maxBuffer: 1 << 20, encoding: 'utf8' }, (_error, stdout, stderr) => resolve(`${stdout}\n${stderr}`));
  });
}

async function readingOf(binary: string, name: string, cwd: string): Promise<Reading> {
  // Run in a directory of its own: some options act on their value at once (-D creates the file "-version").
  const out = await run(binary, [`-${name}`, '-version', '-M', 'help'], cwd);
  if (/^QEMU emulator version /m.test(out)) return 'flag';
  if (out.includes(`-${name}: invalid option`)) return 'unknown';
  if (out.includes('not supported for this target')) return 'other-target';
  if (out.includes('Supported machines are:') || out.includes(`-${name} -version:`)) return 'value';
  return 'undetermined';
}

forEachQemu(t, await qemuLegs(), async (t, qemu) => {
  t.test('the launcher reads every option as this QEMU does', async (t) => {
    const cwd = await mkdtemp(join(tmpdir(), 'hi-qopt-'));
    t.teardown(() => rm(cwd, { recursive: true, force: true }));
    const help = await run(qemu.binary, ['-help'], cwd);
    const listed = [...help.matchAll(/^-([A-Za-z0-9][\w-]*)/gm)].map((m) => m[1] ?? '');
    t.ok(listed.length > 80, `${listed.length} options in -help`);
    const names = [...new Set([...listed, ...Object.keys(VERSIONED_OPTIONS)])].sort();
    const readings = new Map<string, Reading>();
    for (let at = 0; at < names.length; at += PARALLEL) {
      const batch = names.slice(at, at + PARALLEL);
      for (const [i, reading] of (await Promise.all(batch.map((name) => readingOf(qemu.binary, name, cwd)))).entries()) readings.set(batch[i] ?? '', reading);
    }
    const wrong: string[] = [];
    for (const [name, reading] of readings) {
      const planned = optionArityOn(name, qemu.version);
      if (reading === 'flag' || reading === 'value') {
        if (planned !== reading) wrong.push(`-${name}: QEMU reads a ${reading}, the launcher ${planned}`);
      } else if (reading === 'unknown' && Object.hasOwn(VERSIONED_OPTIONS, name)) {
        if (planned !== 'unknown') wrong.push(`-${name}: not an option of ${qemu.label}, the version data says it is`);
      } else if (reading === 'undetermined' && !Object.hasOwn(EXIT_AT_ONCE, name)) {
        wrong.push(`-${name}: neither a flag, a value nor unknown to ${qemu.label}`);
      }
    }
    t.same(wrong, [], `all ${readings.size} options read as ${qemu.label} reads them`);
    const count = (kind: Reading): number => [...readings.values()].filter((reading) => reading === kind).length;
    t.ok(count('flag') > 20 && count('value') > 50, `flags ${count('flag')}, values ${count('value')}, unknown ${count('unknown')}: the probe tells them apart`);
  });

  t.test("the launcher's version (-version) is the one QMP reports (query-version, the guest's hypervisor)", async (t) => {
    const child = spawn(qemu.binary, ['-M', 'none', '-S', '-nodefaults', '-display', 'none', '-qmp', 'stdio'], { stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    t.teardown(() => child.kill('SIGKILL'));
    child.stdin.end('{"execute":"qmp_capabilities"}\n{"execute":"query-version"}\n{"execute":"quit"}\n');
    await exited;
    const reply = out.split('\n').map((line) => (line.startsWith('{') ? (JSON.parse(line) as { return?: { qemu?: unknown } }) : {})).find((m) => m.return?.qemu !== undefined);
    t.same(reply?.return?.qemu, qemu.version, out);
    t.same(await probeQemuVersion(qemu.binary), qemu.version);
  });
});
