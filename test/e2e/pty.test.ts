// Issues 5 and 9, end to end: `hostinfo-qemu -- -nographic ...` in a real pseudo-terminal behaves
// as QEMU alone does, because the process started in the terminal becomes QEMU. The guest console
// appears on the terminal, Ctrl-A c switches to the QEMU monitor (the launcher put back
// `-serial mon:stdio`, which its own -device isa-serial and -mon would otherwise have switched
// off), the monitor shows the launcher's hostinfo chardev beside the muxed stdio, and `quit` typed
// there ends QEMU with status 0. Meanwhile the guest still reaches the host on ttyS1. On each QEMU
// of test/helpers/qemu-versions.ts (7.2 and 10.0), each held against itself alone.

import path from 'node:path';
import pty from 'node-pty';
import t from 'tap';
import { APPEND, childrenOf, FRONT, type Teardown, guestImage, isQemu, MACHINE, makeHost, repliesOf, stripEscapes, vmDirRemoved, within } from './harness.js';
import { forEachQemu, qemuLegs } from '../helpers/qemu-versions.js';

t.setTimeout(10 * 60_000);
const BOOT_MS = 90_000;

/** A program on a real pseudo-terminal, with waits on what the terminal shows. */
class Terminal {
  readonly term: pty.IPty;
  readonly exited: Promise<{ exitCode: number; signal?: number }>;
  screen = '';
  #running = true;
  readonly #waiters: { pattern: RegExp; from: number; resolve: () => void }[] = [];

  constructor(t: Teardown, file: string, args: string[], cwd: string) {
    const env = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => !e[0].startsWith('HOSTINFO_') && e[1] !== undefined));
    this.term = pty.spawn(file, args, { name: 'xterm', cols: 160, rows: 40, cwd, env });
    this.term.onData((data) => {
      this.screen += data;
      this.#check();
    });
    this.exited = new Promise((resolve) => this.term.onExit(resolve));
    void this.exited.then(() => { this.#running = false; });
    t.teardown(async () => {
      if (!this.#running) return;
      for (const child of childrenOf(this.term.pid)) {
        try {
          process.kill(child, 'SIGKILL');
        } catch {
          // gone
        }
      }
      this.term.kill('SIGKILL');
      await this.exited;
    });
  }

  /** What arrived from offset `from` on, as a user reads it: no control sequences, no CR. */
  text(from = 0): string {
    return stripEscapes(this.screen.slice(from)).replace(/\r/g, '');
  }

  /** Resolves when the terminal shows `pattern` in what arrived from offset `from` on. */
  shows(pattern: RegExp, ms: number, from = 0): Promise<void> {
    const p = new Promise<void>((resolve) => {
      this.#waiters.push({ pattern, from, resolve });
      this.#check();
    });
    return within(p, ms, () => `the terminal to show ${pattern}; it shows:\n${JSON.stringify(this.screen.slice(-3000))}`);
  }

  write(data: string): void {
    this.term.write(data);
  }

  #check(): void {
    for (const w of [...this.#waiters]) {
      if (w.pattern.test(this.text(w.from))) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  /** Ctrl-A c, then `info chardev` at the (qemu) prompt: the chardevs as "id: filename=...". */
  async chardevs(): Promise<Map<string, string>> {
    let mark = this.screen.length;
    this.write('\x01c');
    await this.shows(/\(qemu\) ?$/m, 30_000, mark);
    mark = this.screen.length;
    this.write('info chardev\r');
    await this.shows(/info chardev[\s\S]*\(qemu\)/, 30_000, mark); // the listing, then the next prompt
    const found = new Map<string, string>();
    for (const m of this.text(mark).matchAll(/^(\S+): filename=(.*)$/gm)) found.set(m[1] ?? '', m[2] ?? '');
    return found;
  }
}

const image = await guestImage();
if (image.kind === 'skip') {
  t.plan(0, image.reason);
} else {
  const guest = image.dir;

  forEachQemu(t, await qemuLegs(), async (t, qemu) => {
    t.test('-nographic in a pty: guest console, Ctrl-A c to the monitor, quit there, exit 0', async (t) => {
      // QEMU alone first, paused (-S, nothing to boot): the chardevs -nographic gives a user.
      const plain = new Terminal(t, qemu.binary, [...MACHINE, '-nographic', '-S'], guest);
      const plainChardevs = await plain.chardevs();
      plain.write('quit\r');
      t.equal((await within(plain.exited, 30_000, () => 'plain QEMU to quit')).exitCode, 0, 'QEMU alone: quit in the monitor exits 0');
      t.equal(plainChardevs.get('serial0'), 'mux', 'QEMU alone: -nographic muxes serial0 and the monitor', { chardevs: [...plainChardevs] });

      const host = await makeHost(t, guest);
      await host.policy('e2e-pty', 'enabled = true\n');
      const initrd = await host.initrd([
        '#!/bin/sh',
        'exec 3<>/dev/ttyS1',
        `echo 'PING "from the pty guest"' >&3`,
        'echo "R ping [$(head -n1 <&3)]"',
        'echo GUEST-WAITING',
        'exec sleep 600',
        '',
      ].join('\n'));
      const term = new Terminal(t, FRONT, [
        '--config', host.configPath, '--runtime-dir', host.runtimeDir, ...qemu.launcherArgs, '--',
        '-name', 'e2e-pty', ...MACHINE, '-nographic', '-kernel', path.join(guest, 'vmlinuz'), '-initrd', initrd, '-append', APPEND,
      ], host.dir);

      await term.shows(/^GUEST-WAITING$/m, BOOT_MS);
      t.ok(isQemu(term.term.pid), 'the process started in the terminal is QEMU');
      t.match(term.text(), /SeaBIOS/, 'the firmware\'s output is on the terminal');
      t.equal(repliesOf(term.text()).get('ping'), '1.0 200 from the pty guest', 'the guest console is on the terminal, and the guest reached the host on ttyS1', { near: JSON.stringify(term.screen.slice(Math.max(0, term.screen.indexOf('R ping') - 200), term.screen.indexOf('GUEST-WAITING') + 20)) });

      // Ctrl-A c: QEMU's mux switches the terminal from the serial console to the monitor.
      const chardevs = await term.chardevs();
      t.pass('Ctrl-A c shows the (qemu) monitor prompt; info chardev answers');
      const ours = [...chardevs].filter(([id]) => id.startsWith('hostinfo'));
      const theirs = [...chardevs].filter(([id]) => !id.startsWith('hostinfo'));
      t.same(new Map(theirs), plainChardevs, 'every other chardev is exactly what QEMU alone makes for -nographic (serial0 mux on stdio)');
      t.match(Object.fromEntries(ours), { hostinfo0: /^unix:.*\/vms\/e2e-pty\/guest\.sock,server=on$/, 'hostinfo0-qmp': /^unix:.*\/vms\/e2e-pty\/qmp\.sock,server=on$/ }, 'plus the launcher\'s guest and QMP sockets in the VM\'s directory');

      term.write('quit\r');
      const exit = await within(term.exited, 60_000, () => `QEMU to exit after quit; terminal:\n${JSON.stringify(term.screen.slice(-2000))}`);
      t.equal(exit.exitCode, 0, 'quit in the monitor: QEMU exits 0');
      t.notOk(exit.signal, 'not by a signal');
      t.ok(await vmDirRemoved(host, 'e2e-pty'), 'the VM runtime directory is removed');
    });
  });
}
