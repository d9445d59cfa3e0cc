// hostinfo-qemu as users run it: bin/hostinfo-qemu (the POSIX-sh front) planning with the
// launcher and then exec-ing a real, paused, device-less QEMU. Its own options and exit statuses,
// probes passed through untouched, a broken setup that still starts QEMU, the VM registered under
// vms/, the daemon autostarted once in a session of its own. The process model's promises (pid,
// fds, -daemonize, signals, hostile names and runtime dirs) are in process-model.test.ts; guest
// behaviour is in test/e2e.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pty from 'node-pty';
import t from 'tap';
import { HOSTINFO_VERSION } from '../../common/version.js';
import { probeDaemon } from '../../launcher/daemon-starter.js';
import { QmpClient } from '../../sidecar/qmp/index.js';
import { binPath, withTimeout } from '../helpers/logged-process.js';
import { FRONT, launchVm, makeSite, PAUSED_VM, status } from '../helpers/served-vm.js';
import { alive, cmdlineOf, daemonsOf, exeOf, fdLinks, procStat, QEMU_EXE, runFront, servedVm, until, userEnv } from './front.js';

const PLANNER = binPath('launcher/main.js');

t.test('its own options: --help, --version; unknown options exit 2, no QEMU 127', async (t) => {
  const help = runFront(t, ['--help']);
  t.same(await help.exited, { code: 0, signal: null });
  t.match(help.stdout(), /^Usage: hostinfo-qemu [^]* -- <qemu args>\n[^]*-daemonize/);
  const version = runFront(t, ['--version']);
  t.same(await version.exited, { code: 0, signal: null });
  t.equal(version.stdout(), `hostinfo-qemu ${HOSTINFO_VERSION}\n`);
  const unknown = runFront(t, ['-nographic', '-m', '1G']);
  t.same(await unknown.exited, { code: 2, signal: null });
  t.equal(unknown.stderr(), 'hostinfo-qemu: unknown option "-nographic"; QEMU\'s arguments go after --, as in: hostinfo-qemu -- -nographic -m 1G\nTry hostinfo-qemu --help.\n');
  t.equal(unknown.stdout(), '');
  const none = runFront(t, ['--config', '/nonexistent.toml']);
  t.same(await none.exited, { code: 2, signal: null });
  t.match(none.stderr(), 'no QEMU arguments');
  const missing = runFront(t, ['--qemu', '/nonexistent/qemu', '--', '-version']);
  t.same(await missing.exited, { code: 127, signal: null });
  t.match(missing.stderr(), 'no QEMU binary found (tried /nonexistent/qemu)');
  const fromEnv = runFront(t, ['--', '-version'], { env: { HOSTINFO_QEMU: 'no-such-qemu-binary' } });
  t.same(await fromEnv.exited, { code: 127, signal: null });
  t.match(fromEnv.stderr(), 'tried no-such-qemu-binary');
});

t.test('questions to QEMU pass through untouched, as QEMU itself, and need no config', async (t) => {
  const site = await makeSite(t);
  const noConfig = ['--config', '/nonexistent.toml', '--runtime-dir', site.runtime, '--'];
  const version = runFront(t, [...noConfig, '-version']);
  t.same(await version.exited, { code: 0, signal: null });
  t.match(version.stdout(), /^QEMU emulator version \d+\.\d+/);
  t.equal(version.stderr(), '', 'nothing said about hostinfo');
  const devices = runFront(t, [...noConfig, '-device', 'help']);
  t.same(await devices.exited, { code: 0, signal: null });
  t.match(devices.stdout(), /name "isa-serial"/);

  // libvirt's capability probe stays running: it must be plain QEMU, with exactly its arguments.
  const qmpSocket = join(site.dir, 'probe-qmp.sock');
  const probeArgs = ['-S', '-no-user-config', '-nodefaults', '-nographic', '-machine', 'none,accel=tcg', '-qmp', `unix:${qmpSocket},server=on,wait=off`];
  const probe = runFront(t, [...noConfig, ...probeArgs]);
  const qmp = new QmpClient();
  await withTimeout((async () => {
    while (!existsSync(qmpSocket)) await new Promise((resolve) => setTimeout(resolve, 20));
  })(), 'the probe to listen on QMP');
  await qmp.connect(qmpSocket);
  t.equal(exeOf(probe.pid), QEMU_EXE, 'the pid started is QEMU');
  t.same(cmdlineOf(probe.pid), [QEMU_EXE, ...probeArgs], 'with exactly the probe\'s arguments');
  await qmp.close();
  probe.child.kill('SIGKILL');
  await probe.exited;
  t.notOk(existsSync(site.runtime), 'no runtime directory was made');
  t.same(daemonsOf(site.runtime), [], 'no daemon was started');
});

t.test('a broken host config: QEMU starts without hostinfo, said once', async (t) => {
  const site = await makeSite(t);
  await writeFile(site.config, 'enabled = maybe\n');
  const userQmp = join(site.dir, 'user-qmp.sock');
  const args = [...PAUSED_VM, '-name', 'vm-b', '-qmp', `unix:${userQmp},server=on,wait=off`];
  const run = launchVm(t, site, ['--', ...args]);
  await withTimeout((async () => {
    while (!(await probeDaemon(userQmp).then((p) => p === 'answers'))) await new Promise((resolve) => setTimeout(resolve, 50));
  })(), 'QEMU to listen on the user\'s QMP socket');
  t.equal(exeOf(run.pid), QEMU_EXE, 'QEMU runs as the pid started');
  t.same(cmdlineOf(run.pid).slice(1), args, 'with the user\'s arguments only: no hostinfo port');
  t.match(run.stderr(), `${site.config}:1: invalid TOML`);
  t.equal(run.stderr().split('starting QEMU without hostinfo').length - 1, 1, 'said once');
  // The user's own monitor answering means QEMU's main loop runs: SIGTERM is QEMU's to handle.
  const qmp = new QmpClient();
  await qmp.connect(userQmp);
  await qmp.close();
  run.child.kill('SIGTERM');
  t.same(await run.exited, { code: 0, signal: null }, 'QEMU\'s own status on SIGTERM');
  t.notOk(existsSync(site.runtime), 'nothing was wired: no runtime directory');
});

t.test('a served VM: registered under vms/<name>/, QEMU\'s own exit status, directory removed after', async (t) => {
  const site = await makeSite(t);
  const run = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'vm-a']);
  const vm = await servedVm(site, 'vm-a');
  t.equal(vm.vm.pid, run.pid, 'known by the pid started');
  const dir = join(site.vms, 'vm-a');
  t.equal(statSync(dir).mode & 0o777, 0o700, 'the VM directory is owner-only');
  t.same((await readdir(dir)).sort(), ['guest.sock', 'qmp.sock', 'vm.json']);
  t.match(JSON.parse(readFileSync(join(dir, 'vm.json'), 'utf8')), { v: 1, pid: run.pid, name: 'vm-a', transport: 'isa-serial', guestDevice: '/dev/ttyS0' });
  t.ok(cmdlineOf(run.pid).includes(`socket,id=hostinfo0,path=${join(dir, 'guest.sock')},server=on,wait=off`), 'QEMU runs with the hostinfo chardev on the VM directory\'s socket');
  run.child.kill('SIGTERM');
  t.same(await run.exited, { code: 0, signal: null }, 'QEMU ends on SIGTERM with status 0, as QEMU alone does');
  t.match(run.stderr(), `terminating on signal 15 from pid ${process.pid}`, 'QEMU itself got the signal, from this test');
  await until(() => !existsSync(dir), 'the daemon to remove the VM directory');
  t.ok(await probeDaemon(site.control).then((p) => p === 'answers'), 'the daemon outlives the VM');
});

t.test('exit statuses are QEMU\'s: 1 when it refuses its arguments, 128+n in a shell when it dies of signal n', async (t) => {
  const site = await makeSite(t);
  const refused = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'vm-r', '-frobnicate']);
  t.same(await refused.exited, { code: 1, signal: null });
  t.match(refused.stderr(), /qemu-system-x86_64: -frobnicate: invalid option/);
  await until(() => !existsSync(join(site.vms, 'vm-r')), 'the daemon to remove the directory of a QEMU that never ran');

  // As a caller's shell sees it: `hostinfo-qemu ...; echo $?`.
  const shell = spawn('sh', ['-c', '"$@"; echo "status=$?"', 'sh', FRONT, '--config', site.config, '--', ...PAUSED_VM, '-name', 'vm-k'], { stdio: ['ignore', 'pipe', 'pipe'], env: userEnv() });
  let out = '';
  shell.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  const shellExit = new Promise((resolve) => shell.on('exit', resolve));
  t.teardown(() => void shell.kill('SIGKILL'));
  const vm = await servedVm(site, 'vm-k');
  t.equal(procStat(vm.vm.pid)?.ppid, shell.pid, 'QEMU is the shell\'s own child');
  process.kill(vm.vm.pid, 'SIGKILL');
  await withTimeout(shellExit, 'the shell to finish');
  t.equal(out, 'status=137\n', 'the shell sees 128+9');
});

t.test('the daemon: autostarted when absent, in a session of its own with no terminal, reused by the next VM', async (t) => {
  const site = await makeSite(t);
  t.same(daemonsOf(site.runtime), [], 'no daemon before');
  // The first VM in a terminal: what the daemon must not keep is that terminal.
  const env = userEnv() as Record<string, string>;
  const term = pty.spawn(FRONT, ['--config', site.config, '--', ...PAUSED_VM, '-name', 'first'], { name: 'xterm', cols: 120, rows: 30, env });
  let screen = '';
  term.onData((data) => { screen += data; });
  const termExit = new Promise<{ exitCode: number; signal?: number }>((resolve) => term.onExit(resolve));
  t.teardown(async () => {
    if (alive(term.pid)) {
      process.kill(term.pid, 'SIGKILL');
      await termExit;
    }
  });
  const first = await servedVm(site, 'first');
  t.equal(first.vm.pid, term.pid, 'the VM is the pid started in the terminal');
  const daemonPid = (await status(site)).pid;
  t.same(daemonsOf(site.runtime), [daemonPid], 'one daemon, the one answering');
  const qemuStat = procStat(term.pid);
  const daemonStat = procStat(daemonPid);
  t.not(qemuStat?.ttyNr, 0, 'QEMU has the terminal (the check means something)');
  t.equal(daemonStat?.ttyNr, 0, 'the daemon has no controlling terminal');
  t.equal(daemonStat?.session, daemonPid, 'it leads a session of its own');
  t.not(daemonStat?.session, qemuStat?.session, 'not the terminal\'s session');
  const stdio = [0, 1, 2].map((fd) => fdLinks(daemonPid).get(fd));
  t.same(stdio, ['/dev/null', '/dev/null', '/dev/null'], 'its stdio is /dev/null, not the terminal');
  t.match(readFileSync(site.daemonLog(), 'utf8'), /"event":"listening"/, 'it logs to logs/hostinfod.log');

  const second = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'second']);
  const secondVm = await servedVm(site, 'second');
  t.equal(secondVm.vm.pid, second.pid);
  t.equal((await status(site)).pid, daemonPid, 'the next VM is served by the same daemon');
  t.same(daemonsOf(site.runtime), [daemonPid], 'no second daemon');
  t.equal((await status(site)).vmcount, 2);

  process.kill(term.pid, 'SIGTERM');
  t.equal((await withTimeout(termExit, 'the first VM to end')).exitCode, 0);
  await until(() => !existsSync(join(site.vms, 'first')), 'the first VM to be cleaned up');
  t.ok(alive(daemonPid), 'the daemon outlives the VM that started it');
  t.match(screen, /terminating on signal 15/, 'QEMU\'s own message reached the terminal');
  second.child.kill('SIGTERM');
  t.same(await second.exited, { code: 0, signal: null });
});

t.test('two VMs of one name at once: two directories, one daemon', async (t) => {
  const site = await makeSite(t);
  const first = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'twin']);
  await servedVm(site, 'twin');
  const second = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'twin']);
  const twin2 = await servedVm(site, 'twin-2');
  t.equal(twin2.vm.pid, second.pid);
  t.equal((await status(site)).vms.find((vm) => vm.id === 'twin')?.vm.pid, first.pid);
  t.equal(daemonsOf(site.runtime).length, 1);
  t.equal((await status(site)).vmcount, 2, 'two VMs without -uuid count as two');
});

t.test('the planner run without its front: refused for a VM (exit 2), a probe is only planned', async (t) => {
  const site = await makeSite(t);
  const direct = runFront(t, ['--config', site.config, '--', ...PAUSED_VM, '-name', 'direct'], { file: process.execPath, prefix: [PLANNER] });
  t.same(await direct.exited, { code: 2, signal: null });
  t.match(direct.stderr(), 'internal entry point: run bin/hostinfo-qemu');
  t.notOk(existsSync(site.runtime), 'nothing registered, no daemon started');
  t.same(daemonsOf(site.runtime), []);
  const probe = runFront(t, ['--', '-version'], { file: process.execPath, prefix: [PLANNER], env: { HOSTINFO_QEMU: QEMU_EXE } });
  t.same(await probe.exited, { code: 0, signal: null });
  t.equal(probe.stdout(), `exec '${QEMU_EXE}' '-version'\n`, 'the plan for the front, nothing run');
});
