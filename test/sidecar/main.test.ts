// hostinfo-sidecar as the daemon runs it: a real hostinfod adopts a staged VM (real paused QEMU
// for QMP, the test's GuestEnd as QEMU's end of the hostinfo chardev), spawns the sidecar as the
// sidecar user over its channel, and the test speaks as the guest. Policies reach the sidecar
// only through the daemon; the sidecar reads no file.

import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import t from 'tap';
import { readLogFile } from '../helpers/log-file.js';
import { binPath, spawnLogged, type LoggedProcess, type Teardown } from '../helpers/logged-process.js';
import {
  changePolicy, makeSite, sidecarLogMark, stageVm, startBareDaemon, startDaemon, waitForSidecar, waitForSidecarLine, waitForStatus, vmStatus, writePolicy,
  type ConnectedVm, type Site, type StagedVm,
} from '../helpers/served-vm.js';

const UUID = '5b0c7e52-9f0e-4b8e-8a57-2f4f3c1d9e01';
const NAME = 'vm1';
const GENEROUS = 'enabled = true\nallow = ["physcpus", "physmem", "loadavg", "hypervisor", "vcpudelay", "hosttime"]\nburst = 1000\ninterval = 0.001\n';

t.setTimeout(120_000);

interface Served {
  readonly site: Site;
  readonly daemon: LoggedProcess;
  readonly vm: StagedVm;
  readonly sidecar: ConnectedVm;
}

/** A daemon serving one staged VM under `policy` (its <name>.toml), answered at least once. */
async function serve(t: Teardown, policy: string, options: { maxAge?: number } = {}): Promise<Served> {
  const site = await makeSite(t, { policy: 'enabled = false\n', ...options });
  await writePolicy(site, NAME, policy);
  // Uninstrumented: the sidecars' exit statuses are part of what is tested.
  const daemon = await startBareDaemon(t, site);
  const vm = await stageVm(t, site, NAME, { uuid: UUID, qemuArgs: ['-smp', '2'] });
  const sidecar = await waitForSidecar(site, NAME);
  return { site, daemon, vm, sidecar };
}

/** Asks until the reply matches, for states that arrive with time (a sample, staleness). */
async function askUntil(vm: StagedVm, request: string, pattern: RegExp): Promise<string> {
  for (const deadline = Date.now() + 20_000; ;) {
    const reply = await vm.guest.ask(request);
    if (pattern.test(reply) || Date.now() > deadline) return reply;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const sidecarLines = (s: Served) => readLogFile(s.site.sidecarLog(NAME));

t.test('answers the guest: every status a guest can provoke', async (t) => {
  const s = await serve(t, GENEROUS);
  const { guest } = s.vm;
  t.equal(await guest.ask('PING "hello"'), '1.0 200 hello');
  t.equal(await guest.ask('physcpus'), `1.0 200 ${availableParallelism()}`);
  const memTotal = /MemTotal:\s+(\d+) kB/.exec(await readFile('/proc/meminfo', 'utf8'))?.[1];
  t.match(await guest.ask('physmem'), new RegExp(`^1\\.0 200 total=${memTotal} free=\\d+ available=\\d+$`));
  t.match(await guest.ask('hypervisor'), /^1\.0 200 QEMU \d+\.\d+\.\d+$/);
  t.match(await askUntil(s.vm, 'vcpudelay', /200/), /^1\.0 200 \d+\.\d\d$/, 'measured from the real vCPU threads');
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

  // Audit lines are written as requests come (rate-bounded); the last ones may still be on their way.
  const audited = await waitForSidecarLine(s.site, NAME, (line) => line['event'] === 'request' && line['command'] === 'frobnicate');
  t.match(audited, { status: 404, vm: NAME }, 'each request is in the audit log, under the VM\'s name');
  const logged = (await sidecarLines(s)).filter((line) => line['event'] === 'request').map((line) => `${String(line['command'])}:${String(line['status'])}`);
  t.ok(logged.includes('hostname:403'), 'the refusal is audited too');
});

t.test('a request sent before the sidecar runs is answered, not dropped', async (t) => {
  // The guest writes at once; the daemon has only just adopted the VM.
  const site = await makeSite(t);
  await startDaemon(t, site);
  const vm = await stageVm(t, site, 'early');
  vm.guest.write('PING "first"\n');
  t.equal(await vm.guest.readLine(), '1.0 200 first\n');
});

t.test('429 with burst and interval', async (t) => {
  const s = await serve(t, 'enabled = true\nburst = 3\ninterval = 60\n');
  const replies = [];
  for (let i = 0; i < 4; i += 1) replies.push(await s.vm.guest.ask('PING'));
  t.same(replies.slice(0, 3), ['1.0 200 pong', '1.0 200 pong', '1.0 200 pong']);
  const retry = Number(/^1\.0 429 too many requests; retry after (\d+) ms$/.exec(replies[3] ?? '')?.[1]);
  t.ok(retry > 50_000 && retry <= 60_000, `retry after ${retry} ms`);
});

t.test('policy hot reload through the daemon: allow list, disabled, invalid, back', async (t) => {
  const s = await serve(t, GENEROUS);
  const { guest } = s.vm;
  t.equal(await guest.ask('hostname'), '1.0 403 hostname is not permitted for this VM');
  const mark = await sidecarLogMark(s.site, NAME);
  t.match(await changePolicy(s.site, NAME, NAME, 'enabled = true\nallow = ["hostname"]\nburst = 1000\ninterval = 0.001\n'), { served: true, items: ['hostname'] });
  // The daemon re-sends its newest sample filtered by the new policy, right after the decision.
  const data = await waitForSidecarLine(s.site, NAME, (line) => line['event'] === 'host-data', mark);
  t.same(data['items'], ['hostname'], 'the sidecar now receives the hostname and nothing else');
  t.match(await guest.ask('hostname'), /^1\.0 200 \S+$/);
  t.equal(await guest.ask('physcpus'), '1.0 403 physcpus is not permitted for this VM');
  await changePolicy(s.site, NAME, NAME, 'enabled = false\n');
  t.equal(await guest.ask('PING'), '1.0 403 hostinfo is not enabled for this VM');
  t.match(await changePolicy(s.site, NAME, NAME, 'enabled = true\nallow = [1]\n'), { served: false, reason: /allow\[0\]/ }, 'the daemon\'s reason reaches the sidecar log');
  t.equal(await guest.ask('PING'), '1.0 403 hostinfo is not enabled for this VM', 'an invalid policy fails closed');
  await changePolicy(s.site, NAME, NAME, GENEROUS);
  t.equal(await guest.ask('PING'), '1.0 200 pong');
  t.equal((await waitForSidecar(s.site, NAME)).sidecar.pid, s.sidecar.sidecar.pid, 'one sidecar process throughout');
});

t.test('SIGHUP: the daemon re-reads the host config (switch off applies at once); the sidecar ignores it', async (t) => {
  const s = await serve(t, GENEROUS);
  t.equal(await s.vm.guest.ask('PING'), '1.0 200 pong');
  let mark = await sidecarLogMark(s.site, NAME);
  process.kill(s.sidecar.sidecar.pid, 'SIGHUP');
  t.match(await waitForSidecarLine(s.site, NAME, (line) => line['event'] === 'signal', mark), { signal: 'SIGHUP' }, 'the sidecar logs the signal and carries on');
  t.equal(await s.vm.guest.ask('PING'), '1.0 200 pong');

  const config = await readFile(s.site.config, 'utf8');
  await writeFile(s.site.config, config.replace(/^enabled = true$/m, 'enabled = false'));
  mark = await sidecarLogMark(s.site, NAME);
  s.daemon.child.kill('SIGHUP');
  t.match(await waitForSidecarLine(s.site, NAME, (line) => line['event'] === 'policy', mark), { served: false, reason: /^host switch is off/ });
  t.equal(await s.vm.guest.ask('PING'), '1.0 403 hostinfo is not enabled for this VM');
});

t.test('daemon frozen: data items go 503, PING still answers; data returns when it runs again', async (t) => {
  const s = await serve(t, GENEROUS, { maxAge: 1 });
  t.match(await s.vm.guest.ask('loadavg'), /^1\.0 200 /);
  const mark = await sidecarLogMark(s.site, NAME);
  s.daemon.child.kill('SIGSTOP');
  t.teardown(() => void s.daemon.child.kill('SIGCONT'));
  t.match(await askUntil(s.vm, 'loadavg', /503/), /^1\.0 503 host statistics unavailable: newest sample is \d+\.\d s old$/);
  t.equal(await s.vm.guest.ask('PING'), '1.0 200 pong', 'the sidecar itself answers without the daemon');
  s.daemon.child.kill('SIGCONT');
  t.match(await askUntil(s.vm, 'loadavg', /200/), /^1\.0 200 \d+\.\d\d \d+\.\d\d \d+\.\d\d$/);
  t.notOk((await readLogFile(s.site.sidecarLog(NAME))).slice(mark).some((line) => line['event'] === 'stopping'), 'the same sidecar carried on');
});

t.test('QEMU drops the chardev connection: the daemon starts a sidecar that connects again', async (t) => {
  const s = await serve(t, GENEROUS);
  s.vm.guest.dropConnection();
  await s.vm.guest.connected(2);
  t.equal(await s.vm.guest.ask('PING "again"'), '1.0 200 again');
  const again = await waitForSidecar(s.site, NAME, { not: s.sidecar.sidecar.pid });
  t.equal(again.sidecar.restarts, 1, 'status counts the restart');
});

t.test('QEMU ends: the sidecar exits 0 and the VM is forgotten', async (t) => {
  const s = await serve(t, GENEROUS);
  const mark = await sidecarLogMark(s.site, NAME);
  s.vm.qemu.kill('SIGTERM');
  const stopped = await waitForSidecarLine(s.site, NAME, (line) => line['event'] === 'stopped', mark);
  t.match(stopped, { status: 0 }, 'exit status 0: nothing to restart');
  const stopping = (await sidecarLines(s)).slice(mark).find((line) => line['event'] === 'stopping');
  t.match(stopping, { reason: /QEMU shut down|QMP connection closed|QEMU is gone/ });
  await waitForStatus(s.site, 'the VM to be forgotten', (reply) => (vmStatus(reply, NAME) === undefined ? true : undefined));
  t.notOk(existsSync(s.vm.dir), 'its directory is removed');
  t.match(await s.daemon.waitFor('sidecar-exited'), { how: 'exit status 0' }, 'the daemon saw a clean exit');
});

t.test('bad flags: exit 2 with a pointer to --help; no channel, no run', async (t) => {
  const sidecar = spawnLogged(t, binPath('sidecar/main.js'), ['--qmp', '/x', '--guest', '/y']);
  t.same(await sidecar.exited, { code: 2, signal: null });
  t.match(sidecar.stderr, /^hostinfo-sidecar: .*--channel-fd.*\nTry hostinfo-sidecar --help\.\n$/);
  const help = spawnLogged(t, binPath('sidecar/main.js'), ['--help']);
  t.same(await help.exited, { code: 0, signal: null });
  t.match(help.stdout, /reads no\s+configuration file/);
});
