// The command line Proxmox's qm runs (`/usr/bin/kvm -id VMID -name NAME,debug-threads=on -chardev
// socket,id=qmp,... -mon chardev=qmp,mode=control -pidfile FILE -daemonize -smbios
// type=1,uuid=UUID -nodefaults ...`), served two ways by a root hostinfod with a policy found by
// the VM's name: through hostinfo-kvm standing first on PATH as `kvm` (a symlink to
// bin/hostinfo-kvm), and with Proxmox's own kvm plus the shipped hookscript
// (examples/proxmox/hostinfo-hook) attaching `serial1: socket` on post-start. No real Proxmox:
// the shape of its command line, its files (/etc/pve/qemu-server/VMID.conf,
// /var/run/qemu-server/VMID.{pid,serial1}, under a test root) and its hook calls are tested.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { guestImage, REPO, until } from '../e2e/harness.js';
import { fetchStatus } from '../../daemon/control-client.js';
import { startDaemonAt } from '../helpers/served-vm.js';

const image = await guestImage();
if (image.kind === 'skip') {
  t.plan(0, image.reason);
  process.exit(0);
}
const started = Date.now();
const dir = mkdtempSync(path.join(tmpdir(), 'hipve-'));
const runtime = path.join(dir, 'run');
// Proxmox's own paths, under a root of the test's.
const root = path.join(dir, 'root');
const server = path.join(root, 'var', 'run', 'qemu-server');
const pveConfig = path.join(root, 'etc', 'pve', 'qemu-server');
const bin = path.join(dir, 'bin');
for (const d of [server, pveConfig, bin, path.join(dir, 'policies')]) mkdirSync(d, { recursive: true });
symlinkSync(path.join(REPO, 'bin', 'hostinfo-kvm'), path.join(bin, 'kvm'));
// Proxmox's own QEMU (pve-qemu) knows `-id VMID`; Debian's does not. This stand-in, second on
// PATH, drops it and execs qemu-system-x86_64 (same pid). hostinfo-kvm, called as kvm, must skip
// itself and find this one.
const pveBin = path.join(dir, 'pve-bin');
mkdirSync(pveBin);
writeFileSync(path.join(pveBin, 'kvm'), '#!/bin/sh\nskip=0\nfor a do shift; if [ $skip = 1 ]; then skip=0; continue; fi; if [ "$a" = -id ]; then skip=1; continue; fi; set -- "$@" "$a"; done\nexec qemu-system-x86_64 "$@"\n', { mode: 0o755 });
const NAME = 'pve-guest';
writeFileSync(path.join(dir, 'policies', 'default.toml'), 'enabled = false\n');
writeFileSync(path.join(dir, 'policies', `${NAME}.toml`), 'enabled = true\nallow = ["physcpus"]\nburst = 1000\ninterval = 0.001\n');
writeFileSync(path.join(dir, 'hostinfo.toml'), `enabled = true\npolicy_dir = "policies"\nruntime_dir = "run"\n[cache]\ninterval = 0.2\nmax_age = 2\n`);
// Asks until answered, each time with its own timeout: with the hookscript, the port is served
// only from post-start on.
writeFileSync(path.join(dir, 'guest.sh'), '. /lib/hostinfo.sh\nport=$(hostinfo_port)\nwhile :; do\n  exec 3<>"$port"; echo physcpus >&3\n  if read -t 2 -r reply <&3; then echo "guest: physcpus $reply"; break; fi\n  exec 3<&-\ndone\nwhile :; do sleep 1; done\n');
spawnSync('bash', [path.join(REPO, 'examples', 'guest', 'with-script.sh'), path.join(dir, 'guest.sh'), path.join(dir, 'initrd.gz')]);

const daemon = await startDaemonAt(t, path.join(dir, 'hostinfo.toml'), runtime);
t.teardown(async () => {
  await daemon.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
  t.comment(`proxmox test wall time ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

t.test('kvm -id 100 ... -pidfile -daemonize through hostinfo-kvm first on PATH', async (t) => {
  const uuid = '7d3a3b52-5f3c-4a57-9d52-1f4e1f3a2b10';
  const pidfile = path.join(server, '100.pid');
  const console = path.join(dir, 'console.log');
  const args = ['-id', '100', '-name', `${NAME},debug-threads=on`, '-no-shutdown',
    '-chardev', `socket,id=qmp,path=${server}/100.qmp,server=on,wait=off`, '-mon', 'chardev=qmp,mode=control',
    '-pidfile', pidfile, '-daemonize', '-smbios', `type=1,uuid=${uuid}`, '-nodefaults',
    '-accel', 'tcg', '-machine', 'type=pc', '-m', '256', '-display', 'none',
    '-chardev', `file,id=con,path=${console}`, '-device', 'isa-serial,chardev=con',
    '-kernel', path.join(image.dir, 'vmlinuz'), '-initrd', path.join(dir, 'initrd.gz'), '-append', 'console=ttyS0 panic=-1 quiet'];
  const env = { PATH: `${bin}:${pveBin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`, HOSTINFO_CONFIG: path.join(dir, 'hostinfo.toml') };
  const run = spawnSync('kvm', args, { env, encoding: 'utf8', timeout: 60_000 });
  t.equal(run.status, 0, `kvm exited 0 after daemonizing (stderr: ${run.stderr.trim()})`);
  const pid = Number(readFileSync(pidfile, 'utf8').trim());
  t.teardown(() => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
  t.match(readlinkSync(`/proc/${pid}/exe`), /qemu-system-x86_64$/, `the pidfile's pid ${pid} is QEMU`);
  await until(() => existsSync(console) && /guest: physcpus /.test(readFileSync(console, 'utf8')), 90_000, () => `guest reply: ${existsSync(console) ? readFileSync(console, 'utf8').slice(-400) : 'none'}`);
  t.match(readFileSync(console, 'utf8'), /guest: physcpus 1\.0 200 \d+/, 'the guest got physcpus (policy looked up by name; default.toml is disabled)');
  const vmDir = path.join(runtime, 'vms', NAME);
  t.ok(existsSync(vmDir), `registered as ${vmDir}`);
  process.kill(pid, 'SIGTERM');
  await until(() => !existsSync(vmDir), 15_000, () => `${vmDir} removed`);
  t.pass('after QEMU exits its directory is gone');
});

t.test('Proxmox\'s own kvm, serial1: socket, attached by the hookscript', async (t) => {
  const uuid = '5f0c2d1e-8a4b-4c3d-9e2f-7a6b5c4d3e21';
  const pidfile = path.join(server, '101.pid');
  const console = path.join(dir, 'console-101.log');
  const hookLog = path.join(dir, 'hook.log');
  writeFileSync(path.join(pveConfig, '101.conf'), `boot: order=scsi0\ncores: 1\nmemory: 256\nname: ${NAME}\nserial0: socket\nserial1: socket\nsmbios1: uuid=${uuid}\nvmgenid: 1b2c3d4e-0000-4000-8000-000000000001\n\n[before-upgrade]\nname: old-name\nserial1: /dev/ttyS0\n`);
  const args = ['-id', '101', '-name', `${NAME},debug-threads=on`, '-no-shutdown',
    '-chardev', `socket,id=qmp,path=${server}/101.qmp,server=on,wait=off`, '-mon', 'chardev=qmp,mode=control',
    '-pidfile', pidfile, '-daemonize', '-smbios', `type=1,uuid=${uuid}`, '-nodefaults',
    '-accel', 'tcg', '-machine', 'type=pc', '-m', '256', '-display', 'none',
    '-chardev', `file,id=serial0,path=${console}`, '-device', 'isa-serial,chardev=serial0',
    '-chardev', `socket,id=serial1,path=${server}/101.serial1,server=on,wait=off`, '-device', 'isa-serial,chardev=serial1',
    '-kernel', path.join(image.dir, 'vmlinuz'), '-initrd', path.join(dir, 'initrd.gz'), '-append', 'console=ttyS0 panic=-1 quiet'];
  const run = spawnSync('kvm', args, { env: { PATH: `${pveBin}:${process.env['PATH'] ?? '/usr/bin:/bin'}` }, encoding: 'utf8', timeout: 60_000 });
  t.equal(run.status, 0, `Proxmox's kvm daemonized (stderr: ${run.stderr.trim()})`);
  const pid = Number(readFileSync(pidfile, 'utf8').trim());
  t.teardown(() => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
  // The shipped hookscript, its settings pointed at this checkout and Proxmox's files at the test root.
  const hookscript = path.join(dir, 'hostinfo-hook');
  writeFileSync(hookscript, readFileSync(path.join(REPO, 'examples', 'proxmox', 'hostinfo-hook'), 'utf8')
    .replace(/^HOSTINFO_CTL=.*$/m, `HOSTINFO_CTL=${path.join(REPO, 'bin', 'hostinfo-ctl')}`)
    .replace(/^HOSTINFO_CONFIG=.*$/m, `HOSTINFO_CONFIG=${path.join(dir, 'hostinfo.toml')}`)
    .replace(/^LOG=$/m, `LOG=${hookLog}`)
    .replaceAll('hook proxmox --serial', `hook proxmox --root ${root} --serial`), { mode: 0o755 });
  // Proxmox runs hookscripts as root with its own environment; Node must be findable.
  const hookEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOSTINFO_NODE: process.execPath };
  for (const phase of ['pre-start', 'post-start']) {
    t.equal(spawnSync(hookscript, ['101', phase], { env: hookEnv, encoding: 'utf8' }).status, 0, `the hookscript exits 0 on ${phase}`);
  }
  t.match(readFileSync(hookLog, 'utf8'), new RegExp(`hook proxmox 101 post-start: attached as ${NAME} \\(/dev/ttyS1 on ${server}/101\\.serial1\\)`), 'post-start attached serial1');
  await until(() => existsSync(console) && /guest: physcpus /.test(readFileSync(console, 'utf8')), 90_000, () => `guest reply: ${existsSync(console) ? readFileSync(console, 'utf8').slice(-400) : 'none'}`);
  t.match(readFileSync(console, 'utf8'), /guest: physcpus 1\.0 200 \d+/, 'the guest got physcpus on ttyS1 (policy by the name in 101.conf, not its snapshot\'s)');
  const vm = (await fetchStatus(path.join(runtime, 'hostinfod.sock'))).vms.find((entry) => entry.vm.pid === pid);
  t.match(vm, { id: NAME, attached: true, vm: { name: NAME, uuid }, guestDevice: '/dev/ttyS1' }, 'name and uuid from the VM config');
  t.equal(spawnSync(hookscript, ['101', 'pre-stop'], { env: hookEnv }).status, 0, 'the hookscript exits 0 on pre-stop');
  t.notOk(existsSync(path.join(runtime, 'vms', NAME)), 'pre-stop detached it');
  process.kill(pid, 'SIGTERM');
  t.equal(spawnSync(hookscript, ['101', 'post-stop'], { env: hookEnv }).status, 0, 'and post-stop is a no-op');
});
