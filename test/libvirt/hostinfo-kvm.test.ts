// bin/hostinfo-kvm without libvirt: finds the real QEMU past itself, passes probes through, and
// fails soft (one stderr line, QEMU starts plain) when it cannot register.

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { findQemu } from '../../launcher/qemu-binary.js';
import { REPO } from '../e2e/harness.js';

const KVM = path.join(REPO, 'bin', 'hostinfo-kvm');
const dir = mkdtempSync(path.join(tmpdir(), 'hikvm-unit-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const first = path.join(dir, 'first');
mkdirSync(first);
for (const name of ['kvm', 'qemu-system-x86_64', 'qemu-kvm']) symlinkSync(KVM, path.join(first, name));
const PATH = `${first}:${process.env['PATH'] ?? '/usr/bin:/bin'}`;

t.test('findQemu skips candidates that resolve to hostinfo-kvm', async (t) => {
  const found = findQemu(undefined, { PATH }, { skip: [KVM], firstCandidates: ['kvm'] });
  t.ok(found.found && !found.path.startsWith(first), `past the symlinks to itself: ${JSON.stringify(found)}`);
  t.same(findQemu(undefined, { PATH: first }, { skip: [KVM] }).found, false, 'only itself on PATH: nothing');
});

t.test('-version through `kvm` first on PATH is the real QEMU', async (t) => {
  for (const name of ['kvm', 'qemu-system-x86_64', 'qemu-kvm']) {
    const r = spawnSync(name, ['-version'], { env: { PATH }, encoding: 'utf8' });
    t.equal(r.status, 0, `${name} -version`);
    t.match(r.stdout, /^QEMU emulator version/, `${name}: QEMU answered`);
  }
});

t.test('without node the script still starts QEMU, with one line', async (t) => {
  const r = spawnSync('kvm', ['-version'], { env: { PATH, HOSTINFO_NODE: '/nonexistent/node' }, encoding: 'utf8' });
  t.equal(r.status, 0);
  t.match(r.stdout, /^QEMU emulator version/);
  t.match(r.stderr, /hostinfo-kvm: the planner failed/);
});

t.test('cannot register: one stderr line, QEMU starts plain', async (t) => {
  const config = path.join(dir, 'hostinfo.toml');
  const unsafe = path.join(dir, 'unsafe');
  mkdirSync(unsafe);
  chmodSync(unsafe, 0o777);
  writeFileSync(config, `enabled = true\nruntime_dir = ${JSON.stringify(unsafe)}\n`);
  const r = spawnSync('kvm', ['-accel', 'tcg', '-M', 'pc', '-nodefaults', '-display', 'none', '-S', '-name', 'soft', '-qmp', 'stdio'],
    { env: { PATH, HOSTINFO_CONFIG: config }, input: '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n', encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0, 'QEMU ran and quit');
  t.match(r.stdout, /"QMP"/, 'QEMU answered QMP');
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('hostinfo-kvm:'));
  t.equal(lines.length, 1, `one line: ${r.stderr}`);
  t.match(lines[0] ?? '', /starting QEMU without hostinfo$/);
});

t.test('no daemon running: hostinfo-kvm starts none (it would live in the VM manager\'s cgroup), QEMU starts plain', async (t) => {
  const runtime = path.join(dir, 'no-daemon');
  const config = path.join(dir, 'no-daemon.toml');
  writeFileSync(config, `enabled = true\nruntime_dir = ${JSON.stringify(runtime)}\n`);
  const r = spawnSync('kvm', ['-accel', 'tcg', '-M', 'pc', '-nodefaults', '-display', 'none', '-S', '-name', 'nodaemon', '-qmp', 'stdio'],
    { env: { PATH, HOSTINFO_CONFIG: config }, input: '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n', encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0, 'QEMU ran and quit');
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('hostinfo-kvm:'));
  t.equal(lines.length, 1, `one line: ${r.stderr}`);
  t.match(lines[0] ?? '', /no hostinfod answers on .*hostinfod\.sock; run it as the host's service .*starting QEMU without hostinfo$/);
  const daemons = spawnSync('pgrep', ['-f', '--', `--runtime-dir ${runtime}`], { encoding: 'utf8' }).stdout.trim();
  t.equal(daemons, '', 'no hostinfod was started');
});
