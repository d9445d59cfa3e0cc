// hostinfo-sidecar as a real process: real QEMU for QMP, a real hostinfo-cache, and a unix socket
// standing in for QEMU's end of the hostinfo chardev (so the test can speak as the guest).

import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startQemu, type Qemu } from '../fixtures/qmp/qemu.js';
import { GuestEnd } from '../helpers/guest-end.js';
import { binPath, spawnLogged, type LoggedProcess, type Teardown } from '../helpers/logged-process.js';

const UUID = '5b0c7e52-9f0e-4b8e-8a57-2f4f3c1d9e01';
const SIDECAR = binPath('sidecar/main.js');
const CACHE = binPath('cache/main.js');

interface Vm {
  readonly dir: string;
  readonly policyFile: string;
  readonly qemu: Qemu;
  readonly guest: GuestEnd;
  readonly sidecar: LoggedProcess;
  cache: LoggedProcess;
  readonly startCache: () => Promise<LoggedProcess>;
}

async function startVm(t: Teardown, policy: string): Promise<Vm> {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-sidecar-'));
  await mkdir(join(dir, 'policies'));
  const config = join(dir, 'hostinfo.toml');
  await writeFile(config, 'enabled = true\npolicy_dir = "policies"\nruntime_dir = "run"\n[cache]\ninterval = 0.2\nmax_age = 1.0\n');
  const policyFile = join(dir, 'policies', 'vm1.toml');
  await writeFile(policyFile, policy);
  const cacheSocket = join(dir, 'cache.sock');
  const startCache = async (): Promise<LoggedProcess> => {
    const cache = spawnLogged(t, CACHE, ['--config', config, '--socket', cacheSocket]);
    await cache.waitFor('listening');
    return cache;
  };
  const cache = await startCache();
  const qemu = await startQemu(t, ['-name', 'vm1', '-uuid', UUID, '-smp', '2']);
  const guest = await GuestEnd.listen(t, join(dir, 'guest.sock'));
  const sidecar = spawnLogged(t, SIDECAR, ['--qmp', qemu.socketPath, '--guest', guest.path, '--config', config, '--cache', cacheSocket, '--qemu-pid', String(qemu.pid)]);
  await guest.connected();
  await sidecar.waitFor('cache-data');
  return { dir, policyFile, qemu, guest, sidecar, cache, startCache };
}

/** Rewrites the policy and waits until the sidecar has logged the resulting decision. */
async function changePolicy(vm: Vm, text: string): Promise<void> {
  const from = vm.sidecar.lines.length;
  await writeFile(vm.policyFile, text);
  await vm.sidecar.waitFor('policy', from);
}

/** Asks until the reply matches, for states that arrive with time (a sample, staleness). */
async function askUntil(vm: Vm, request: string, pattern: RegExp): Promise<string> {
  for (const deadline = Date.now() + 20_000; ;) {
    const reply = await vm.guest.ask(request);
    if (pattern.test(reply) || Date.now() > deadline) return reply;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const GENEROUS = 'enabled = true\nallow = ["physcpus", "physmem", "loadavg", "hypervisor", "vcpudelay", "hosttime"]\nburst = 1000\ninterval = 0.001\n';

t.test('answers the guest: every status a guest can provoke', async (t) => {
  const vm = await startVm(t, GENEROUS);
  const { guest } = vm;
  t.equal(await guest.ask('PING "hello"'), '1.0 200 hello');
  t.equal(await guest.ask('physcpus'), `1.0 200 ${availableParallelism()}`);
  const memTotal = /MemTotal:\s+(\d+) kB/.exec(await readFile('/proc/meminfo', 'utf8'))?.[1];
  t.match(await guest.ask('physmem'), new RegExp(`^1\\.0 200 total=${memTotal} free=\\d+ available=\\d+$`));
  t.match(await guest.ask('hypervisor'), /^1\.0 200 QEMU \d+\.\d+\.\d+$/);
  t.match(await askUntil(vm, 'vcpudelay', /200/), /^1\.0 200 \d+\.\d\d$/, 'measured from the real vCPU threads');
  const hosttime = Number((await guest.ask('hosttime')).split(' ')[2]);
  t.ok(Math.abs(hosttime * 1000 - Date.now()) < 5_000, 'hosttime is the host clock');
  t.equal(await guest.ask('HELP'), '1.0 200 ping help version physcpus loadavg physmem hosttime hypervisor vcpudelay');
  t.equal(await guest.ask('hostname'), '1.0 403 hostname is not permitted for this VM', 'sensitive item outside the policy');
  t.equal(await guest.ask('frobnicate'), '1.0 404 unknown command: frobnicate');
  t.equal(await guest.ask('PING "unterminated'), '1.0 400 bad request: unterminated quoted string starting at column 6');
  guest.write(`${'x'.repeat(300)}\n`);
  t.equal(await guest.readLine(), '1.0 400 bad request: line longer than 256 bytes\n');
  guest.write('1.0 200 echoed by a cooked tty\r\n\n\n');
  t.equal(await guest.ask('PING'), '1.0 200 pong', 'echoes and blank lines got no reply');

  const logged = vm.sidecar.lines.filter((line) => line['event'] === 'request').map((line) => `${String(line['command'])}:${String(line['status'])}`);
  t.ok(logged.includes('hostname:403') && logged.includes('frobnicate:404'), 'each request is in the audit log');
});

t.test('429 with burst and interval', async (t) => {
  const vm = await startVm(t, 'enabled = true\nburst = 3\ninterval = 60\n');
  const replies = [];
  for (let i = 0; i < 4; i += 1) replies.push(await vm.guest.ask('PING'));
  t.same(replies.slice(0, 3), ['1.0 200 pong', '1.0 200 pong', '1.0 200 pong']);
  const retry = Number(/^1\.0 429 too many requests; retry after (\d+) ms$/.exec(replies[3] ?? '')?.[1]);
  t.ok(retry > 50_000 && retry <= 60_000, `retry after ${retry} ms`);
});

t.test('policy hot reload: allow list change, then enabled -> disabled, then back', async (t) => {
  const vm = await startVm(t, GENEROUS);
  t.equal(await vm.guest.ask('hostname'), '1.0 403 hostname is not permitted for this VM');
  await changePolicy(vm, 'enabled = true\nallow = ["hostname"]\nburst = 1000\ninterval = 0.001\n');
  await vm.sidecar.waitFor((line) => line['event'] === 'cache-subscribed' && JSON.stringify(line['items']) === '["hostname"]');
  t.match(await askUntil(vm, 'hostname', /200/), /^1\.0 200 \S+$/, 'served once the cache sends it');
  t.equal(await vm.guest.ask('physcpus'), '1.0 403 physcpus is not permitted for this VM');
  await changePolicy(vm, 'enabled = false\n');
  t.equal(await vm.guest.ask('PING'), '1.0 403 hostinfo is not enabled for this VM');
  await changePolicy(vm, 'enabled = true\nallow = [1]\n');
  t.equal(await vm.guest.ask('PING'), '1.0 403 hostinfo is not enabled for this VM', 'an invalid policy fails closed');
  t.match(vm.sidecar.lines.filter((line) => line['event'] === 'policy').at(-1), { served: false, reason: /allow\[0\]/ });
  await changePolicy(vm, GENEROUS);
  t.equal(await vm.guest.ask('PING'), '1.0 200 pong');
});

t.test('SIGHUP re-reads the host config: the host switch turned off applies at once', async (t) => {
  const vm = await startVm(t, GENEROUS);
  t.equal(await vm.guest.ask('PING'), '1.0 200 pong');
  await writeFile(join(vm.dir, 'hostinfo.toml'), 'enabled = false\npolicy_dir = "policies"\nruntime_dir = "run"\n');
  const from = vm.sidecar.lines.length;
  vm.sidecar.child.kill('SIGHUP');
  t.match(await vm.sidecar.waitFor('policy', from), { served: false, reason: /^host switch is off/ });
  t.equal(await vm.guest.ask('PING'), '1.0 403 hostinfo is not enabled for this VM');
});

t.test('cache down: data items go 503, PING still answers; data returns when it is back', async (t) => {
  const vm = await startVm(t, GENEROUS);
  t.match(await vm.guest.ask('loadavg'), /^1\.0 200 /);
  await vm.cache.kill('SIGKILL');
  t.match(await askUntil(vm, 'loadavg', /503/), /^1\.0 503 host statistics unavailable: newest sample is \d+\.\d s old$/);
  t.equal(await vm.guest.ask('PING'), '1.0 200 pong');
  const from = vm.sidecar.lines.length;
  vm.cache = await vm.startCache();
  await vm.sidecar.waitFor('cache-data', from);
  t.match(await vm.guest.ask('loadavg'), /^1\.0 200 \d+\.\d\d \d+\.\d\d \d+\.\d\d$/);
});

t.test('the chardev connection is re-established after QEMU drops it', async (t) => {
  const vm = await startVm(t, GENEROUS);
  vm.guest.dropConnection();
  await vm.guest.connected(2);
  t.equal(await vm.guest.ask('PING "again"'), '1.0 200 again');
});

t.test('QEMU ends: the sidecar exits 0', async (t) => {
  const vm = await startVm(t, GENEROUS);
  vm.qemu.exited.catch(() => {});
  process.kill(vm.qemu.pid, 'SIGTERM');
  t.same(await vm.sidecar.exited, { code: 0, signal: null });
  t.match(vm.sidecar.lines.find((line) => line['event'] === 'stopping'), { reason: /QEMU shut down|QMP connection closed/ });
});

t.test('bad flags: exit 2 with a pointer to --help', async (t) => {
  const sidecar = spawnLogged(t, SIDECAR, ['--qmp', '/x']);
  t.same(await sidecar.exited, { code: 2, signal: null });
  t.equal(sidecar.stderr, 'hostinfo-sidecar: --qmp and --guest are required\nTry hostinfo-sidecar --help.\n');
});
