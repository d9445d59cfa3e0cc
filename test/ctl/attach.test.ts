// hostinfo-ctl attach/detach against a real hostinfod and a real paused QEMU that hostinfo did
// not launch: QEMU runs with no QMP socket for hostinfo (as under libvirt, whose monitor is its
// own), named vCPU threads (debug-threads=on), and its guest chardev played by the test's
// GuestEnd at a path outside the runtime directory.

import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { processStartTime } from '../../common/proc.js';
import { NOBODY, needsRootAndSetpriv } from '../helpers/as-user.js';
import { GuestEnd } from '../helpers/guest-end.js';
import { readLogFile } from '../helpers/log-file.js';
import { withTimeout } from '../helpers/logged-process.js';
import { makeSite, PAUSED_VM, pollStatus, startDaemon, status, vmStatus, type Site } from '../helpers/served-vm.js';
import { QEMU_BINARY } from '../fixtures/qmp/qemu.js';
import { CTL, ctl } from './run-ctl.js';

const POLICY = 'enabled = true\nallow = ["physcpus", "vcpudelay", "hypervisor", "loadavg"]\nburst = 1000\ninterval = 0.001\n';

/** A paused QEMU with named vCPU threads and no QMP; resolves once it runs. */
async function pausedQemu(tap: Tap, name: string): Promise<number> {
  const qemu = spawn(QEMU_BINARY, [...PAUSED_VM, '-name', `${name},debug-threads=on`, '-smp', '2'], { stdio: 'ignore' });
  tap.teardown(() => void qemu.kill('SIGKILL'));
  const pid = qemu.pid ?? 0;
  await withTimeout((async () => {
    while (processStartTime(pid) === undefined || spawnSync('grep', ['-l', '^CPU 1/', '-r', `/proc/${pid}/task`, '--include=comm']).status !== 0) {
      if (qemu.exitCode !== null) throw new Error(`QEMU exited with ${qemu.exitCode}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })(), 'QEMU to start its vCPU threads');
  return pid;
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

async function attached(tap: Tap, site: Site, name: string): Promise<{ pid: number; guest: GuestEnd; socket: string }> {
  const outside = join(site.dir, `outside-${name}`);
  mkdirSync(outside, { mode: 0o755 });
  const socket = join(outside, 'hostinfo.sock');
  const guest = await GuestEnd.listen(tap, socket);
  const pid = await pausedQemu(tap, name);
  return { pid, guest, socket };
}

t.test('attach: served until QEMU exits, without QMP', async (t) => {
  const site = await makeSite(t, { policy: POLICY, interval: 0.1 });
  const first = await startDaemon(t, site);
  const { pid, guest, socket } = await attached(t, site, 'web1');
  const run = ctl(site, ['attach', '--pid', String(pid), '--guest-socket', socket, '--name', 'web1', '--uuid', '0b7e6f52-1c1e-4b8e-9f0e-5a3c1d2e4f60']);
  t.equal(run.status, 0, `attach exits 0: ${run.stderr}`);
  t.equal(run.stdout, 'attached: web1\n');
  await guest.connected();
  t.match(await guest.ask('physcpus'), /^1\.0 200 \d+$/, 'the guest is answered');
  t.equal(await guest.ask('hypervisor'), '1.0 503 host statistics unavailable: hypervisor version not known (no QMP socket for this VM)');
  const vm = await pollStatus(site, 'web1 with counters', (reply) => (vmStatus(reply, 'web1')?.counters?.ok ?? 0) >= 1 ? vmStatus(reply, 'web1') : undefined);
  t.match(vm, { attached: true, transport: 'isa-serial', guestDevice: '/dev/ttyS1', vm: { name: 'web1', uuid: '0b7e6f52-1c1e-4b8e-9f0e-5a3c1d2e4f60', pid }, served: true });
  t.equal(vm.sidecar.uid, Number(spawnSync('id', ['-u', 'hostinfo'], { encoding: 'utf8' }).stdout.trim()), 'a root QEMU\'s sidecar runs as the sidecar user');
  // vcpudelay needs two readings of the named threads' schedstat, one sample interval apart.
  const deadline = Date.now() + 10_000;
  let delay = await guest.ask('vcpudelay');
  while (!delay.startsWith('1.0 200') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    delay = await guest.ask('vcpudelay');
  }
  t.match(delay, /^1\.0 200 \d+\.\d\d$/, `vcpudelay from the threads QEMU named "CPU n/TCG": ${delay}`);
  const log = await readLogFile(site.sidecarLog('web1'));
  t.match(log.find((line) => line['event'] === 'identity'), { source: 'hostinfod and thread names', vm: { vcpuThreads: [Number, Number] } }, 'both vCPU threads found by name');

  const again = ctl(site, ['attach', '--pid', String(pid), '--guest-socket', socket, '--name', 'web1']);
  t.equal(again.stdout, 'already attached: web1\n', 'attaching again (a libvirtd reconnect) changes nothing');
  const other = ctl(site, ['attach', '--pid', String(pid), '--guest-socket', join(site.dir, 'x.sock'), '--name', 'web1']);
  t.equal(other.status, 1);
  t.match(other.stderr, /pid \d+ is already served as web1 with guest socket /, 'one hostinfo port per QEMU');

  const table = ctl(site, ['status']);
  t.equal(table.status, 0);
  t.match(table.stdout, /^hostinfod \S+, pid \d+, up \d+s, sampling every 0\.1s/);
  t.match(table.stdout, /\nVM\s+NAME\s+QEMU\s+GUEST PORT\s+RATE\s+200\/403\/429\/ERR/);
  t.match(table.stdout, new RegExp(`\\nweb1\\s+web1\\s+${pid}\\s+/dev/ttyS1 \\(attached\\)\\s+1000/0\\.001s\\s+\\d+/0/0/1\\s`), 'one row: 200s, no 403 or 429, one error (the 503)');
  const one = ctl(site, ['status', String(pid), '--json']);
  t.match(JSON.parse(one.stdout), { id: 'web1', attached: true }, 'status VM finds it by QEMU pid too');

  // The attachment is the daemon's own VM directory: a restarted daemon serves the VM again.
  await first.kill('SIGTERM');
  await startDaemon(t, site);
  await guest.connected(2);
  t.match(await guest.ask('physcpus'), /^1\.0 200 \d+$/, 'a restarted hostinfod adopted the attached VM again');

  process.kill(pid, 'SIGKILL');
  await pollStatus(site, 'web1 gone', (reply) => (vmStatus(reply, 'web1') === undefined ? true : undefined));
  t.notOk(existsSync(join(site.vms, 'web1')), 'its directory is removed when QEMU exits');
  t.ok(existsSync(socket), 'the manager\'s socket is left alone');
});

t.test('detach, and what attach refuses', async (t) => {
  const site = await makeSite(t, { policy: POLICY });
  await startDaemon(t, site);
  const { pid, guest, socket } = await attached(t, site, 'db1');
  t.equal(ctl(site, ['attach', '--pid', String(pid), '--guest-socket', socket, '--transport', 'virtio-serial', '--name', 'db1']).status, 0);
  await guest.connected();
  t.match((await status(site)).vms, [{ id: 'db1', guestDevice: 'org.hostinfo.0', transport: 'virtio-serial' }]);
  const detach = ctl(site, ['detach', 'db1']);
  t.same([detach.status, detach.stdout], [0, 'detached: db1\n']);
  t.notOk(existsSync(join(site.vms, 'db1')), 'the directory is gone once detach answers');
  t.same((await status(site)).vms, []);
  const missing = ctl(site, ['detach', 'db1']);
  t.same([missing.status, /no VM "db1" is served/.test(missing.stderr)], [1, true], missing.stderr);
  const gone = ctl(site, ['attach', '--pid', '999999999', '--guest-socket', socket]);
  t.match([gone.status, gone.stderr], [1, /pid 999999999 is not running/]);
  const usage = ctl(site, ['attach', '--guest-socket', socket]);
  t.match([usage.status, usage.stderr], [2, /--pid needs QEMU's pid/]);
  const badTransport = ctl(site, ['attach', '--pid', String(pid), '--guest-socket', socket, '--transport', 'usb']);
  t.match([badTransport.status, badTransport.stderr], [2, /--transport must be isa-serial or virtio-serial/]);
  const stray = ctl(site, ['status', '--pid', '1']);
  t.match([stray.status, stray.stderr], [2, /status does not take --pid/]);
});

t.test('the daemon does not connect root\'s sockets through a directory another user controls', async (t) => {
  const site = await makeSite(t, { policy: POLICY });
  const daemon = await startDaemon(t, site);
  const { pid, guest, socket } = await attached(t, site, 'evil');
  chownSync(join(site.dir, 'outside-evil'), Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim()), -1);
  t.equal(ctl(site, ['attach', '--pid', String(pid), '--guest-socket', socket, '--name', 'evil']).status, 0, 'the record is accepted');
  const refusal = await daemon.waitFor((line) => /not connecting to/.test(JSON.stringify(line)));
  t.match(JSON.stringify(refusal), /outside-evil \(owner uid \d+, mode 755\) may be changed by an untrusted user/);
  t.equal(guest.connections, 0, 'nothing connected to the socket');
});

t.test('a user who is not the daemon\'s is refused with exit 4', { skip: needsRootAndSetpriv }, async (t) => {
  const site = await makeSite(t, { policy: POLICY });
  await startDaemon(t, site);
  // env -i: tap's spawn hook would add its NODE_OPTIONS, whose files nobody may write.
  const run = spawnSync('env', ['-i', 'PATH=/usr/bin:/bin', `HOSTINFO_NODE=${process.execPath}`, 'setpriv', `--reuid=${NOBODY.user}`, `--regid=${NOBODY.group}`, '--clear-groups', CTL, '--config', site.config, 'status'], { encoding: 'utf8' });
  t.equal(run.status, 4, run.stderr);
  t.match(run.stderr, /permission denied on .*hostinfod\.sock: the control socket is for the daemon's user/);
});

t.test('detach: a uuid two VMs share (a migration on one host) is refused; the pid picks one', async (t) => {
  const site = await makeSite(t, { policy: POLICY, interval: 0.1 });
  await startDaemon(t, site);
  const uuid = '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f';
  const source = await attached(t, site, 'moving');
  const destination = await attached(t, site, 'moving-dst');
  for (const vm of [source, destination]) {
    const run = ctl(site, ['attach', '--pid', String(vm.pid), '--guest-socket', vm.socket, '--name', 'moving', '--uuid', uuid]);
    t.equal(run.status, 0, run.stderr);
  }
  t.same((await status(site)).vms.map((vm) => [vm.id, vm.vm.pid]).sort(), [['moving', source.pid], ['moving-2', destination.pid]], 'the second one got a directory of its own');
  const byUuid = ctl(site, ['detach', uuid]);
  t.equal(byUuid.status, 1, 'refused');
  t.match(byUuid.stderr, `"${uuid}" names 2 VMs (moving, QEMU pid ${source.pid}; moving-2, QEMU pid ${destination.pid}): name one by its id or QEMU pid`);
  const shown = ctl(site, ['status', uuid]);
  t.equal(shown.status, 1);
  t.match(shown.stderr, `"${uuid}" names 2 VMs (moving, QEMU pid ${source.pid}; moving-2, QEMU pid ${destination.pid})`, 'status by that uuid says the same');
  t.equal(ctl(site, ['status', String(destination.pid)]).status, 0, 'status by pid picks one');
  t.equal(ctl(site, ['detach', String(source.pid)]).status, 0, 'detached by pid');
  t.same((await status(site)).vms.map((vm) => vm.id), ['moving-2'], 'only the one named by its pid went');
  t.match(await destination.guest.ask('physcpus'), /^1\.0 200 \d+$/, 'the other is still answered');
});
