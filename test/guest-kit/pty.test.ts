// The guest kit's shell client against a real hostinfod and sidecar, run here under dash, bash
// and busybox sh: the test plays QEMU's chardev end (stageVm's GuestEnd) and joins it to a real
// pseudo-terminal, on whose slave the client talks as on a guest's ttyS1: cooked mode with echo
// on until the client's stty. This covers what the busybox guest cannot: dash's missing
// `read -t` (the watchdog reader), bash, and flock(1), which this machine has and the guest's
// busybox lacks. Per shell, one script in phases: every mode; three concurrent callers; the
// sidecar stopped (SIGSTOP: each call ends within its --timeout with exit 4; after SIGCONT the
// next call resynchronises past the late replies); a 429 that does not fit the timeout (exit 1,
// the reply on stderr) and one that does (waited out).

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pty from 'node-pty';
import t, { type Test } from 'tap';
import { changePolicy, makeSite, stageVm, startDaemon, status, vmStatus, type Site } from '../helpers/served-vm.js';
import { blocksOf, CLIENT, PHASE_PRELUDE, SHELLS, type Shell } from './kit.js';
import { until } from '../e2e/harness.js';
import { onlineCpus } from '../helpers/proc-stats.js';

t.setTimeout(180_000);
const POLICY = 'enabled = true\nallow = ["physcpus", "loadavg", "physmem", "uptime"]\nburst = 1000\ninterval = 0.001\n';

/** The phases; `wait_host NAME` hands over to the test, which answers by creating $D/go-NAME. */
function phaseScript(shell: Shell, dir: string): string {
  return [
    'port=$(tty)', // before stdout leaves the terminal: the slave is the port
    `D=${dir} T=${dir}/tmp`,
    'exec >"$D/log" 2>&1',
    'mkdir -p "$T"',
    PHASE_PRELUDE,
    `hi() { ${shell.argv.join(' ')} ${CLIENT} --device "$port" "$@"; }`,
    'wait_host() { echo "WAIT $1"; while [ ! -e "$D/go-$1" ]; do sleep 0.05; done; }',
    'run plain hi physcpus',
    `run quoted hi ping 'say "hi" \\ back'`,
    'run json hi --json',
    // A fresh memo of a 404 to ALL (what a host without ALL leaves): HELP, then item by item.
    'cs >"$D/hostinfo.$(printf %s "${port#/dev/}" | tr / _).no-all"',
    'run json-fallback hi --json',
    'run prometheus hi --prometheus',
    'run influx hi --influx loadavg physmem',
    'run notfound hi frobnicate',
    'run c1 hi --json physcpus loadavg & run c2 hi --prometheus physmem & run c3 hi ping third & wait',
    'wait_host stop',
    'run stopped hi --timeout 1 physcpus',
    'run stopped-json hi --timeout 1 --json physcpus',
    'wait_host cont',
    'run resumed hi ping resumed',
    'run resumed-json hi --json physcpus',
    'wait_host limit',
    'run limit-1 hi ping one',
    'run limit-2 hi ping two',
    'wait_host slow',
    'run waited hi --timeout 4 --json physcpus uptime',
    'echo DONE',
    '',
  ].join('\n');
}

/**
 * Runs the phases on a new pty whose master is joined to the VM's guest end; `sent` collects
 * what the client wrote to the port (its requests, and the tty's echo until its stty).
 */
async function onPty(t: Test, site: Site, vmName: string, shell: Shell, dir: string, sent: { text: string }, handlers: Record<string, () => Promise<void>>): Promise<string> {
  const vm = await stageVm(t, site, vmName);
  const scriptPath = path.join(dir, 'phases.sh');
  writeFileSync(scriptPath, phaseScript(shell, dir));
  const env = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !e[0].startsWith('HOSTINFO_')));
  const term = pty.spawn(shell.argv[0]!, [...shell.argv.slice(1), scriptPath], { name: 'xterm', cols: 200, rows: 50, cwd: dir, env: { ...env, HOSTINFO_STATE_DIR: dir } });
  const exited = new Promise<void>((resolve) => term.onExit(() => resolve()));
  t.teardown(async () => {
    term.kill('SIGKILL');
    await exited;
  });
  term.onData((data) => {
    sent.text += data;
    vm.guest.write(Buffer.from(data, 'latin1'));
  });
  vm.guest.onLine = (line) => term.write(line);

  const log = path.join(dir, 'log');
  const read = (): string => (existsSync(log) ? readFileSync(log, 'utf8') : '');
  for (const [name, handler] of Object.entries(handlers)) {
    await until(() => read().includes(`WAIT ${name}\n`), 60_000, () => `the script to reach ${name}:\n${read()}`);
    await handler();
    writeFileSync(path.join(dir, `go-${name}`), '');
  }
  await until(() => read().includes('DONE\n'), 60_000, () => `the script to finish:\n${read()}`);
  return read();
}

const cpus = onlineCpus();
for (const shell of SHELLS) {
  t.test(`${shell.name}: the client on a pty joined to a real sidecar`, async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), `hikit-pty-${shell.name}-`));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const site = await makeSite(t, { policy: POLICY });
    await startDaemon(t, site);
    const name = `kit-${shell.name}`;
    let sidecar = 0;
    const signal = (which: NodeJS.Signals): void => {
      try {
        process.kill(sidecar, which);
      } catch {
        // gone: the daemon replaced it, which the checks below would show
      }
    };
    t.teardown(() => { if (sidecar !== 0) signal('SIGCONT'); });
    const started = performance.now();
    const sent = { text: '' };
    let atCont = 0;
    const text = await onPty(t, site, name, shell, dir, sent, {
      stop: async () => {
        sidecar = vmStatus(await status(site), name)?.sidecar.pid ?? 0;
        t.ok(sidecar > 0, `the sidecar's pid from the daemon's status: ${sidecar}`);
        signal('SIGSTOP');
      },
      cont: async () => {
        atCont = sent.text.length;
        signal('SIGCONT');
      },
      limit: async () => void await changePolicy(site, name, name, 'enabled = true\nallow = ["physcpus", "loadavg", "physmem", "uptime"]\nburst = 1\ninterval = 60\n'),
      slow: async () => void await changePolicy(site, name, name, 'enabled = true\nallow = ["physcpus", "loadavg", "physmem", "uptime"]\nburst = 1\ninterval = 1\n'),
    });
    t.comment(`${shell.name}: the whole script took ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const b = blocksOf(text);
    const block = (label: string) => {
      const found = b.get(label);
      if (found === undefined) throw new Error(`no block ${label} in:\n${text}`);
      return found;
    };

    t.match(block('plain'), { rc: 0, out: `${cpus}\n`, err: [] }, 'plain: the reply text');
    t.match(block('quoted'), { rc: 0, out: 'say "hi" \\ back\n' }, 'an argument with spaces, quotes and a backslash is quoted as the grammar wants');
    const json = JSON.parse(block('json').out) as Record<string, unknown>;
    t.same(Object.keys(json), ['physcpus', 'loadavg', 'physmem', 'uptime'], '--json: every item the policy allows, in catalogue order (via ALL or HELP)');
    t.equal(json['physcpus'], cpus);
    t.match(json['physmem'], { total: Number, free: Number, available: Number });
    t.same(Object.keys(JSON.parse(block('json-fallback').out) as object), Object.keys(json), '--json without ALL: the same items');
    const requests = sent.text.split('\n');
    t.equal(requests.filter((line) => line === 'all').length, 1, 'ALL asked once, by the first --json: the memo of a 404 keeps later calls from asking it', { sent: sent.text });
    t.ok(sent.text.includes('\nhelp\nphyscpus\nloadavg\nphysmem\nuptime\n'), 'they ask HELP, then each item', { sent: sent.text });
    t.ok(sent.text.includes('ping "say \\"hi\\" \\\\ back"\n'), 'the quoted argument on the wire', { sent: sent.text });
    t.match(block('prometheus').out, new RegExp(`^hostinfo_host_cpus ${cpus}$`, 'm'), '--prometheus');
    t.match(block('influx'), { rc: 0, out: /^hostinfo_host load1=[\d.]+,load5=[\d.]+,load15=[\d.]+,memory_total_bytes=\d+i,memory_free_bytes=\d+i,memory_available_bytes=\d+i\n$/ }, '--influx with named items');
    t.match(block('notfound'), { rc: 1, out: '', err: ['hostinfo: 1.0 404 unknown command: frobnicate'] }, 'a 404: exit 1, the reply on stderr');

    const [c1, c2, c3] = [block('c1'), block('c2'), block('c3')];
    t.match(c1, { rc: 0, out: new RegExp(`^\\{"physcpus":${cpus},"loadavg":\\[[\\d.]+,[\\d.]+,[\\d.]+\\]\\}\\n$`) }, 'concurrent caller 1 got its own answers');
    t.match(c2, { rc: 0, out: /^hostinfo_host_memory_total_bytes \d+$/m }, 'concurrent caller 2 got its own answers');
    t.match(c3, { rc: 0, out: 'third\n' }, 'concurrent caller 3 got its own answer');
    const starts = [c1.at, c2.at, c3.at];
    t.ok(Math.max(...starts) - Math.min(...starts) <= 20, `the three started together (at ${starts.join(', ')} cs)`);

    const stopped = block('stopped');
    t.match(stopped, { rc: 4, out: '', err: [/^hostinfo: no reply to 'physcpus' within 1 s from \/dev\/pts\/\d+$/] }, 'sidecar stopped: exit 4, said on stderr');
    t.ok(stopped.cs >= 100 && stopped.cs <= 160, `it gave up after its 1 s timeout (${stopped.cs} cs)`);
    const stoppedJson = block('stopped-json');
    t.match(stoppedJson, { rc: 4, out: '{"physcpus":null}\n', err: [/resynchronising after an earlier timeout/] }, 'a document still prints, its items null');
    t.ok(stoppedJson.cs <= 160, `within its timeout too (${stoppedJson.cs} cs)`);
    t.match(block('resumed'), { rc: 0, out: 'resumed\n', err: [] }, 'after SIGCONT the next call gets its own reply, not a late one');
    t.match(sent.text.slice(atCont), /^\n?ping resync-\d+-\d+\nping resumed\n/, 'because it first sent PING <nonce> (after a blank line) and skipped the late replies up to its answer');
    t.match(block('resumed-json'), { rc: 0, out: `{"physcpus":${cpus}}\n` }, 'and the one after it');

    t.match(block('limit-1'), { rc: 0, out: 'one\n' }, 'burst 1: the first request');
    const limited = block('limit-2');
    const retry = /^hostinfo: 1\.0 429 too many requests; retry after (\d+) ms$/.exec(limited.err[0] ?? '');
    t.match(limited, { rc: 1, out: '' }, 'a 429 whose wait does not fit the timeout: exit 1');
    t.ok(retry !== null && Number(retry[1]) > 50_000, 'the 429 on stderr, retry after most of the 60 s', { err: limited.err });
    t.ok(limited.cs < 100, `without waiting for it (${limited.cs} cs)`);
    const waited = block('waited');
    t.match(waited, { rc: 0, out: new RegExp(`^\\{"physcpus":${cpus},"uptime":\\d+\\}\\n$`), err: [] }, 'interval 1 s: each 429 waited out, both items read');
    t.ok(waited.cs >= 90, `it waited for the tokens (${waited.cs} cs)`);
  });
}
