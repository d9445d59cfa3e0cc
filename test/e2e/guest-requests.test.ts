// Issue 5, end to end: a real Linux guest (Debian cloud kernel + busybox, TCG) booted under
// hostinfo-qemu asks the host over the port the launcher added, and the test checks from what the
// guest printed on its console. One boot per transport/console layout; each guest script groups
// several requests.
//
//   -nographic, isa-serial: a stock cooked-mode tty (no stty) and only `exec 3<>`, `echo`, `head`;
//     200 values against the host's /proc, hypervisor from QMP, 403 sensitive, 404, 400s,
//     resynchronisation, the audit log, the console through the launcher's stdout.
//   -nodefaults -serial file:...: the hostinfo port is ttyS1 (the guest's own serial table says so),
//     and 429 under a burst.
//   --transport virtio-serial: the port found by name in sysfs, no extra isa-serial.
// After every run: exit 0, QEMU's own (the guest powered off), VM runtime directory gone.
// All of it on each QEMU of test/helpers/qemu-versions.ts (7.2 and 10.0), named with --qemu.

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { APPEND, auditedRequests, auditOf, stripEscapes, BOOT_MS, guestImage, Launcher, MACHINE, makeHost, PACKAGE_VERSION, repliesOf, vmDirRemoved } from './harness.js';
import { formatQemuVersion } from '../../launcher/qemu-versions.js';
import { forEachQemu, qemuLegs } from '../helpers/qemu-versions.js';
import { onlineCpus } from '../helpers/proc-stats.js';

t.setTimeout(10 * 60_000); // a first build downloads a kernel; each boot is bounded by BOOT_MS

interface HostNow {
  readonly loadavg: number[];
  readonly uptime: number;
  readonly time: number;
}

function hostNow(): HostNow {
  return {
    loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number),
    uptime: Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]),
    time: Date.now() / 1000,
  };
}

function memTotalKb(): number {
  const m = /^MemTotal:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return Number(m?.[1]);
}

/** `S <n>: uart:<type> ...` lines the guest printed from its /proc/tty/driver/serial. */
function serialTable(consoleText: string): Map<number, string> {
  const table = new Map<number, string>();
  for (const m of stripEscapes(consoleText).matchAll(/^S (\d+): uart:(\S+)(.*)$/gm)) table.set(Number(m[1]), `${m[2]}${m[3]}`);
  return table;
}

const image = await guestImage();
if (image.kind === 'skip') {
  t.plan(0, image.reason);
} else {
  const guest = image.dir;
  const kernel = ['-kernel', path.join(guest, 'vmlinuz'), '-append', APPEND];

  forEachQemu(t, await qemuLegs(), async (t, qemu) => {
    t.test('-nographic, isa-serial ttyS1 in cooked mode: exec 3<>, echo, head; every status but 429', async (t) => {
      const host = await makeHost(t, guest);
      await host.policy('e2e-nographic', [
        'enabled = true',
        'allow = ["physcpus", "physcores", "physmem", "loadavg", "uptime", "hosttime", "hypervisor"]',
        'burst = 50',
        'interval = 0.05',
        '',
      ].join('\n'));
      // Overlong lines (one 400 each, then resynchronised) come last: see the test of that below.
      // Sixteen of them, 257 to 1007 bytes: the bug below shows in a fraction of them.
      const longs = Array.from({ length: 16 }, (_, i) => 252 + 50 * i);
      // No /lib/hostinfo.sh and no stty: the stock idiom, one descriptor held open for every request.
      const initrd = await host.initrd([
        '#!/bin/sh',
        'exec 3<>/dev/ttyS1',
        'ask() { echo "$2" >&3; r=$(head -n1 <&3); echo "R $1 [$r]"; }',
        `ask ping 'PING "hello from ttyS1"'`,
        'ask version VERSION',
        'ask help help',
        'ask physcpus physcpus',
        'ask physcores PhysCores',
        'ask physmem physmem',
        'ask loadavg loadavg',
        'ask uptime uptime',
        'ask hosttime hosttime',
        'ask hypervisor hypervisor',
        'ask hostname hostname',
        'ask unknown frobnicate',
        `ask unterminated 'PING "no end'`,
        `ask nonascii 'PING caf\u00e9'`,
        `ask again 'PING "still in sync"'`,
        ...longs.flatMap((n, i) => [`ask long${i} 'PING ${'x'.repeat(n)}'`, `ask after${i} 'PING after${i}'`]),
        // An overlong line written in two parts a second apart (as any unbuffered writer may).
        `printf 'PING ${'y'.repeat(300)}' >&3`,
        'sleep 1',
        'echo more >&3',
        'r=$(head -n1 <&3); echo "R split [$r]"',
        `ask aftersplit 'PING "after split"'`,
        '',
      ].join('\n'));

      const launcher = new Launcher(t, host, qemu.launcherArgs, ['-name', 'e2e-nographic', ...MACHINE, '-nographic', '-initrd', initrd, ...kernel]);
      const snapshots = new Map<string, HostNow>();
      launcher.onLine((line) => {
        for (const part of stripEscapes(line).split('\n')) {
          const m = /^R (\S+) \[/.exec(part);
          if (m?.[1] !== undefined) snapshots.set(m[1], hostNow());
        }
      });
      const exit = await launcher.exit(BOOT_MS);
      t.same(exit, { code: 0, signal: null }, 'the guest powered off: exit 0, QEMU\'s own', { stderr: launcher.stderr });
      t.match(launcher.stdout, /SeaBIOS/, 'QEMU\'s -nographic console is on the caller\'s stdout (firmware)');
      t.match(launcher.stdout, /^hostinfo-guest: exit 0$/m, 'and the guest\'s ttyS0 console, through to its exit marker');

      const r = repliesOf(launcher.stdout);
      t.equal(r.size, 17 + 2 * longs.length, 'the guest got a reply to every request (the echo of each reply never looped)', { console: launcher.stdout });
      t.equal(r.get('ping'), '1.0 200 hello from ttyS1');
      t.equal(r.get('version'), `1.0 200 hostinfo-qemu ${PACKAGE_VERSION} protocol 1.0`);
      const help = (r.get('help') ?? '').split(' ');
      t.same(help.slice(0, 2), ['1.0', '200'], 'help 200', { help });
      for (const item of ['ping', 'help', 'version', 'physcpus', 'physmem', 'hypervisor']) t.ok(help.includes(item), `help lists ${item}`);
      t.notOk(help.includes('hostname'), 'help does not list the sensitive hostname');

      t.equal(r.get('physcpus'), `1.0 200 ${onlineCpus()}`, 'physcpus = the host\'s online CPUs (not the guest\'s one vCPU)');
      const cores = /^1\.0 200 (\d+)$/.exec(r.get('physcores') ?? '');
      t.ok(cores !== null && Number(cores[1]) >= 1 && Number(cores[1]) <= onlineCpus(), 'physcores (command in mixed case) is 1..physcpus', { reply: r.get('physcores') });
      const mem = /^1\.0 200 total=(\d+) free=(\d+) available=(\d+)$/.exec(r.get('physmem') ?? '');
      t.ok(mem, 'physmem has total, free, available', { reply: r.get('physmem') });
      t.equal(Number(mem?.[1]), memTotalKb(), 'physmem total = the host\'s MemTotal (the guest has 256 MB)');
      t.ok(Number(mem?.[2]) <= Number(mem?.[1]) && Number(mem?.[3]) <= Number(mem?.[1]), 'free and available within total');

      const load = /^1\.0 200 (\d+\.\d\d) (\d+\.\d\d) (\d+\.\d\d)$/.exec(r.get('loadavg') ?? '');
      t.ok(load, 'loadavg: three averages', { reply: r.get('loadavg') });
      const atLoad = snapshots.get('loadavg');
      // The host's averages move between the daemon's sample (at most max_age = 2 s old) and the
      // moment the line reaches the test; the kernel updates them every 5 s.
      for (let i = 0; i < 3; i++) {
        const guestSaw = Number(load?.[i + 1]);
        const hostHas = atLoad?.loadavg[i] ?? NaN;
        t.ok(Math.abs(guestSaw - hostHas) <= Math.max(1, 0.25 * hostHas), `loadavg[${i}] ${guestSaw} is close to the host's ${hostHas}`);
      }
      const up = /^1\.0 200 (\d+)$/.exec(r.get('uptime') ?? '');
      const hostUp = snapshots.get('uptime')?.uptime ?? NaN;
      t.ok(up !== null && Math.abs(Number(up[1]) - hostUp) <= 3, `uptime ${up?.[1]} s is the host's (${hostUp} s), not the guest's few seconds`);
      const clock = /^1\.0 200 (\d+\.\d{3})$/.exec(r.get('hosttime') ?? '');
      const hostClock = snapshots.get('hosttime')?.time ?? NaN;
      t.ok(clock !== null && Math.abs(Number(clock[1]) - hostClock) <= 3, `hosttime ${clock?.[1]} is the host clock (${hostClock})`);
      t.equal(r.get('hypervisor'), `1.0 200 QEMU ${formatQemuVersion(qemu.version)}`, 'hypervisor: the QEMU version from QMP, the one -version states');

      t.equal(r.get('hostname'), '1.0 403 hostname is not permitted for this VM', 'sensitive item not listed: 403');
      t.equal(r.get('unknown'), '1.0 404 unknown command: frobnicate');
      t.equal(r.get('unterminated'), '1.0 400 bad request: unterminated quoted string starting at column 6');
      t.match(r.get('nonascii'), /^1\.0 400 bad request: byte 0xc3 at column \d+ is not printable ASCII$/, 'a non-ASCII byte: 400');
      t.equal(r.get('again'), '1.0 200 still in sync', 'after the 400s the next request is served normally');

      t.ok(await vmDirRemoved(host, 'e2e-nographic'), 'the VM runtime directory is removed after QEMU exits');
      const sidecarLog = await host.sidecarLog('e2e-nographic');
      const audit = auditOf(sidecarLog);
      // Exactly one audit line per request: the tty's echo of each reply ("1.0 200 ...\r\n") took
      // no token and produced no line.
      t.same(audit.slice(0, 15), [
        ['ping', 200], ['version', 200], ['help', 200], ['physcpus', 200], ['physcores', 200], ['physmem', 200], ['loadavg', 200],
        ['uptime', 200], ['hosttime', 200], ['hypervisor', 200], ['hostname', 403], ['frobnicate', 404], ['-', 400], ['-', 400],
        ['ping', 200],
      ], 'the sidecar log audits each request with its status, and nothing else');

      // Lines over 256 bytes from a cooked-mode guest. Each must get exactly one 400, and the next
      // request its own reply. PRODUCT BUG: the sidecar replies 400 as soon as the limit is exceeded
      // (sidecar/protocol/line-decoder.ts, #append pushes the 'oversize' frame mid-line, and
      // handleGuestFrame answers it at once), while the guest has not finished its line. The guest
      // tty echoes that 400 back, and the echo's LF ends the discard early:
      // with the 16 one-write lines, roughly one run in three here, pieces of the echo interleave
      // with the end of the guest's own line, and the rest of the echo ("bytes", "quest: line
      // longer than 256 bytes") becomes a request: 404 "unknown command: bytes".
      // (The two-part line `split` passes today: its first part evidently reaches the host only
      // with the second, the 400 being logged after the guest's sleep; it is kept as a check.)
      // One reply too many: every later reply the guest reads belongs to its previous
      // request. Fix: send the 400 when the LF ending the discarded line arrives, not before.
      t.test('overlong lines: one 400 each, and the guest stays in sync (no echo fragment served)', async (t) => {
        longs.forEach((n, i) => {
          t.equal(r.get(`long${i}`), '1.0 400 bad request: line longer than 256 bytes', `a ${n + 5}-byte line: 400`);
          t.equal(r.get(`after${i}`), `1.0 200 after${i}`, `the request after it gets its own reply`);
        });
        t.equal(r.get('split'), '1.0 400 bad request: line longer than 256 bytes', 'an overlong line written in two parts: 400');
        t.equal(r.get('aftersplit'), '1.0 200 after split', 'the request after it gets its own reply, not a 404 for the tail ("more") of the overlong line');
        // Past 20 lines back to back the audit log is rate-bounded: some lines are only counted.
        t.same(audit.slice(15).filter(([command, status]) => !(command === '-' && status === 400) && !(command === 'ping' && status === 200)), [],
          'audit: only 400s for the overlong lines and 200s for the pings, no 404 for a fragment of an echo');
        // Lines + suppressed counts; the count suppressed after the last written line is never
        // written (the sidecar stops without reporting it), hence at most.
        t.ok(auditedRequests(sidecarLog) <= 17 + 2 * longs.length, 'audit: no more requests than the guest sent');
      });
    });

    t.test('-nodefaults -serial file:...: the hostinfo port is ttyS1; 429 under a burst', async (t) => {
      const host = await makeHost(t, guest);
      await host.policy('e2e-nodefaults', 'enabled = true\nburst = 2\ninterval = 60\n');
      const initrd = await host.initrd([
        '#!/bin/sh',
        'exec 3<>/dev/ttyS1',
        'ask() { echo "$2" >&3; r=$(head -n1 <&3); echo "R $1 [$r]"; }',
        'ask one "PING one"',
        'ask two "PING two"',
        'ask three "PING three"',
        // The guest's own view of its UARTs, after the exchange (rx counts what ttyS1 received).
        "sed 's/^/S /' /proc/tty/driver/serial",
        '',
      ].join('\n'));
      const consoleFile = path.join(host.dir, 'console.txt');
      const launcher = new Launcher(t, host, qemu.launcherArgs, [
        '-name', 'e2e-nodefaults', ...MACHINE, '-nodefaults', '-display', 'none', '-serial', `file:${consoleFile}`, '-initrd', initrd, ...kernel,
      ]);
      const exit = await launcher.exit(BOOT_MS);
      t.same(exit, { code: 0, signal: null }, 'exit 0 after the guest powered off', { stderr: launcher.stderr });
      const consoleText = (await readFile(consoleFile, 'latin1')).replace(/\r/g, '');
      t.match(consoleText, /^hostinfo-guest: exit 0$/m, 'the guest console went to the user\'s -serial file');
      t.notMatch(launcher.stdout, /hostinfo-guest/, 'and not to stdout');

      const table = serialTable(consoleText);
      t.match(table.get(0), /^16550A /, 'ttyS0 exists: the user\'s -serial file');
      t.match(table.get(1), /^16550A .*rx:[1-9]/, 'ttyS1 exists and received the replies: the launcher chose index 1', { table: [...table] });
      t.match(table.get(2), /^unknown/, 'ttyS2 absent');
      t.match(table.get(3), /^unknown/, 'ttyS3 absent');

      const r = repliesOf(consoleText);
      t.equal(r.get('one'), '1.0 200 one');
      t.equal(r.get('two'), '1.0 200 two', 'burst = 2: two back to back');
      const limited = /^1\.0 429 too many requests; retry after (\d+) ms$/.exec(r.get('three') ?? '');
      t.ok(limited, 'the third rapid request: 429', { reply: r.get('three') });
      const wait = Number(limited?.[1]);
      t.ok(wait > 50_000 && wait <= 60_000, `retry after ${wait} ms: the rest of the 60 s interval`);

      t.ok(await vmDirRemoved(host, 'e2e-nodefaults'), 'the VM runtime directory is removed');
      t.same(auditOf(await host.sidecarLog('e2e-nodefaults')), [['ping', 200], ['ping', 200], ['ping', 429]], 'audit lines, 429 included');
    });

    t.test('--transport virtio-serial: the guest finds org.hostinfo.0 by name in sysfs', async (t) => {
      const host = await makeHost(t, guest);
      await host.policy('e2e-virtio', 'enabled = true\nburst = 10\ninterval = 0.1\n');
      const initrd = await host.initrd([
        '#!/bin/sh',
        '. /lib/hostinfo.sh',
        'port=$(hostinfo_port virtio-serial) || exit 1',
        'echo "PORT $port $(cat /sys/class/virtio-ports/${port#/dev/}/name)"',
        `echo "R ping [$(hostinfo_ask "$port" 'PING "over virtio"')]"`,
        'echo "R physcpus [$(hostinfo_ask "$port" physcpus)]"',
        'echo "R hostname [$(hostinfo_ask "$port" hostname)]"',
        "sed 's/^/S /' /proc/tty/driver/serial",
        '',
      ].join('\n'));
      const launcher = new Launcher(t, host, [...qemu.launcherArgs, '--transport', 'virtio-serial'], ['-name', 'e2e-virtio', ...MACHINE, '-nographic', '-initrd', initrd, ...kernel]);
      const exit = await launcher.exit(BOOT_MS);
      t.same(exit, { code: 0, signal: null }, 'exit 0 after the guest powered off', { stderr: launcher.stderr });
      t.match(launcher.stdout, /^hostinfo-guest: exit 0$/m, 'guest.sh succeeded');
      t.match(launcher.console, /^PORT \/dev\/vport\d+p\d+ org\.hostinfo\.0$/m, 'a /dev/vportNpM whose sysfs name is org.hostinfo.0', { console: JSON.stringify(launcher.stdout.slice(-1500)) });
      const r = repliesOf(launcher.stdout);
      t.equal(r.get('ping'), '1.0 200 over virtio');
      t.equal(r.get('physcpus'), `1.0 200 ${onlineCpus()}`);
      t.equal(r.get('hostname'), '1.0 403 hostname is not permitted for this VM');
      const table = serialTable(launcher.stdout);
      t.match(table.get(0), /^16550A /, 'ttyS0: -nographic\'s console');
      t.match(table.get(1), /^unknown/, 'no isa-serial was added for the virtio transport');
      t.ok(await vmDirRemoved(host, 'e2e-virtio'), 'the VM runtime directory is removed');
      t.same(auditOf(await host.sidecarLog('e2e-virtio')), [['ping', 200], ['physcpus', 200], ['hostname', 403]], 'audit lines');
    });
  });
}
