// Issue 11, end to end: a real guest (-smp 2 -m 256, TCG) asks for its own figures as the host sees
// them, and for ALL, and the test checks them against the host: vmcputime grows, vcpus = -smp,
// vmmem total = -m, cpulimit and memlimit = the cgroup this test puts QEMU in (when the machine
// lets it make one; else what the host's own cgroup files say), vmname and vmuuid = -name and
// -uuid, vmsession = the hash of the host's boot id, QEMU's pid and its start time. QEMU runs as
// root, so its sidecar runs as `sidecar_user` (hostinfo): these are files another user's process
// reads. The guest also runs the README's awk reader on ALL in busybox sh.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import t from 'tap';
import { processUid } from '../../common/proc.js';
import { ITEM_NAMES } from '../../policies/items.js';
import { readCgroupLimits, type LimitReading } from '../../sidecar/cgroup-limits.js';
import { vmSessionOf } from '../helpers/proc-stats.js';
import { parseAllReply } from '../sidecar/all-parser.js';
import { limitedCgroup } from '../sidecar/real-cgroup.js';
import { APPEND, auditOf, BOOT_MS, guestImage, Launcher, MACHINE, makeHost, repliesOf, sidecarsServing, until } from './harness.js';

t.setTimeout(10 * 60_000);

const VM = 'e2e-vmitems';
const UUID = '0d5c9e1a-3b7f-4e2d-8a6c-1f2e3d4c5b6a';
const README = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
const ALLVALUE = /```sh\n(# allvalue ITEM[\s\S]*?\n\})\n/.exec(README)?.[1];

const limitText = (reading: LimitReading, format: (n: number) => string): string =>
  'why' in reading ? 'unavailable' : reading.limit === null ? 'none' : format(reading.limit);

const image = await guestImage();
if (image.kind === 'skip') {
  t.plan(0, image.reason);
} else if (ALLVALUE === undefined) {
  t.fail('no allvalue function in the README');
} else {
  const guest = image.dir;

  t.test('a real guest reads its own figures and ALL; the host agrees', async (t) => {
    const host = await makeHost(t, guest);
    await host.policy(VM, `enabled = true\nallow = [${ITEM_NAMES.map((n) => `"${n}"`).join(', ')}]\nburst = 100\ninterval = 0.02\n`);
    const initrd = await host.initrd([
      '#!/bin/sh',
      'exec 3<>/dev/ttyS1',
      'ask() { echo "$2" >&3; r=$(head -n1 <&3); echo "R $1 [$r]"; }',
      'ask cpu1 vmcputime',
      // Work for the vCPUs, then more than one sample interval (0.2 s here) for the meter.
      'i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; sleep 1',
      'ask cpu2 vmcputime',
      // One of the two vCPUs busy while vmcpuusage is asked: about 50 % of the VM's capacity.
      '( while :; do :; done ) & busy=$!; sleep 1',
      'ask usage vmcpuusage',
      'kill $busy',
      'ask vcpus vcpus',
      'ask mem vmmem',
      'ask cpulimit cpulimit',
      'ask memlimit memlimit',
      'ask name vmname',
      'ask uuid vmuuid',
      'ask session vmsession',
      'ask all ALL',
      ALLVALUE,
      'echo ALL >&3; line=$(head -n1 <&3)',
      'for item in vcpus vmmem vmname cpumodel; do echo "V $item [$(printf \'%s\\n\' "$line" | allvalue $item)]"; done',
      '',
    ].join('\n'));

    const launcher = new Launcher(t, host, [], ['-name', VM, '-uuid', UUID, ...MACHINE, '-smp', '2', '-nographic', '-initrd', initrd, '-kernel', path.join(guest, 'vmlinuz'), '-append', APPEND]);
    const qemuPid = await launcher.qemuPid();
    const session = vmSessionOf(qemuPid);
    // QEMU into a cgroup with 1.5 CPUs and 2 GiB, right after the front became QEMU (the whole
    // process moves, threads included; the sidecar re-reads QEMU's cgroup every interval).
    const cgroup = limitedCgroup(t, { quotaUs: 150_000, periodUs: 100_000, memoryBytes: 2 * 1024 ** 3 });
    if (typeof cgroup !== 'string') cgroup.add(qemuPid);
    else t.comment(`no cgroup made (${cgroup}): cpulimit and memlimit are checked against the host's own files`);
    const hostView = readCgroupLimits(qemuPid);
    await until(() => sidecarsServing(qemuPid)[0] !== undefined, 30_000, () => 'the VM\'s sidecar to start');
    const sidecarUid = processUid(sidecarsServing(qemuPid)[0] ?? -1);

    const exit = await launcher.exit(BOOT_MS);
    t.same(exit, { code: 0, signal: null }, 'the guest powered off: exit 0', { stderr: launcher.stderr });
    const r = repliesOf(launcher.stdout);
    const value = (label: string): string => (r.get(label) ?? '').replace(/^1\.0 200 /, '');

    t.equal(sidecarUid, Number(execFileSync('id', ['-u', 'hostinfo'], { encoding: 'utf8' }).trim()), 'the sidecar read everything below as hostinfo, not as root');
    const [cpu1, cpu2] = [r.get('cpu1'), r.get('cpu2')].map((reply) => /^1\.0 200 (\d+\.\d\d)$/.exec(reply ?? '')?.[1]);
    t.ok(cpu1 !== undefined && cpu2 !== undefined && Number(cpu2) > Number(cpu1), `vmcputime grows: ${cpu1} then ${cpu2}`, { replies: [...r] });
    t.match(r.get('usage'), /^1\.0 200 \d{1,3}\.\d\d$/, 'vmcpuusage: a percentage');
    t.ok(Number(value('usage')) >= 10 && Number(value('usage')) <= 100, `vmcpuusage ${value('usage')} with one of two vCPUs busy (about 50)`);
    t.equal(r.get('vcpus'), '1.0 200 2', 'vcpus = -smp 2');
    t.equal(r.get('mem'), '1.0 200 total=262144 balloon=none', 'vmmem total = -m 256 in kB; no balloon device');
    if (typeof cgroup !== 'string') {
      t.equal(r.get('cpulimit'), '1.0 200 1.50', `cpulimit = the cgroup v${cgroup.version} quota this test set`);
      t.equal(r.get('memlimit'), '1.0 200 2097152', 'memlimit = its 2 GiB, in kB');
    } else {
      t.equal(value('cpulimit'), limitText(hostView.cpus, (n) => n.toFixed(2)), `cpulimit as the host's files say: ${JSON.stringify(hostView.cpus)}`);
      t.equal(value('memlimit'), limitText(hostView.memoryKb, String), `memlimit as the host's files say: ${JSON.stringify(hostView.memoryKb)}`);
    }
    t.equal(r.get('name'), `1.0 200 ${VM}`, 'vmname = -name');
    t.equal(r.get('uuid'), `1.0 200 ${UUID}`, 'vmuuid = -uuid');
    t.equal(r.get('session'), `1.0 200 ${session}`, 'vmsession = the hash of the host boot id, QEMU\'s pid and its start time');

    const all = `${r.get('all') ?? ''}\n`;
    t.comment(`ALL with every item allowed, on this host: ${all.length} bytes`);
    t.ok(all.length <= 1024, `ALL fits the reply limit (${all.length} bytes)`);
    const words = parseAllReply(all);
    t.same(words.map((word) => word.name), ITEM_NAMES, 'ALL: every item, in catalogue order');
    const got = new Map(words.map((word) => [word.name, word.value]));
    t.equal(got.get('vcpus'), '2');
    t.equal(got.get('vmmem'), 'total=262144 balloon=none');
    t.equal(got.get('vmname'), VM);
    t.equal(got.get('vmuuid'), UUID);
    t.equal(got.get('vmsession'), session);
    t.equal(got.get('cpulimit'), value('cpulimit'), 'ALL and the item alone agree');
    t.match(got.get('loadavg'), /^\d+\.\d\d \d+\.\d\d \d+\.\d\d$/, 'a quoted value read back whole');
    t.equal(r.size, 11, 'one reply per request');

    const v = new Map([...launcher.console.matchAll(/^V (\S+) \[(.*)\]$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));
    t.same([...v], [['vcpus', '2'], ['vmmem', 'total=262144 balloon=none'], ['vmname', VM], ['cpumodel', got.get('cpumodel') ?? '']], 'the README\'s awk reader, run by the guest\'s busybox, gets the same values');

    const audit = auditOf(await host.sidecarLog(VM));
    t.same(audit.filter(([command]) => command === 'all'), [['all', 200], ['all', 200]], 'each ALL is one request, one audit line');
  });
}
