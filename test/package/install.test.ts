// The installable package (issue 12, section 3): `npm pack` of this tree, `npm install -g` of the
// tarball into an empty prefix, and the installed commands run from that prefix, outside the
// repository, so that nothing resolves from the repository's own node_modules or sources. Every
// command runs under `env -i` (a bare environment, as a VM manager gives its hooks; it also drops
// the NODE_OPTIONS that tap's process-info hook adds to every child).

import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { QEMU_BINARY } from '../fixtures/qmp/qemu.js';

/** The repository: the compiled test sits in dist/test/package/. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; bin: Record<string, string> };
const npmMissing = spawnSync('npm', ['--version']).status === 0 ? false : 'npm is not installed';
const hasQemu = spawnSync(QEMU_BINARY, ['-version']).status === 0;

interface PackEntry { readonly path: string; readonly size: number; readonly mode: number }
interface PackResult { readonly filename: string; readonly size: number; readonly unpackedSize: number; readonly files: readonly PackEntry[] }

/** What must ship: the entry points, the unit, the hooks, the examples and the documents. */
const REQUIRED = [
  'package.json', 'README.md', 'SECURITY.md',
  'bin/hostinfo-qemu', 'bin/hostinfo-kvm', 'bin/hostinfo-ctl',
  'dist/launcher/main.js', 'dist/daemon/main.js', 'dist/sidecar/main.js', 'dist/ctl/main.js',
  'dist/bundle/package.json', 'dist/bundle/launcher/main.js', 'dist/bundle/sidecar/main.js',
  'examples/systemd/hostinfod.service', 'examples/systemd/README.md',
  'examples/libvirt/hooks/qemu', 'examples/libvirt/emulator-wrapper', 'examples/libvirt/hostinfo-channel.xml', 'examples/libvirt/hostinfo-serial.xml', 'examples/libvirt/hostinfo-vhostmd-channel.xml', 'examples/libvirt/hostinfo.toml',
  'examples/proxmox/hostinfo-hook', 'examples/hostinfo.toml', 'examples/policies/default.toml',
];

/** Runs `command` from the prefix in a bare environment, from a directory outside the repository. */
function runner(cwd: string, bin: string) {
  const path = `${bin}:/usr/local/bin:/usr/bin:/bin`;
  return (command: string, args: readonly string[], extraEnv: readonly string[] = []): SpawnSyncReturns<string> =>
    spawnSync('env', ['-i', `PATH=${path}`, `HOME=${cwd}`, ...extraEnv, command, ...args], { cwd, encoding: 'utf8', timeout: 30_000 });
}

t.test('npm pack, npm install -g into an empty prefix, and the installed commands', { skip: npmMissing, timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostinfo-package-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const npm = (args: readonly string[], cwd: string): SpawnSyncReturns<string> =>
    spawnSync('env', ['-u', 'NODE_OPTIONS', 'npm', ...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8', timeout: 60_000 });

  // --ignore-scripts: the tarball is what the build in dist/ is now (no prepack runs here).
  const packStarted = performance.now();
  const packed = npm(['pack', '--json', '--ignore-scripts', '--pack-destination', dir], ROOT);
  const packMs = performance.now() - packStarted;
  t.equal(packed.status, 0, `npm pack: ${packed.stderr}`);
  const [pack] = JSON.parse(packed.stdout) as PackResult[];
  if (pack === undefined) throw new Error(`npm pack printed no result: ${packed.stdout}`);
  const tarball = join(dir, pack.filename);
  t.comment(`${pack.filename}: ${pack.size} bytes (${pack.unpackedSize} unpacked, ${pack.files.length} files), packed in ${packMs.toFixed(0)} ms`);

  const files = pack.files.map((entry) => entry.path);
  for (const file of REQUIRED) t.ok(files.includes(file), `ships ${file}`);
  for (const [name, target] of Object.entries(PACKAGE.bin)) t.ok(files.includes(target), `ships the target of bin ${name} (${target})`);
  t.same(files.filter((file) => /^(test|bench|\.ci|node_modules)\/|^dist\/(test|bench)\//.test(file)), [], 'no tests, benchmarks, CI scripts or dependencies');
  t.same(files.filter((file) => /\.(ts|map)$/.test(file)), [], 'no TypeScript sources and no source maps (their sources do not ship)');
  // dist/ is not cleaned by `npm run build`: a compiled file whose source is gone would ship too.
  // A bundle (dist/bundle/<program>/main.js, tools/bundle.mjs) stands for its entry's source.
  const sourceOf = (file: string): string => file.slice('dist/'.length).replace(/^bundle\//, '').replace(/\.js$/, '.ts');
  const stale = files.filter((file) => file.startsWith('dist/') && file.endsWith('.js') && !existsSync(join(ROOT, sourceOf(file))));
  t.same(stale, [], 'every compiled file has its source (run `npm run clean && npm run build` before packing otherwise)');
  const modeOf = (path: string): number => pack.files.find((entry) => entry.path === path)?.mode ?? 0;
  // (dist/daemon/main.js is not: npm makes a bin target executable when it installs it.)
  for (const executable of ['bin/hostinfo-qemu', 'bin/hostinfo-kvm', 'bin/hostinfo-ctl', 'examples/libvirt/hooks/qemu', 'examples/libvirt/emulator-wrapper', 'examples/proxmox/hostinfo-hook']) {
    t.equal(modeOf(executable) & 0o111, 0o111, `${executable} is executable in the tarball (${modeOf(executable).toString(8)})`);
  }

  // The dependencies are in npm's cache after `npm ci`, but a global install resolves them anew
  // and needs their registry metadata, which `npm ci` does not cache: --offline when that is
  // cached too, else --prefer-offline (the registry only for what the cache lacks).
  const prefix = join(dir, 'prefix');
  const installStarted = performance.now();
  let mode = '--offline';
  let installed = npm(['install', '-g', '--prefix', prefix, mode, tarball], dir);
  if (installed.status !== 0 && /ENOTCACHED/.test(installed.stderr)) {
    mode = '--prefer-offline';
    installed = npm(['install', '-g', '--prefix', prefix, mode, tarball], dir);
  }
  const installMs = performance.now() - installStarted;
  t.equal(installed.status, 0, `npm install -g ${mode}: ${installed.stderr}`);
  t.comment(`installed with ${mode} in ${installMs.toFixed(0)} ms`);
  const bin = join(prefix, 'bin');
  const home = join(prefix, 'lib', 'node_modules', PACKAGE.name);
  for (const name of Object.keys(PACKAGE.bin)) t.doesNotThrow(() => accessSync(join(bin, name), constants.X_OK), `${name} is on the prefix's PATH`);
  for (const dependency of ['pino', 'smol-toml', 'systeminformation', 'ws']) t.ok(existsSync(join(home, 'node_modules', dependency, 'package.json')), `dependency ${dependency} installed with it`);
  t.notOk(existsSync(join(home, 'node_modules', 'tap')), 'no devDependencies');

  const cwd = join(dir, 'elsewhere');
  mkdirSync(cwd);
  const run = runner(cwd, bin);

  t.test('--help and --version', async (t) => {
    const qemu = run('hostinfo-qemu', ['--help']);
    t.equal(qemu.status, 0, `hostinfo-qemu --help: ${qemu.stderr}`);
    t.match(qemu.stdout, /^Usage: hostinfo-qemu /);
    for (const command of ['hostinfo-ctl', 'hostinfod']) {
      const help = run(command, ['--help']);
      t.equal(help.status, 0, `${command} --help: ${help.stderr}`);
      t.match(help.stdout, new RegExp(`^Usage: ${command} `));
      const version = run(command, ['--version']);
      t.equal(version.stdout, `${command} ${PACKAGE.version}\n`, `${command} --version`);
    }
    const sidecar = run('node', [join(home, 'dist/sidecar/main.js'), '--help']);
    t.match(sidecar.stdout, /^Usage: hostinfo-sidecar /, 'the sidecar the daemon starts from the package');
  });

  // hostinfo-kvm takes QEMU's own arguments only (no --help of its own): a probe such as -version
  // goes through the shell front and the planner, which hand it to QEMU untouched.
  t.test('hostinfo-kvm passes a probe to QEMU', { skip: hasQemu ? false : `${QEMU_BINARY} is not installed` }, async (t) => {
    const probe = run('hostinfo-kvm', ['-version'], process.env['QEMU_SYSTEM_X86_64'] === undefined ? [] : [`HOSTINFO_QEMU=${QEMU_BINARY}`]);
    t.equal(probe.status, 0, `hostinfo-kvm -version: ${probe.stderr}`);
    t.match(probe.stdout, /^QEMU emulator version \d+\.\d+/);
    t.notMatch(probe.stderr, /planner failed/, 'the planner ran from the package');
  });

  t.test('hostinfo-ctl check on the shipped example and on a broken config', async (t) => {
    const example = run('hostinfo-ctl', ['--config', join(home, 'examples/hostinfo.toml'), 'check']);
    t.equal(example.status, 0, `the shipped examples/hostinfo.toml with its policies/: ${example.stdout}${example.stderr}`);
    t.match(example.stdout, /\b0 errors\b/);
    const broken = join(dir, 'broken.toml');
    writeFileSync(broken, 'enabled = "yes"\n');
    const refused = run('hostinfo-ctl', ['--config', broken, 'check']);
    t.equal(refused.status, 1, 'exit 1 on an invalid config');
    t.match(`${refused.stdout}${refused.stderr}`, new RegExp(`${broken}:1: key "enabled": expected a boolean`), 'the error names file, line and key');
  });

  t.test('the installed daemon runs and hostinfo-ctl reaches it', async (t) => {
    const site = join(dir, 'site');
    mkdirSync(join(site, 'policies'), { recursive: true });
    writeFileSync(join(site, 'hostinfo.toml'), 'enabled = true\npolicy_dir = "policies"\nruntime_dir = "run"\n');
    writeFileSync(join(site, 'policies', 'default.toml'), readFileSync(join(home, 'examples/policies/default.toml')));
    const config = join(site, 'hostinfo.toml');
    const daemon = spawn('env', ['-i', `PATH=${bin}:/usr/bin:/bin`, 'hostinfod', '--config', config, '--foreground'], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    daemon.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
    t.teardown(() => void (daemon.exitCode === null && daemon.kill('SIGKILL')));
    const deadline = Date.now() + 20_000;
    let status = run('hostinfo-ctl', ['--config', config, 'status', '--json']);
    while (status.status !== 0 && daemon.exitCode === null && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      status = run('hostinfo-ctl', ['--config', config, 'status', '--json']);
    }
    t.equal(status.status, 0, `hostinfo-ctl status: ${status.stderr} (daemon: ${stderr.slice(0, 500)})`);
    t.match(JSON.parse(status.stdout || '{}'), { type: 'status', version: PACKAGE.version, vmcount: 0, vms: [] });
    daemon.kill('SIGTERM');
    t.equal(await exited, 0, 'SIGTERM: exit 0');
  });
});
