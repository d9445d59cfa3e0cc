// Issue 13, end to end: the guest kit in a real busybox guest (examples/guest, TCG) booted under
// hostinfo-qemu, once over isa-serial (ttyS1, cooked until the client's stty; busybox has no
// flock, so the tty is locked with mkdir) and once over virtio-serial (the port found by name in
// sysfs, its node made with mknod, the exclusive open as the lock). Each boot runs one script in
// phases (test/guest-kit/kit.ts PHASE_PRELUDE) and hands over to the test on the console:
// every output mode; three concurrent callers; the recipes' own command lines (the textfile
// service's ExecStart, Telegraf's command, each Zabbix UserParameter); the sidecar stopped
// (SIGSTOP) and resumed; over ttyS1 a 429. The Prometheus outputs pass promtool here, and the
// guest's sysfs is checked against the udev rule.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parse as parseToml } from 'smol-toml';
import { CONTROL_SOCKET } from '../../common/runtime-tree.js';
import { fetchStatus } from '../../daemon/control-client.js';
import { readLogFile, waitForLogLine } from '../helpers/log-file.js';
import { APPEND, auditOf, BOOT_MS, guestImage, Launcher, MACHINE, makeHost, stripEscapes, type Host } from '../e2e/harness.js';
import { addKit, blocksOf, kitFile, parseUdevRules, PHASE_PRELUDE, udevMatches, type Block, type SysDevice } from './kit.js';
import { onlineCpus } from '../helpers/proc-stats.js';

t.setTimeout(10 * 60_000);

const ALLOW = ['physcpus', 'loadavg', 'cpuusage', 'physmem', 'uptime', 'vcpudelay'];
const POLICY = `enabled = true\nallow = ${JSON.stringify(ALLOW)}\nburst = 1000\ninterval = 0.001\n`;
const TEXTFILE = '/var/lib/prometheus/node-exporter/hostinfo.prom';

/** The recipes' command lines, read from the files an administrator copies. */
function recipes(): { textfile: string; telegraf: string; zabbix: { key: string; command: string }[] } {
  const textfile = /^ExecStart=(.*)$/m.exec(kitFile('hostinfo-textfile.service'))?.[1];
  const telegraf = (parseToml(kitFile('telegraf-hostinfo.conf')) as { inputs: { exec: { commands: string[] }[] } }).inputs.exec[0]?.commands[0];
  const zabbix = [...kitFile('zabbix-hostinfo.conf').matchAll(/^UserParameter=([^,]+),(.*)$/gm)].map((m) => ({
    key: (m[1] ?? '').replace('[*]', '[physcpus]'),
    // Zabbix puts the key's parameters in for $1..$9.
    command: (m[2] ?? '').replace(/\$1/g, 'physcpus'),
  }));
  if (textfile === undefined || telegraf === undefined || zabbix.length === 0) throw new Error('a recipe lost its command line');
  return { textfile, telegraf, zabbix };
}

const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

function script(transport: 'isa' | 'virtio'): string {
  const r = recipes();
  const zabbix = (prefix: string) => r.zabbix.map(({ key, command }, i) => `run ${prefix}${i} sh -c ${shq(command)} # ${key}`);
  return [
    '#!/bin/sh',
    'export PATH=/usr/local/bin:$PATH T=/tmp/kit',
    'mkdir -p $T',
    PHASE_PRELUDE,
    'wait_host() { echo "WAIT $1"; read -r _; }',
    // What the udev rule matches on, as this guest's sysfs has it.
    'for d in /sys/class/virtio-ports/* /sys/class/tty/ttyS1; do [ -e "$d" ] || continue; s=$(readlink "$d/subsystem"); a=; for f in name type; do [ -r "$d/$f" ] && a="$a $f=$(cat "$d/$f")"; done; echo "F ${s##*/} ${d##*/}$a"; done',
    'echo "TOOLS flock=$(command -v flock) stty=$(command -v stty)"',
    'run plain hostinfo physcpus',
    'run json hostinfo --json',
    'run prometheus hostinfo --prometheus',
    'run influx hostinfo --influx',
    'run forbidden hostinfo hostname',
    'run c1 hostinfo --json physcpus loadavg & run c2 hostinfo --prometheus physmem & run c3 hostinfo ping third & wait',
    ...(transport === 'virtio'
      ? ['port=$(. /lib/hostinfo.sh; hostinfo_port virtio-serial)', '(exec 4<>"$port"; sleep 1.5) & sleep 0.3', 'run held hostinfo ping held', 'wait']
      : []),
    'mkdir -p /var/lib/prometheus/node-exporter',
    `run textfile-1 ${r.textfile}`,
    `i1=$(ls -i ${TEXTFILE})`,
    `run textfile-2 ${r.textfile}`,
    `echo "INODES $i1 / $(ls -i ${TEXTFILE})"`,
    `run textfile-cat cat ${TEXTFILE}`,
    'run textfile-dir ls -a /var/lib/prometheus/node-exporter',
    `run telegraf sh -c ${shq(r.telegraf)}`,
    ...zabbix('zabbix-'),
    'wait_host stop',
    'run stopped hostinfo --timeout 2 physcpus',
    ...zabbix('zstopped-'),
    `run stopped-textfile hostinfo-textfile ${TEXTFILE} --timeout 2`,
    'run stopped-dir ls -a /var/lib/prometheus/node-exporter',
    // A caller killed while it holds the port (an agent's own timeout): its lock and marker stay.
    "run killed sh -c 'hostinfo --timeout 5 physcpus & sleep 0.5; kill -9 $!; sleep 0.1; ls /tmp'",
    'wait_host cont',
    'run resumed hostinfo ping resumed',
    'run resumed-json hostinfo --json physcpus loadavg',
    ...(transport === 'isa'
      ? ['wait_host limit', 'run limit-1 hostinfo ping one', 'run limit-2 hostinfo ping two', 'run limit-json hostinfo --json physcpus']
      : []),
    '',
  ].join('\n');
}

const memTotalKb = (): number => Number(/^MemTotal:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]);

function promtool(t: Test, text: string, what: string): void {
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  t.equal(check.status, 0, `${what}: promtool check metrics`, { output: check.stdout + check.stderr, text });
}

interface Boot {
  readonly console: string;
  readonly blocks: Map<string, Block>;
  readonly audit: [string, number][];
  block(label: string): Block;
}

/** Boots the guest with the kit, answering its hand-overs; `actions` run when it waits for them. */
async function boot(t: Test, host: Host, guestDir: string, name: string, transport: 'isa' | 'virtio', actions: Record<string, () => Promise<void>>): Promise<Boot> {
  const initrd = await host.initrd(script(transport));
  await addKit(initrd);
  const kernel = ['-kernel', path.join(guestDir, 'vmlinuz'), '-append', APPEND];
  const launcher = new Launcher(t, host, transport === 'virtio' ? ['--transport', 'virtio-serial'] : [], ['-name', name, ...MACHINE, '-nographic', '-initrd', initrd, ...kernel]);
  const started = performance.now();
  for (const [phase, action] of Object.entries(actions)) {
    await launcher.output(new RegExp(`^WAIT ${phase}$`, 'm'));
    await action();
    launcher.child.stdin?.write('go\n');
  }
  const exit = await launcher.exit(BOOT_MS);
  t.comment(`${name}: QEMU start to exit ${((performance.now() - started) / 1000).toFixed(1)} s`);
  t.same(exit, { code: 0, signal: null }, 'the guest ran its phases and powered off', { stderr: launcher.stderr });
  t.match(launcher.stdout, /^hostinfo-guest: exit 0$/m);
  const text = stripEscapes(launcher.stdout);
  const blocks = blocksOf(text);
  const audit = auditOf(await host.sidecarLog(name));
  t.comment(`${name}: centiseconds per call: ${[...blocks].map(([label, block]) => `${label}=${block.cs}`).join(' ')}`);
  return {
    console: text, blocks, audit,
    block(label) {
      const found = blocks.get(label);
      if (found === undefined) throw new Error(`no block ${label} on the console:\n${text.slice(-4000)}`);
      return found;
    },
  };
}

async function sidecarPid(host: Host, name: string): Promise<number> {
  const reply = await fetchStatus(path.join(host.runtimeDir, CONTROL_SOCKET));
  const pid = reply.vms.find((vm) => vm.id === name)?.sidecar.pid;
  if (typeof pid !== 'number') throw new Error(`no sidecar pid for ${name} in the daemon's status`);
  return pid;
}

function devices(consoleText: string): SysDevice[] {
  return [...consoleText.matchAll(/^F (\S+) (\S+)((?: \w+=\S+)*)$/gm)].map((m) => ({
    subsystem: m[1] ?? '', kernel: m[2] ?? '',
    attrs: new Map([...(m[3] ?? '').matchAll(/ (\w+)=(\S+)/g)].map((a) => [a[1] ?? '', a[2] ?? ''] as [string, string])),
  }));
}

/** The checks both transports share. */
function common(t: Test, b: Boot, cpus: number): void {
  t.match(b.console, /^TOOLS flock= stty=\S+$/m, 'the guest\'s busybox has stty and no flock');
  t.match(b.block('plain'), { rc: 0, out: `${cpus}\n`, err: [] }, 'plain: the host\'s CPUs');
  const json = JSON.parse(b.block('json').out) as Record<string, unknown>;
  t.same(Object.keys(json), ALLOW, '--json: every item the policy allows, in catalogue order');
  t.equal(json['physcpus'], cpus);
  t.equal((json['physmem'] as { total?: number }).total, memTotalKb(), 'physmem total = the host\'s MemTotal, in kB');
  t.equal(b.block('json').rc, 0);
  const prom = b.block('prometheus');
  t.equal(prom.rc, 0);
  promtool(t, prom.out, '--prometheus');
  t.match(prom.out, new RegExp(`^hostinfo_host_memory_total_bytes ${memTotalKb() * 1024}$`, 'm'), 'kB in bytes');
  t.match(prom.out, /^hostinfo_vm_vcpu_delay_ratio [\d.]+$/m, 'the per-VM item as hostinfo_vm_*');
  t.match(b.block('influx'), { rc: 0, out: new RegExp(`^hostinfo_host cpus=${cpus}i,load1=.*\\nhostinfo_vm vcpu_delay_ratio=[\\d.]+\\n$`) }, '--influx');
  t.match(b.block('forbidden'), { rc: 1, out: '', err: ['hostinfo: 1.0 403 hostname is not permitted for this VM'] }, 'a 403: exit 1, the reply on stderr');

  const [c1, c2, c3] = [b.block('c1'), b.block('c2'), b.block('c3')];
  t.match(c1, { rc: 0, out: new RegExp(`^\\{"physcpus":${cpus},"loadavg":\\[[\\d.]+,[\\d.]+,[\\d.]+\\]\\}\\n$`) }, 'concurrent caller 1 got its answers');
  t.match(c2, { rc: 0, out: /^hostinfo_host_memory_total_bytes \d+$/m }, 'concurrent caller 2 got its answer');
  t.match(c3, { rc: 0, out: 'third\n' }, 'concurrent caller 3 got its answer');
  const starts = [c1.at, c2.at, c3.at];
  t.ok(Math.max(...starts) - Math.min(...starts) <= 20, `they started together (at ${starts.join(', ')} cs)`);

  // The recipes' command lines, verbatim.
  t.match(b.block('textfile-1'), { rc: 0, err: [] }, 'the textfile service\'s ExecStart');
  t.match(b.block('textfile-2'), { rc: 0, err: [] }, 'and again');
  const inodes = /^INODES\s+(\d+) \S+ \/\s+(\d+) \S+$/m.exec(b.console);
  t.ok(inodes !== null && inodes[1] !== inodes[2], 'the file was replaced by a rename (a new inode), not rewritten in place', { inodes: inodes?.[0] });
  promtool(t, b.block('textfile-cat').out, 'the textfile');
  t.match(b.block('textfile-cat').out, new RegExp(`^hostinfo_host_cpus ${cpus}$`, 'm'));
  t.same(b.block('textfile-dir').out.split('\n').filter(Boolean).sort(), ['.', '..', 'hostinfo.prom'], 'no temporary file left beside it');
  t.match(b.block('telegraf'), { rc: 0, out: new RegExp(`^hostinfo_host cpus=${cpus}i,`) }, 'Telegraf\'s command: line protocol');
  const r = recipes();
  r.zabbix.forEach(({ key }, i) => {
    const run = b.block(`zabbix-${i}`);
    t.equal(run.rc, 0, `Zabbix ${key}: exit 0`, { err: run.err });
    t.ok(run.cs < 300, `Zabbix ${key}: within the agent's 3 s (${run.cs} cs)`);
    t.match(run.out, key.startsWith('hostinfo[') ? `${cpus}\n` : new RegExp(`^\\{"physcpus":${cpus},`), `Zabbix ${key}: the value`);
  });

  // The sidecar stopped: every call ends within its limit; then the port is in step again.
  const stopped = b.block('stopped');
  t.match(stopped, { rc: 4, out: '', err: [/^hostinfo: no reply to 'physcpus' within 2 s from \//] }, 'sidecar stopped: exit 4, said on stderr');
  t.ok(stopped.cs >= 200 && stopped.cs < 260, `it gave up after its 2 s (${stopped.cs} cs)`);
  r.zabbix.forEach(({ key }, i) => {
    const run = b.block(`zstopped-${i}`);
    t.not(run.rc, 0, `Zabbix ${key}, sidecar stopped: exit ${run.rc}`);
    t.ok(run.cs < 300, `Zabbix ${key}, sidecar stopped: ended before the agent's 3 s (${run.cs} cs)`);
  });
  t.match(b.block('stopped-textfile'), { rc: 4 }, 'the textfile writer, sidecar stopped: exit 4');
  t.same(b.block('stopped-dir').out.split('\n').filter(Boolean).sort(), ['.', '..'], 'and it removed the file rather than leave old figures');
  const killed = b.block('killed').out.split('\n');
  t.ok(killed.some((file) => /^hostinfo\..*\.resync$/.test(file)), 'a killed caller leaves its resync marker', { killed });
  const resumed = b.block('resumed');
  t.match(resumed, { rc: 0, out: 'resumed\n', err: [] }, 'resumed: the next call gets its own reply, not a late one');
  t.ok(resumed.cs < 100, `at once, past any lock the killed caller left (${resumed.cs} cs)`);
  t.match(b.block('resumed-json'), { rc: 0, out: new RegExp(`^\\{"physcpus":${cpus},"loadavg":\\[`) }, 'and the one after it');
  t.same(b.audit.filter(([, status]) => status === 400), [], 'the sidecar saw no malformed line (no interleaved requests)');
  const all = b.audit.find(([command]) => command === 'all');
  t.comment(`--json asked ALL first: ${all === undefined ? 'no' : `answered ${all[1]}`}${all?.[1] === 404 ? ' (this sidecar has no ALL: HELP, then item by item)' : ''}`);
}

const image = await guestImage();
if (image.kind === 'skip') {
  t.plan(0, image.reason);
} else {
  const cpus = onlineCpus();

  t.test('the udev rule and the client name the same port', async (t) => {
    const rules = parseUdevRules(kitFile('60-hostinfo.rules'));
    t.equal(rules.length, 2, 'two rules: virtio-serial and ttyS1');
    for (const rule of rules) {
      t.equal(rule.assignments.get('SYMLINK+'), 'hostinfo', 'a /dev/hostinfo link');
      t.equal(rule.assignments.get('GROUP'), 'hostinfo', 'group hostinfo');
      t.equal(rule.assignments.get('MODE'), '0660');
    }
    t.match(kitFile('hostinfo'), /for hi_p in \/dev\/hostinfo /, 'the client looks for /dev/hostinfo first');
    t.match(kitFile('hostinfo-tmpfiles.conf'), /^d \/run\/hostinfo 2770 root hostinfo -$/m, 'the tmpfiles recipe makes /run/hostinfo for group hostinfo');
    t.match(kitFile('hostinfo'), /hi_state=\$\{HOSTINFO_STATE_DIR:-\/run\/hostinfo\}/, 'where the client keeps its shared files');
  });

  t.test('isa-serial: ttyS1, cooked until stty, mkdir lock', async (t) => {
    const host = await makeHost(t, image.dir);
    const name = 'kit-isa';
    await host.policy(name, POLICY);
    let pid = 0;
    t.teardown(() => { try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ } });
    const b = await boot(t, host, image.dir, name, 'isa', {
      stop: async () => { pid = await sidecarPid(host, name); process.kill(pid, 'SIGSTOP'); },
      cont: async () => void process.kill(pid, 'SIGCONT'),
      limit: async () => {
        const log = path.join(host.runtimeDir, 'logs', `${name}.sidecar.log`);
        const mark = (await readLogFile(log)).length;
        await host.policy(name, `enabled = true\nallow = ${JSON.stringify(ALLOW)}\nburst = 1\ninterval = 60\n`);
        await waitForLogLine(log, (line) => line['event'] === 'policy', mark);
      },
    });
    common(t, b, cpus);
    const found = devices(b.console);
    const rules = parseUdevRules(kitFile('60-hostinfo.rules'));
    const tty = found.find((d) => d.kernel === 'ttyS1');
    t.match(tty, { subsystem: 'tty' }, 'the guest has ttyS1 in subsystem tty', { found });
    t.same(rules.map((rule) => tty !== undefined && udevMatches(rule, tty)), [false, true], 'the udev rule for ttyS1 matches it (a UART is there: type 4)');
    t.same(found.filter((d) => d.subsystem === 'virtio-ports'), [], 'no virtio port');

    t.ok(b.block('killed').out.split('\n').includes('hostinfo.ttyS1.lock'), 'over ttyS1 its mkdir lock stays too (broken by the next caller: its owner is dead)');
    t.match(b.block('limit-1'), { rc: 0, out: 'one\n' }, 'burst 1 interval 60: the first request');
    const limited = b.block('limit-2');
    t.match(limited, { rc: 1, out: '', err: [/^hostinfo: 1\.0 429 too many requests; retry after \d+ ms$/] }, 'the next: exit 1, the 429 on stderr');
    t.ok(limited.cs < 100, `at once: its wait does not fit the 5 s timeout (${limited.cs} cs)`);
    t.match(b.block('limit-json'), { rc: 1, out: '{"physcpus":null}\n', err: [/^hostinfo: physcpus: 1\.0 429 /] }, 'a document: the item null, exit 1');
  });

  t.test('virtio-serial: found in sysfs, node made, exclusive open as the lock', async (t) => {
    const host = await makeHost(t, image.dir);
    const name = 'kit-virtio';
    await host.policy(name, POLICY);
    let pid = 0;
    t.teardown(() => { try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ } });
    const b = await boot(t, host, image.dir, name, 'virtio', {
      stop: async () => { pid = await sidecarPid(host, name); process.kill(pid, 'SIGSTOP'); },
      cont: async () => void process.kill(pid, 'SIGCONT'),
    });
    common(t, b, cpus);
    const held = b.block('held');
    t.match(held, { rc: 0, out: 'held\n' }, 'a port another program holds open (EBUSY): the client waits for it');
    t.ok(held.cs >= 100, `until that program closed it (${held.cs} cs)`);
    const found = devices(b.console);
    const rules = parseUdevRules(kitFile('60-hostinfo.rules'));
    const port = found.find((d) => d.subsystem === 'virtio-ports');
    t.match(port, { attrs: new Map([['name', 'org.hostinfo.0']]) }, 'the guest\'s virtio port is named org.hostinfo.0', { found });
    t.same(rules.map((rule) => port !== undefined && udevMatches(rule, port)), [true, false], 'the virtio rule matches it');
    const tty = found.find((d) => d.kernel === 'ttyS1');
    t.same(rules.map((rule) => tty !== undefined && udevMatches(rule, tty)), [false, false], 'and the ttyS1 rule does not match the UART-less ttyS1 (type 0)', { tty });
  });
}
