// The command line Proxmox's qm runs (`/usr/bin/kvm -id VMID -name NAME,debug-threads=on -chardev
// socket,id=qmp,... -mon chardev=qmp,mode=control -pidfile FILE -daemonize -smbios
// type=1,uuid=UUID -nodefaults ...`), through hostinfo-kvm standing first on PATH as `kvm` (a
// symlink to bin/hostinfo-kvm), with a root hostinfod and a policy found by the VM's name. No
// real Proxmox: the shape of its command line is what is tested.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { guestImage, REPO, until } from '../e2e/harness.js';
import { startDaemonAt } from '../helpers/served-vm.js';

const image = await guestImage();
if (image.kind === 'skip') {
  t.plan(0, image.reason);
  process.exit(0);
}
const started = Date.now();
const dir = mkdtempSync(path.join(tmpdir(), 'hipve-'));
const runtime = path.join(dir, 'run');
const server = path.join(dir, 'qemu-server'); // /var/run/qemu-server on Proxmox
const bin = path.join(dir, 'bin');
for (const d of [server, bin, path.join(dir, 'policies')]) mkdirSync(d, { recursive: true });
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
writeFileSync(path.join(dir, 'guest.sh'), '. /lib/hostinfo.sh\nport=$(hostinfo_port)\necho "guest: physcpus $(hostinfo_ask "$port" physcpus)"\nwhile :; do sleep 1; done\n');
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
