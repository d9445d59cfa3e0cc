// The bundles `npm run build` makes (tools/bundle.mjs) and who runs them: hostinfod spawns the
// sidecar's, the fronts run the planner's; either only when it is at least as new as tsc's entry
// (a plain `tsc` since leaves it stale), else tsc's entry. The built tree's own bundles are checked
// to be the same programs, the sidecar's without ws's client or pino.

import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { SIDECAR_BUNDLE, SIDECAR_MAIN, sidecarMain } from '../../daemon/sidecar-launch.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

t.test('the bundle when it is at least as new as tsc\'s entry, else the entry', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostinfo-bundle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bundle = join(dir, 'bundle.js');
  const compiled = join(dir, 'main.js');
  writeFileSync(compiled, '');
  t.equal(sidecarMain(bundle, compiled), compiled, 'no bundle: tsc\'s entry');
  writeFileSync(bundle, '');
  utimesSync(compiled, 1_000, 1_000);
  utimesSync(bundle, 2_000, 2_000);
  t.equal(sidecarMain(bundle, compiled), bundle, 'bundle built after tsc');
  utimesSync(compiled, 3_000, 3_000);
  t.equal(sidecarMain(bundle, compiled), compiled, 'tsc ran after the bundle: the bundle is stale');
});

t.test('the built tree spawns its bundle, a hostinfo-sidecar without ws or pino in it', async (t) => {
  t.equal(sidecarMain(), SIDECAR_BUNDLE, 'npm run build made the bundle after tsc');
  const help = spawnSync(process.execPath, [SIDECAR_BUNDLE, '--help'], { encoding: 'utf8' });
  t.equal(help.status, 0);
  t.match(help.stdout, /^Usage: hostinfo-sidecar /);
  const compiledHelp = spawnSync(process.execPath, [SIDECAR_MAIN, '--help'], { encoding: 'utf8' });
  t.equal(help.stdout, compiledHelp.stdout, 'the same program as tsc\'s entry');
  const text = readFileSync(SIDECAR_BUNDLE, 'utf8');
  t.notMatch(text, /node_modules\/(ws|pino)\//, 'ws\'s client and pino are not bundled');
  t.notMatch(text, /require\("(node:)?(http|https|tls|zlib)"\)/, 'nor node:http, https, tls or zlib');
});

t.test('the fronts run the bundled planner unless it is missing or stale', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostinfo-front-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'bin'));
  mkdirSync(join(dir, 'dist', 'launcher'), { recursive: true });
  mkdirSync(join(dir, 'dist', 'bundle', 'launcher'), { recursive: true });
  // Stand-in planners: each prints the shell its front evaluates.
  const compiled = join(dir, 'dist', 'launcher', 'main.js');
  const bundle = join(dir, 'dist', 'bundle', 'launcher', 'main.js');
  writeFileSync(compiled, "process.stdout.write('echo compiled')\n");
  for (const front of ['hostinfo-qemu', 'hostinfo-kvm']) {
    copyFileSync(join(ROOT, 'bin', front), join(dir, 'bin', front));
    chmodSync(join(dir, 'bin', front), 0o755);
  }
  const ran = (front: string): string => spawnSync(join(dir, 'bin', front), ['-S'], { encoding: 'utf8', env: { PATH: process.env['PATH'], HOSTINFO_NODE: process.execPath } }).stdout.trim();
  for (const front of ['hostinfo-qemu', 'hostinfo-kvm']) t.equal(ran(front), 'compiled', `${front}, no bundle`);
  writeFileSync(bundle, "process.stdout.write('echo bundled')\n");
  utimesSync(compiled, 1_000, 1_000);
  utimesSync(bundle, 2_000, 2_000);
  for (const front of ['hostinfo-qemu', 'hostinfo-kvm']) t.equal(ran(front), 'bundled', `${front}, bundle newer`);
  utimesSync(compiled, 3_000, 3_000);
  for (const front of ['hostinfo-qemu', 'hostinfo-kvm']) t.equal(ran(front), 'compiled', `${front}, bundle stale`);
});

t.test('the built planner bundle is the planner', async (t) => {
  const bundle = join(ROOT, 'dist', 'bundle', 'launcher', 'main.js');
  const compiled = join(ROOT, 'dist', 'launcher', 'main.js');
  for (const flag of ['--help', '--version']) {
    const bundled = spawnSync(process.execPath, [bundle, flag], { encoding: 'utf8' });
    t.equal(bundled.status, 0, `${flag}: ${bundled.stderr}`);
    t.equal(bundled.stdout, spawnSync(process.execPath, [compiled, flag], { encoding: 'utf8' }).stdout, `${flag} as tsc's entry answers`);
  }
  // The daemon it would autostart is found where tsc put it (import.meta.url in a CommonJS bundle).
  t.match(readFileSync(bundle, 'utf8'), /new URL\("\.\.\/daemon\/main\.js",__entryUrl\)/);
});
