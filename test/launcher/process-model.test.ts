// The process model's promises (issue 9, "Done when"), each checked on real processes: the front
// becomes QEMU (pid, exe, fds), -daemonize is followed, a killed QEMU is cleaned up after, the
// sidecar is never root, a planted or writable runtime directory is refused without keeping QEMU
// from starting, hostile -name values disturb nothing, an overlong one is refused once.

import { openSync, closeSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, chownSync, chmodSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { findAccount } from '../../daemon/passwd.js';
import { RESCAN_MS } from '../../daemon/vm-fleet.js';
import { launchVm, makeSite, PAUSED_VM, stageVm, startDaemon, status, vmStatus, waitForStatus, type Site } from '../helpers/served-vm.js';
import { alive, cmdlineOf, daemonsOf, exeOf, fdLinks, idsOf, QEMU_EXE, runsQemu, servedVm, until } from './front.js';

const HOSTINFO_UID = findAccount('hostinfo')?.uid;
const NOBODY = 65534;

/** The hostinfo port in a QEMU command line: a chardev on a guest.sock of the runtime tree. */
const wired = (pid: number): boolean => cmdlineOf(pid).some((word) => word.startsWith('socket,id=hostinfo0,'));

t.test('the pid the caller started is QEMU\'s own', async (t) => {
  const site = await makeSite(t);
  const run = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'pm-pid']);
  const vm = await servedVm(site, 'pm-pid');
  t.equal(exeOf(run.pid), QEMU_EXE, `/proc/${run.pid}/exe is ${QEMU_EXE}`);
  t.equal(cmdlineOf(run.pid)[0], QEMU_EXE);
  t.equal(vm.vm.pid, run.pid, 'the daemon knows the VM by that pid');
  t.ok(wired(run.pid), 'and QEMU has the hostinfo port');
});

t.test('fds the caller passes without close-on-exec are QEMU\'s, and only QEMU\'s', async (t) => {
  const site = await makeSite(t);
  // As libvirt passes its monitor socket and virtlogd's pipe (fd=28/30): here a socket pair on
  // fd 3 and an opened file on fd 7. This VM starts the daemon, so the planner that started it
  // had both open.
  const file = join(site.dir, 'passed-on-fd-7');
  const fd7 = openSync(file, 'w');
  t.teardown(() => closeSync(fd7));
  t.same(daemonsOf(site.runtime), [], 'no daemon yet: the planner that gets these fds starts it');
  const run = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'pm-fds'], { stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'ignore', 'ignore', 'ignore', fd7] });
  const vm = await servedVm(site, 'pm-fds');
  const qemu = fdLinks(run.pid);
  const fd3 = qemu.get(3) ?? '';
  t.match(fd3, /^socket:\[\d+\]$/, 'fd 3 is open in QEMU');
  t.equal(qemu.get(7), file, 'fd 7 is open in QEMU');
  const passed = new Set([fd3, file]);
  const sidecarPid = vm.sidecar.pid ?? 0;
  const daemonPid = (await status(site)).pid;
  t.ok(alive(sidecarPid) && alive(daemonPid), 'sidecar and daemon run');
  t.ok(fdLinks(sidecarPid).size > 0 && fdLinks(daemonPid).size > 0, 'their fd tables are readable');
  t.same([...fdLinks(sidecarPid).values()].filter((target) => passed.has(target)), [], 'the sidecar holds neither');
  t.same([...fdLinks(daemonPid).values()].filter((target) => passed.has(target)), [], 'the daemon holds neither');
});

for (const own of [true, false]) {
  t.test(`-daemonize ${own ? '-pidfile FILE' : 'without -pidfile'}: the daemonized QEMU is served, and cleaned up after`, async (t) => {
    const site = await makeSite(t);
    const name = own ? 'pm-daemonized' : 'pm-daemonized-own';
    const pidfile = own ? join(site.dir, 'qemu.pid') : join(site.vms, name, 'qemu.pid');
    const started = Date.now();
    const run = launchVm(t, site, ['--', '-accel', 'tcg', '-M', 'pc', '-S', '-nodefaults', '-display', 'none', '-name', name, '-daemonize', ...(own ? ['-pidfile', pidfile] : [])]);
    t.same(await run.exited, { code: 0, signal: null }, 'the front (QEMU\'s parent half) exits 0', { stderr: run.stderr() });
    t.ok(Date.now() - started < 20_000, `quickly (${Date.now() - started} ms)`);
    const qemuPid = Number(readFileSync(pidfile, 'utf8').trim());
    t.teardown(() => { if (alive(qemuPid)) process.kill(qemuPid, 'SIGKILL'); });
    t.not(qemuPid, run.pid, 'the pidfile names the daemonized QEMU');
    t.equal(exeOf(qemuPid), QEMU_EXE, 'which is QEMU');
    t.ok(wired(qemuPid), 'with the hostinfo port');
    if (!own) t.ok(cmdlineOf(qemuPid).includes(pidfile), '-pidfile <vm dir>/qemu.pid was added');
    const vm = await waitForStatus(site, 'the daemon to follow the daemonized QEMU', (reply) => {
      const found = vmStatus(reply, name);
      return found?.vm.pid === qemuPid && found.sidecar.connected ? found : undefined;
    });
    t.equal(vm.vm.pid, qemuPid, 'status: vm.pid is the pidfile\'s');
    t.equal(vm.sidecar.connected, true, 'the sidecar said hello');
    t.match(readFileSync(site.daemonLog(), 'utf8'), new RegExp(`"event":"sidecar-hello","vm":"${name}"`));
    const sidecarPid = vm.sidecar.pid ?? 0;
    process.kill(qemuPid, 'SIGKILL');
    await until(() => !existsSync(join(site.vms, name)), 'the daemon to remove the VM directory');
    await until(() => !alive(sidecarPid), 'the sidecar to end');
    t.pass('VM directory removed, sidecar ended');
  });
}

t.test('SIGKILL to the pid started ends QEMU; its directory and sidecar go', async (t) => {
  const site = await makeSite(t);
  const run = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'pm-kill']);
  const vm = await servedVm(site, 'pm-kill');
  const sidecarPid = vm.sidecar.pid ?? 0;
  t.ok(alive(sidecarPid));
  run.child.kill('SIGKILL');
  t.same(await run.exited, { code: null, signal: 'SIGKILL' }, 'the process started died of SIGKILL: there is nothing between the caller and QEMU');
  t.notOk(alive(run.pid), 'QEMU is gone');
  await until(() => !existsSync(join(site.vms, 'pm-kill')), 'the daemon to remove the VM directory');
  await until(() => !alive(sidecarPid), 'the sidecar to end');
  t.pass('directory removed, sidecar ended');
  t.same((await status(site)).vms, [], 'the daemon forgot the VM');
});

t.test('the sidecar of a root-started VM runs as the hostinfo user', { skip: process.geteuid?.() !== 0 ? 'needs root' : HOSTINFO_UID === undefined ? 'no hostinfo user' : false }, async (t) => {
  const site = await makeSite(t);
  launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'pm-uid']);
  const vm = await servedVm(site, 'pm-uid');
  const ids = idsOf(vm.sidecar.pid ?? 0);
  t.same(ids.uids, [HOSTINFO_UID, HOSTINFO_UID, HOSTINFO_UID, HOSTINFO_UID], 'real, effective, saved and fs uid: hostinfo\'s');
  t.notOk(ids.gids.includes(0), 'no root gid');
  t.notOk(ids.groups.includes(0), 'no root supplementary group');
  t.equal(vm.sidecar.uid, HOSTINFO_UID, 'status says so too');
});

t.test('an unsafe runtime directory is refused, loudly; QEMU starts without hostinfo', { skip: process.geteuid?.() !== 0 ? 'needs root (chown)' : false }, async (t) => {
  /** Starts a VM on `site` and checks it runs plain, with a message about the runtime directory. */
  async function refused(t: Test, site: Site, message: RegExp): Promise<void> {
    const run = launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'pm-unsafe']);
    await until(() => run.stderr().includes('starting QEMU without hostinfo') && runsQemu(run.pid), 'QEMU to start without hostinfo');
    t.match(run.stderr(), message, 'the message names the path, its owner and mode', { stderr: run.stderr() });
    t.notOk(wired(run.pid), 'QEMU runs with no hostinfo port', { cmdline: cmdlineOf(run.pid) });
    t.equal(run.stderr().split('starting QEMU without hostinfo').length - 1, 1, 'said once');
    t.notOk(existsSync(site.control), 'no daemon socket was made in it');
  }

  t.test('owned by nobody, with a logs symlink planted in it', async (t) => {
    const site = await makeSite(t);
    const target = join(site.dir, 'planted-target');
    mkdirSync(target);
    mkdirSync(site.runtime, { mode: 0o755 });
    chmodSync(site.runtime, 0o755);
    symlinkSync(target, join(site.runtime, 'logs'));
    chownSync(site.runtime, NOBODY, NOBODY);
    await refused(t, site, new RegExp(`${site.runtime} \\(owner uid ${NOBODY}, group ${NOBODY}, mode 0755\\) belongs to neither uid 0; refusing to use it`));
    t.same(readdirSync(target), [], 'nothing was written through the symlink');
    t.same(readdirSync(site.runtime), ['logs'], 'nothing was added to the directory');
    t.ok(lstatSync(join(site.runtime, 'logs')).isSymbolicLink(), 'the symlink is left as it was');
  });

  for (const [mode, why] of [[0o777, 'writable by everyone'], [0o770, 'writable by its group']] as const) {
    t.test(`owned by root, mode ${mode.toString(8)}`, async (t) => {
      const site = await makeSite(t);
      mkdirSync(site.runtime);
      chmodSync(site.runtime, mode);
      await refused(t, site, new RegExp(`${site.runtime} \\(owner uid 0, group 0, mode 0${mode.toString(8)}\\) is ${why}; refusing to use it`));
      t.equal(lstatSync(site.runtime).mode & 0o7777, mode, 'nobody took it over by changing its mode');
      t.same(readdirSync(site.runtime), [], 'nothing was made in it');
    });
  }
});

t.test('hostile -name values disturb nothing: names of shared files, .., a staging-like name', async (t) => {
  const site = await makeSite(t);
  await startDaemon(t, site);
  // The bystander: a VM whose guest end is the test's, served before, during and after.
  const bystander = await stageVm(t, site, 'bystander');
  t.match(await bystander.guest.ask('physcpus'), /^1\.0 200 \d+$/);
  const before = await servedVm(site, 'bystander');

  const names = ['hostinfod.sock', 'logs', 'vms', '..', '.new-1-x'];
  const runs = names.map((name) => ({ name, run: launchVm(t, site, ['--', ...PAUSED_VM, '-name', name]) }));
  const dirOf = (name: string, pid: number): string => (name.startsWith('.') ? `vm-${pid}` : name);
  for (const { name, run } of runs) {
    const vm = await servedVm(site, dirOf(name, run.pid));
    t.equal(vm.vm.pid, run.pid, `-name ${name}: served from vms/${dirOf(name, run.pid)}`);
    t.equal(vm.vm.name, name, `-name ${name}: known by its name`);
  }
  t.same(readdirSync(site.vms).sort(), ['bystander', ...runs.map(({ name, run }) => dirOf(name, run.pid))].sort(), 'one directory per VM, all inside vms/');
  t.same(readdirSync(site.runtime).sort(), ['hostinfod.sock', 'logs', 'vms'], 'the runtime directory holds only its own three entries');
  t.ok(lstatSync(site.control).isSocket(), 'hostinfod.sock is still the control socket');
  t.ok(lstatSync(join(site.runtime, 'logs')).isDirectory(), 'logs/ is still a directory');

  t.match(await bystander.guest.ask('physcpus'), /^1\.0 200 \d+$/, 'the bystander is still answered');
  const during = await servedVm(site, 'bystander');
  t.equal(during.sidecar.pid, before.sidecar.pid, 'by the same sidecar');
  t.equal(during.sidecar.restarts, 0);

  for (const { run } of runs) run.child.kill('SIGKILL');
  await until(() => readdirSync(site.vms).length === 1, 'the hostile-named VMs to be cleaned up');
  t.same(readdirSync(site.runtime).sort(), ['hostinfod.sock', 'logs', 'vms'], 'removing vms/logs, vms/vms, vms/hostinfod.sock touched nothing outside vms/');
  t.ok(existsSync(site.sidecarLog('bystander')), 'the bystander\'s log is still there');
  t.match(await bystander.guest.ask('physcpus'), /^1\.0 200 \d+$/, 'and the bystander is still answered');
  t.equal((await status(site)).vms.map((vm) => vm.id).join(), 'bystander', 'the control socket answers');
});

t.test('a 300-character -name: one clear error, QEMU starts without hostinfo, no retries', async (t) => {
  const site = await makeSite(t);
  const daemon = await startDaemon(t, site);
  const name = 'n'.repeat(300);
  const run = launchVm(t, site, ['--', ...PAUSED_VM, '-name', name]);
  await until(() => runsQemu(run.pid), 'QEMU to start');
  t.equal(run.stderr(), 'hostinfo-qemu: -name is 300 characters; hostinfo serves VM names of at most 256\nhostinfo-qemu: starting QEMU without hostinfo\n', 'one clear error on stderr, once');
  t.notOk(wired(run.pid), 'QEMU runs with no hostinfo port');
  // Long enough for a periodic rescan of vms/ to come and go.
  const linesBefore = daemon.lines.length;
  await new Promise((resolve) => setTimeout(resolve, RESCAN_MS + 1_000));
  t.same(readdirSync(site.vms), [], 'nothing was registered');
  const mentions = daemon.lines.filter((line) => JSON.stringify(line).includes(name.slice(0, 257)));
  t.same(mentions, [], 'the daemon never heard of it');
  t.equal(daemon.lines.length, linesBefore, 'and logged nothing meanwhile (no retry loop)');
  t.equal(run.stderr().split('\n').length - 1, 2, 'the front said nothing more');
  t.ok(alive(run.pid), 'QEMU runs on');
});
