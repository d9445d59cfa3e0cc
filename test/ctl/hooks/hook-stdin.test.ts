// The libvirt hook reads the domain XML from stdin as a stream. libvirt hands it a blocking pipe,
// but whoever runs the hook may give it a non-blocking one (the flag lives on the shared open file
// description): the XML then arrives in pieces with EAGAIN between them, and a reader that retried
// at once burnt a CPU until the writer was done. Here the hook gets the read end of a FIFO opened
// O_NONBLOCK, half the XML, nothing for HOLD_MS, then the rest: it must have used next to no CPU,
// and act on the whole document.

import { spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { CTL } from '../run-ctl.js';
import { libvirtFixture } from './libvirt-fixtures.js';

const HOLD_MS = 1_500;
/** CPU seconds the hook may use in all (Node start-up included); a spinning reader used HOLD_MS more. */
const CPU_BOUND_S = 0.5 + 0.2 * (HOLD_MS / 1000);

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, USER_HZ = 100 on Linux
}

t.test('a non-blocking stdin fed in two pieces: no spinning, the whole XML read', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hook-stdin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = path.join(dir, 'xml');
  const made = spawn('mkfifo', [fifo]);
  await new Promise((resolve) => made.on('exit', resolve));
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(fifo, constants.O_WRONLY);
  // A domain with a marked port, stopped: the hook asks to detach it, which it can only know from
  // the end of the XML (the port is near </devices>).
  const xml = libvirtFixture('web1-live.xml');
  const config = path.join(dir, 'hostinfo.toml');
  writeFileSync(config, `enabled = true\nruntime_dir = ${JSON.stringify(path.join(dir, 'run'))}\n`);
  const child = spawn(CTL, ['--config', config, 'hook', 'libvirt', '--', 'web1', 'stopped', 'end', '-'], {
    stdio: [reader, 'ignore', 'pipe'],
    env: { ...process.env, HOSTINFO_NODE: process.execPath },
  });
  // libuv makes a child's stdin blocking when it spawns it; opening our copy of the same file
  // description as a pipe handle makes it non-blocking again, for the hook too (O_NONBLOCK is a
  // flag of the description). The handle stays paused: it never reads what the hook is sent.
  const nonBlocking = new Socket({ fd: reader, readable: false, writable: false }).pause();
  t.teardown(() => nonBlocking.destroy());
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const pid = child.pid ?? -1;

  writeSync(writer, xml.slice(0, xml.length >> 1));
  let peak = 0;
  const started = Date.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      try {
        peak = Math.max(peak, cpuSeconds(pid));
      } catch {
        // ended early: the exit check below says why
      }
      if (Date.now() - started >= HOLD_MS) {
        clearInterval(timer);
        resolve();
      }
    }, 50);
  });
  writeSync(writer, xml.slice(xml.length >> 1));
  closeSync(writer);

  t.equal(await exited, 0, 'a hook exits 0');
  t.ok(peak < CPU_BOUND_S, `the hook used ${peak.toFixed(2)} CPU-s while stdin had nothing for ${HOLD_MS} ms (bound ${CPU_BOUND_S.toFixed(2)})`);
  // No daemon at this config's runtime dir: the detach it asks for fails, so it read the port.
  t.match(stderr, /hook libvirt web1 stopped: detach: /, 'it read the whole domain and asked to detach it', { stderr });
});
