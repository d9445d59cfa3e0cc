// Issue 11 §3, end to end: hostinfo.toml has [vhostmd] enabled = true, so the launcher gives a
// real guest vhostmd's port org.github.vhostmd.1 beside its hostinfo port, and the guest asks it
// the way SAP's unmodified vm-dump-metrics does (vhostmd 1.2's vm-dump-metrics/main.c and
// libmetrics.c): open /dev/virtio-ports/org.github.vhostmd.1 (a link the guest makes itself, as
// udev would: this initramfs has none), write the 18 bytes `GET /metrics/XML\n\n`, read until the
// data ends with `\n\n` or 5 s pass, close. The replies go to the host in base64, byte for byte,
// and the test checks them there: xmllint, host metrics against /proc, VM metrics against -m and
// QEMU's own counters, the cached reply inside the rate window, INVALID REQUEST, a partial
// request dropped when the guest closes the port, one token bucket with the line port, the audit
// and counters, hostinfo-ctl explain; and a disabled VM's empty document.

import { readFileSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { availableParallelism, hostname, release } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { fetchStatus } from '../../daemon/control-client.js';
import type { VmStatus } from '../../daemon/messages.js';
import { ITEM_NAMES } from '../../policies/items.js';
import { readCgroupLimits } from '../../sidecar/cgroup-limits.js';
import { hostCounters } from '../helpers/proc-stats.js';
import { metricLines, metricValues, xmllintProblem } from '../sidecar/vhostmd/xmllint.js';
import { APPEND, auditOf, BOOT_MS, guestImage, Launcher, MACHINE, makeHost, REPO, run, stripEscapes, type Host } from './harness.js';

t.setTimeout(10 * 60_000);

const UUID = '3e1f6c2a-9b8d-4e7f-a6c5-0d1e2f3a4b5c';
const PORT = 'org.github.vhostmd.1';

/**
 * The guest side: vm-dump-metrics' rules in busybox sh. `ask LABEL REQUEST` writes REQUEST (printf
 * format) on a fresh open and captures the raw reply with a background cat, polling until it ends
 * with \n\n or 5 s have passed; it prints `T LABEL <centiseconds>` and the reply as `B LABEL <base64>`.
 */
const CLIENT = [
  '. /lib/hostinfo.sh',
  'i=0; until dev=$(HOSTINFO_PORT_NAME=' + PORT + ' hostinfo_port virtio-serial 2>/dev/null); do i=$((i+1)); [ $i -lt 100 ] || { echo "NO PORT"; exit 1; }; usleep 100000; done',
  `mkdir -p /dev/virtio-ports && ln -sf "$dev" /dev/virtio-ports/${PORT}`,
  'cs() { read -r up _ </proc/uptime; echo "${up%.*}${up#*.}"; }',
  'ended() { [ "$(tail -c 2 "$1" | od -An -tx1 | tr -d " \\n")" = 0a0a ]; }',
  'ask() {',
  `  f=/tmp/reply-$1; : >"$f"; exec 3<>/dev/virtio-ports/${PORT}`,
  '  cat <&3 >"$f" & reader=$!',
  '  start=$(cs); printf "$2" >&3',
  '  while ! ended "$f" && [ $(( $(cs) - start )) -lt 500 ]; do usleep 20000; done',
  '  echo "T $1 $(( $(cs) - start ))"',
  '  kill $reader; wait $reader 2>/dev/null; exec 3<&-',
  '  base64 "$f" | while read -r l; do echo "B $1 $l"; done',
  '}',
].join('\n');

/** The `B` lines of each label joined and decoded: the reply's exact bytes. */
function repliesOf(console: string): Map<string, Buffer> {
  const parts = new Map<string, string>();
  for (const m of stripEscapes(console).matchAll(/^B (\S+) (\S+)$/gm)) parts.set(m[1] ?? '', `${parts.get(m[1] ?? '') ?? ''}${m[2] ?? ''}`);
  return new Map([...parts].map(([label, text]) => [label, Buffer.from(text, 'base64')]));
}

function timesOf(console: string): Map<string, number> {
  return new Map([...stripEscapes(console).matchAll(/^T (\S+) (\d+)$/gm)].map((m) => [m[1] ?? '', Number(m[2])]));
}

const meminfoKb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? NaN);

/** QEMU's own CPU seconds (utime + stime, /proc/<pid>/stat fields 14 and 15, at 100 ticks/s). */
function qemuCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function vhostmdHost(t: Parameters<typeof makeHost>[0], image: string): Promise<Host> {
  const host = await makeHost(t, image);
  await appendFile(host.configPath, '\n[vhostmd]\nenabled = true\n');
  return host;
}

function ctl(host: Host, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(path.join(REPO, 'bin', 'hostinfo-ctl'), ['--config', host.configPath, '--runtime-dir', host.runtimeDir, ...args]);
}

const image = await guestImage();
if (image.kind === 'skip') {
  t.plan(0, image.reason);
} else {
  const guest = image.dir;
  const boot = (host: Host, name: string, initrd: string, launcherArgs: readonly string[] = []): Launcher =>
    new Launcher(t, host, launcherArgs, ['-name', name, '-uuid', UUID, ...MACHINE, '-smp', '2', '-nographic', '-initrd', initrd, '-kernel', path.join(guest, 'vmlinuz'), '-append', APPEND]);

  t.test('vm-dump-metrics\' way over a real guest: the document, the cache, INVALID REQUEST, one bucket', async (t) => {
    const VM = 'e2e-vhostmd';
    const host = await vhostmdHost(t, guest);
    // One token per 60 s: every request after the first is inside the rate window.
    await host.policy(VM, `enabled = true\nallow = [${ITEM_NAMES.map((n) => `"${n}"`).join(', ')}]\nburst = 1\ninterval = 60\n`);
    const initrd = await host.initrd([
      '#!/bin/sh',
      CLIENT,
      "ask first 'GET /metrics/XML\\n\\n'",
      "ask second 'GET /metrics/XML\\n\\n'",
      "ask bad 'GET /metrics/xml\\n\\n'",
      // A client that gave up half way (vm-dump-metrics closes after its 5 s): the next one must
      // not have its request glued to the leftover. The next run comes 2 s later: QEMU reports a
      // port's opens and closes at most once a second (its QMP event rate limit).
      `exec 3<>/dev/virtio-ports/${PORT}; printf 'GET /met' >&3; sleep 1; exec 3<&-; sleep 2`,
      "ask afterpartial 'GET /metrics/XML\\r\\n\\r\\n'",
      'exec 4<>/dev/ttyS1; echo physcpus >&4; read -r -t 5 line <&4; echo "L [$line]"; exec 4<&-',
      'echo DONE; sleep 4',
      '',
    ].join('\n'));
    const launcher = boot(host, VM, initrd);
    const qemuPid = await launcher.qemuPid();
    await launcher.output(/^DONE$/m, BOOT_MS);
    // While the guest waits: the counters the sidecar reported, hostinfo-ctl explain, QEMU's CPU time.
    const control = path.join(host.runtimeDir, 'hostinfod.sock');
    // The sidecar reports counters once a second: polled, within the guest's 4 s.
    let counted: VmStatus | undefined;
    for (const deadline = Date.now() + 3_000; (counted?.counters?.requests ?? 0) < 5 && Date.now() < deadline;) {
      counted = (await fetchStatus(control, 2_000)).vms.find((entry) => entry.vm.name === VM);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const explain = await ctl(host, ['explain', VM]);
    // /proc/meminfo while this guest still runs, seconds after the document's sample: other tests
    // run on this machine, so the memory figures are compared within a bound, not exactly.
    const memory = { free: Math.floor(meminfoKb('MemFree') / 1024), used: Math.floor((meminfoKb('MemTotal') - meminfoKb('MemAvailable')) / 1024), swapFree: Math.floor(meminfoKb('SwapFree') / 1024) };
    const cpuSeconds = qemuCpuSeconds(qemuPid);
    const counters = hostCounters();
    const limits = readCgroupLimits(qemuPid);
    const exit = await launcher.exit(BOOT_MS);
    t.same(exit, { code: 0, signal: null }, 'the guest powered off: exit 0', { stderr: launcher.stderr });

    const replies = repliesOf(launcher.stdout);
    const first = replies.get('first');
    if (first === undefined) throw new Error(`no reply captured; console:\n${launcher.console.slice(-4000)}`);
    const text = first.toString('utf8');
    t.equal(xmllintProblem(first), undefined, 'xmllint on the host: well-formed');
    t.ok(text.startsWith('<metrics>\n') && text.endsWith('</metrics>\n\n'), 'framed as vhostmd frames it');
    t.equal(text.indexOf('\n\n'), text.length - 2, 'no blank line before the end');
    t.notOk(first.includes(0), 'no NUL');
    const times = timesOf(launcher.stdout);
    t.ok((times.get('first') ?? 999) < 500, `answered within vm-dump-metrics' 5 s: ${times.get('first')} cs`);

    const values = metricValues(text);
    const metrics = metricLines(text);
    t.ok(metrics.every((m) => m.unit !== ''), 'a unit on every metric');
    t.equal(values.get('host:NumberOfPhysicalCPUs'), String(availableParallelism()), 'NumberOfPhysicalCPUs: the host\'s CPUs');
    t.equal(values.get('host:HostName'), hostname(), 'HostName');
    t.equal(values.get('host:HostSystemInfo'), `Linux ${release()}`, 'HostSystemInfo: the kernel release');
    t.match(values.get('host:VirtProductInfo'), /^\d+\.\d+\.\d+$/, 'VirtProductInfo: QEMU\'s version');
    t.equal(values.get('host:VirtualizationVendor'), 'QEMU');
    const near = (got: string | undefined, want: number, what: string): void => {
      const value = Number(got);
      t.ok(Math.abs(value - want) <= Math.max(512, want * 0.25), `${what}: ${got} MiB, /proc/meminfo then ${want}`);
    };
    near(values.get('host:FreePhysicalMemory'), memory.free, 'FreePhysicalMemory');
    near(values.get('host:MemoryAllocatedToVirtualServers'), memory.used, 'MemoryAllocatedToVirtualServers (MemTotal - MemAvailable)');
    t.equal(values.get('host:FreeVirtualMemory'), String(memory.swapFree), 'FreeVirtualMemory: free swap');
    t.ok(Math.abs(Number(values.get('host:Time')) - Date.now() / 1000) < 120, `Time: the host clock (${values.get('host:Time')})`);
    // Counters since boot, read here seconds after the document's sample: at most what /proc said
    // then, and not less by more than this busy machine could add meanwhile.
    const grown = (got: string | undefined, now: number, drift: number, what: string): void => {
      const value = Number(got);
      t.ok(value <= now && value >= now - drift, `${what}: ${got}, /proc then ${now.toFixed(2)}`);
    };
    grown(values.get('host:PagedInMemory'), Math.floor(counters.pgpgin / 1024), 1024, 'PagedInMemory: pgpgin in MiB');
    grown(values.get('host:PagedOutMemory'), Math.floor(counters.pgpgout / 1024), 1024, 'PagedOutMemory: pgpgout in MiB');
    grown(values.get('host:TotalCPUTime'), counters.busySeconds, availableParallelism() * 30, 'host TotalCPUTime: busy CPU seconds since boot');

    const vmMetrics = metrics.filter((m) => m.context === 'vm');
    t.same(vmMetrics.map((m) => m.name), ['TotalCPUTime', 'ResourceProcessorLimit', 'ResourceMemoryLimit', 'PhysicalMemoryAllocatedToVirtualSystem'], 'every VM metric');
    t.ok(vmMetrics.every((m) => m.uuid === UUID && m.id === '1'), 'VM metrics carry -uuid');
    const vmCpu = Number(values.get('vm:TotalCPUTime'));
    t.ok(vmCpu > 0 && vmCpu <= cpuSeconds, `TotalCPUTime ${vmCpu} s: QEMU's CPU time then, at most its ${cpuSeconds} s later`);
    t.equal(values.get('vm:PhysicalMemoryAllocatedToVirtualSystem'), '256', '-m 256, no balloon');
    const cpus = 'why' in limits.cpus || limits.cpus.limit === null ? 2 : Math.min(2, limits.cpus.limit);
    t.equal(values.get('vm:ResourceProcessorLimit'), cpus.toFixed(2), `ResourceProcessorLimit: -smp 2 or QEMU's cgroup quota (${JSON.stringify(limits.cpus)})`);
    const memoryLimit = 'why' in limits.memoryKb || limits.memoryKb.limit === null ? 256 : Math.min(256, Math.floor(limits.memoryKb.limit / 1024));
    t.equal(values.get('vm:ResourceMemoryLimit'), String(memoryLimit), 'ResourceMemoryLimit: -m or QEMU\'s cgroup limit');

    t.same(replies.get('second'), first, 'inside the rate window: the cached reply, byte for byte');
    t.ok((times.get('second') ?? 999) < 500, `and at once: ${times.get('second')} cs`);
    t.equal(replies.get('bad')?.toString('latin1'), 'INVALID REQUEST\n\n', 'a malformed request: vhostmd\'s answer');
    t.same(replies.get('afterpartial'), first, 'after a partial request and a close, the next request is whole (CRLF form; still rate-limited: the cache)');
    t.match(stripEscapes(launcher.stdout), /^L \[1\.0 429 too many requests; retry after \d+ ms\]$/m, 'the line port shares the bucket: 429');

    const audit = auditOf(await host.sidecarLog(VM));
    t.same(audit, [['vhostmd', 200], ['vhostmd', 429], ['vhostmd-invalid', 400], ['vhostmd', 429], ['physcpus', 429]], 'audited: the cached replies as 429s');
    t.match(counted, { vhostmd: true, counters: { requests: 5, ok: 1, rateLimited: 3, errors: 1 } }, 'counted: the status says so, and that the VM has the port');
    t.match(explain.stdout, /^vhostmd: +on: port org\.github\.vhostmd\.1, answered under the policy above/m, 'hostinfo-ctl explain: on');
  });

  t.test('a VM whose policy is not enabled: the empty document (virtio-serial: one bus for both ports)', async (t) => {
    const VM = 'e2e-vhostmd-off';
    const host = await vhostmdHost(t, guest);
    await host.policy(VM, 'enabled = false\n');
    const initrd = await host.initrd(['#!/bin/sh', CLIENT, "ask off 'GET /metrics/XML\\n\\n'", "ask bad 'nonsense\\n\\n'", ''].join('\n'));
    const launcher = boot(host, VM, initrd, ['--transport', 'virtio-serial']);
    const exit = await launcher.exit(BOOT_MS);
    t.same(exit, { code: 0, signal: null }, 'exit 0', { stderr: launcher.stderr });
    const replies = repliesOf(launcher.stdout);
    const off = replies.get('off');
    t.equal(off?.toString('utf8'), '<metrics>\n<!-- hostinfo is not enabled for this VM -->\n</metrics>\n\n', 'a well-formed document with no metrics, saying why');
    t.equal(off === undefined ? 'none' : xmllintProblem(off), undefined, 'xmllint: well-formed');
    t.equal(replies.get('bad')?.toString('latin1'), 'INVALID REQUEST\n\n');
    t.same(auditOf(await host.sidecarLog(VM)), [['vhostmd', 403], ['vhostmd-invalid', 400]]);
  });
}
