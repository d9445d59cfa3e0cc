// Builds the demo/test guest with examples/guest/build.sh and boots it for real (QEMU, TCG), with
// the host end of its hostinfo port served by this test: a unix socket QEMU connects to as a
// client. Proves the stock-guest idiom (exec 3<>, echo, head; no stty) over isa-serial and
// virtio-serial, and records what a cooked-mode guest tty sends back to the host.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';

// The compiled test lives in <outdir>/test/guest/: the repository root is three levels up.
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const guestDir = path.join(repo, 'examples', 'guest');
const EX_NONET = 75; // build.sh: no kernel could be fetched because apt has no network
const BOOT_TIMEOUT_MS = 180_000;
const APPEND = 'console=ttyS0 panic=-1 quiet';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(cmd: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

// Rejects when `promise` has not settled within `ms` (a bound on waiting for an event, not a sleep).
function within<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface Boot {
  readonly exitCode: number | null;
  readonly console: string; // the guest's ttyS0 (QEMU's stdout), \r removed
  readonly consoleLines: readonly string[];
  readonly hostReceived: Buffer; // every byte the guest sent to the hostinfo port
  readonly connected: boolean;
}

// Boots the guest with `script` as /guest.sh. The hostinfo port is ttyS1 (isa-serial, index 1)
// or a virtio-serial port named org.hostinfo.0; either way its chardev is a unix socket this test
// listens on, answering `1.0 200 hello` to the line `PING "hello"` (a CR before the LF ignored)
// and nothing to anything else (such as the guest tty's echo of that reply).
async function boot(t: Test, cache: string, transport: 'isa-serial' | 'virtio-serial', script: string): Promise<Boot> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hig-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'h.sock');
  const scriptPath = path.join(dir, 'guest.sh');
  const initrd = path.join(dir, 'initrd.gz');
  await writeFile(scriptPath, script);
  const ws = await run(path.join(guestDir, 'with-script.sh'), [scriptPath, initrd, path.join(cache, 'initramfs.cpio.gz')]);
  if (ws.code !== 0) throw new Error(`with-script.sh failed (${ws.code}): ${ws.stderr}`);

  const received: Buffer[] = [];
  let connection: net.Socket | undefined;
  let connectionClosed: Promise<unknown> = Promise.resolve();
  const server = net.createServer((socket) => {
    connection = socket;
    connectionClosed = once(socket, 'close');
    let pending = '';
    socket.on('error', () => {}); // QEMU going away mid-write is not this test's concern
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      pending += chunk.toString('latin1');
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl).replace(/\r$/, '');
        pending = pending.slice(nl + 1);
        if (line === 'PING "hello"') socket.write('1.0 200 hello\n');
      }
    });
  });
  server.listen(sock);
  await once(server, 'listening');
  t.teardown(() => {
    connection?.destroy();
    server.close();
  });

  const port =
    transport === 'isa-serial'
      ? ['-chardev', `socket,id=h,path=${sock}`, '-device', 'isa-serial,chardev=h,index=1']
      : ['-chardev', `socket,id=h2,path=${sock}`, '-device', 'virtio-serial-pci,id=hv', '-device', 'virtserialport,bus=hv.0,chardev=h2,name=org.hostinfo.0'];
  const args = [
    '-accel', 'tcg', '-M', 'pc', '-m', '256', '-nodefaults', '-no-reboot', '-display', 'none', '-serial', 'stdio',
    '-kernel', path.join(cache, 'vmlinuz'), '-initrd', initrd, '-append', APPEND,
    ...port,
  ];
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  qemu.stdout.setEncoding('latin1').on('data', (s: string) => (out += s));
  qemu.stderr.setEncoding('latin1').on('data', (s: string) => (err += s));
  const spawned = new Promise<void>((resolve, reject) => {
    qemu.once('spawn', resolve);
    qemu.once('error', reject);
  });
  await spawned;
  // 'close': QEMU has exited and its stdout is drained. The guest powers off by itself after its
  // "hostinfo-guest: exit <rc>" marker; the bound only catches a hung guest.
  const [exitCode] = (await within(once(qemu, 'close'), BOOT_TIMEOUT_MS, () => `QEMU still running; console so far:\n${out}\nstderr:\n${err}`)) as [number | null];
  await within(connectionClosed, 10_000, () => 'the hostinfo socket did not close after QEMU exited');
  const console = out.replace(/\r/g, '');
  if (exitCode !== 0) t.comment(`QEMU stderr:\n${err}`);
  return { exitCode, console, consoleLines: console.split('\n'), hostReceived: Buffer.concat(received), connected: connection !== undefined };
}

t.setTimeout(30 * 60_000); // a first build downloads a kernel package; each TCG boot takes seconds

const build = await run('bash', [path.join(guestDir, 'build.sh')]);
if (build.code === EX_NONET) {
  t.plan(0, `no guest kernel: build.sh could not fetch one because apt has no network (${build.stderr.trim().split('\n')[0] ?? ''})`);
} else {
  t.equal(build.code, 0, 'build.sh succeeds', { stderr: build.stderr });
  const cache = build.stdout.trimEnd().split('\n').at(-1) ?? '';
  t.ok(path.isAbsolute(cache), 'build.sh prints the cache directory last', { stdout: build.stdout });

  t.test('build.sh is idempotent: a second run keeps the same initramfs and prints only the directory', async (t) => {
    const again = await run('bash', [path.join(guestDir, 'build.sh')]);
    t.equal(again.code, 0, 'second run succeeds', { stderr: again.stderr });
    t.equal(again.stdout, `${cache}\n`);
    t.equal(again.stderr, '', 'quiet');
  });

  t.test('isa-serial ttyS1, stock cooked mode: exec 3<>, echo, head', async (t) => {
    const g = await boot(t, cache, 'isa-serial', [
      '#!/bin/sh',
      'exec 3<>/dev/ttyS1',
      `echo 'PING "hello"' >&3`,
      'reply=$(head -n1 <&3)',
      'echo "guest got: [$reply]"',
      '',
    ].join('\n'));
    t.equal(g.exitCode, 0, 'QEMU exits 0 after the guest powers off');
    t.ok(g.consoleLines.includes('hostinfo-guest: exit 0'), 'guest.sh ran and the guest reached its exit marker', { console: g.console });
    t.ok(g.consoleLines.includes('guest got: [1.0 200 hello]'), 'the guest read the reply `1.0 200 hello`', { console: g.console });
    t.ok(g.connected, 'QEMU connected to the test\'s socket');
    // What a guest that never ran stty sends: its own line with ONLCR's CR ("\r\n", not "\n"),
    // then the tty's echo of the reply it received, also as "\r\n". The host must ignore that echo.
    t.equal(g.hostReceived.toString('latin1'), 'PING "hello"\r\n1.0 200 hello\r\n', 'host receives the request as \\r\\n, then the echo of its reply');
  });

  t.test('virtio-serial org.hostinfo.0 found through /lib/hostinfo.sh', async (t) => {
    const g = await boot(t, cache, 'virtio-serial', [
      '#!/bin/sh',
      '. /lib/hostinfo.sh',
      'port=$(hostinfo_port virtio-serial) || exit 1',
      'echo "guest port: $port"',
      `reply=$(hostinfo_ask "$port" 'PING "hello"')`,
      'echo "guest got: [$reply]"',
      '',
    ].join('\n'));
    t.equal(g.exitCode, 0, 'QEMU exits 0 after the guest powers off');
    t.ok(g.consoleLines.includes('hostinfo-guest: exit 0'), 'guest.sh ran and succeeded', { console: g.console });
    t.ok(g.consoleLines.some((l) => /^guest port: \/dev\/vport\d+p\d+$/.test(l)), 'the port is found by its name in sysfs', { console: g.console });
    t.ok(g.consoleLines.includes('guest got: [1.0 200 hello]'), 'the guest read the reply', { console: g.console });
    // A virtio-serial port is no tty: no CR added, no echo.
    t.equal(g.hostReceived.toString('latin1'), 'PING "hello"\n', 'host receives the request with a bare \\n and no echo');
  });

  t.test('isa-serial through /lib/hostinfo.sh: auto port, two asks on reopened descriptors', async (t) => {
    const g = await boot(t, cache, 'isa-serial', [
      '#!/bin/sh',
      '. /lib/hostinfo.sh',
      'port=$(hostinfo_port) || exit 1',
      'echo "guest port: $port"',
      `echo "guest got: [$(hostinfo_ask "$port" 'PING "hello"')]"`,
      `echo "guest got again: [$(hostinfo_ask "$port" 'PING "hello"')]"`,
      '',
    ].join('\n'));
    t.equal(g.exitCode, 0);
    t.ok(g.consoleLines.includes('hostinfo-guest: exit 0'), 'guest.sh ran and succeeded', { console: g.console });
    t.ok(g.consoleLines.includes('guest port: /dev/ttyS1'), 'without a virtio port, auto means ttyS1', { console: g.console });
    t.ok(g.consoleLines.includes('guest got: [1.0 200 hello]'), 'first reply', { console: g.console });
    t.ok(g.consoleLines.includes('guest got again: [1.0 200 hello]'), 'second reply', { console: g.console });
    t.equal(g.hostReceived.toString('latin1'), 'PING "hello"\r\n1.0 200 hello\r\n'.repeat(2), 'each request, each echo');
  });
}
