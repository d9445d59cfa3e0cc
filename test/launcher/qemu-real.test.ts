// The rewritten arguments on the real QEMU (TCG, paused with -S): our chardev and QMP monitor
// exist at the planned paths, our port sits on the planned index or name, and QEMU ends up with
// exactly the serial ports, monitors and consoles it would have made from the user's arguments
// alone. "Alone" is observed through a -readconfig [mon] section, which on QEMU 7.2 and 10.0 does
// not switch off the default monitor the way -mon/-qmp on the command line do. Every case runs on
// each QEMU of test/helpers/qemu-versions.ts, planned for that QEMU's version.

import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { planQemuArgs, type Transport, type WrapPlan } from '../../launcher/qemu-args.js';
import { forEachQemu, qemuLegs, type QemuUnderTest } from '../helpers/qemu-versions.js';

const CONNECT_DEADLINE_MS = 30_000;
const BASE = ['-M', 'pc', '-accel', 'tcg', '-S'];

type Json = Record<string, unknown>;

/** A minimal QMP session: greeting, qmp_capabilities, then one command at a time; events skipped. */
class Qmp {
  private buffer = '';
  private readonly waiting: Array<(line: string) => void> = [];
  private readonly lines: string[] = [];

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (let nl = this.buffer.indexOf('\n'); nl !== -1; nl = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        const waiter = this.waiting.shift();
        if (waiter) waiter(line);
        else this.lines.push(line);
      }
    });
  }

  private nextLine(): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => {
      this.waiting.push(resolve);
      this.socket.once('close', () => reject(new Error('QMP connection closed')));
    });
  }

  /** Retries while QEMU has not created or not yet listens on the socket; bounded, fails fast if QEMU died. */
  static async connect(path: string, died: () => string | undefined): Promise<Qmp> {
    const deadline = Date.now() + CONNECT_DEADLINE_MS;
    for (;;) {
      const socket = net.connect(path);
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve);
          socket.once('error', reject);
        });
        const qmp = new Qmp(socket);
        const greeting = JSON.parse(await qmp.nextLine()) as Json;
        if (!('QMP' in greeting)) throw new Error(`not a QMP greeting: ${JSON.stringify(greeting)}`);
        await qmp.execute('qmp_capabilities');
        return qmp;
      } catch (error) {
        socket.destroy();
        const code = (error as NodeJS.ErrnoException).code;
        const exit = died();
        if (exit !== undefined) throw new Error(`QEMU exited before QMP answered: ${exit}`);
        if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }

  async execute(command: string, args?: Json): Promise<unknown> {
    this.socket.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
    for (;;) {
      const reply = JSON.parse(await this.nextLine()) as Json;
      if ('event' in reply) continue;
      if ('error' in reply) throw new Error(`${command}: ${JSON.stringify(reply['error'])}`);
      return reply['return'];
    }
  }

  async hmp(commandLine: string): Promise<string> {
    return String(await this.execute('human-monitor-command', { 'command-line': commandLine })).replaceAll('\r', '');
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Starts QEMU (stdin a pipe, so -nographic's stdio is not a tty) and kills it at teardown. */
function startQemu(t: Test, qemu: QemuUnderTest, args: readonly string[]): () => string | undefined {
  const child = spawn(qemu.binary, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  let exit: string | undefined;
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = `code ${code} signal ${signal}: ${stderr}`;
      resolve();
    });
    child.once('error', (error) => {
      exit = String(error);
      resolve();
    });
  });
  t.teardown(async () => {
    if (exit === undefined) child.kill('SIGKILL');
    await exited;
  });
  return () => exit;
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hi-qa-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Observed {
  /** label → backend as query-chardev reports it. */
  readonly chardevs: Map<string, string>;
  /** Indices of all isa-serial devices, sorted (info qtree). */
  readonly isaIndices: number[];
  /** Their I/O port addresses, sorted. */
  readonly isaIobases: number[];
  /** Every device in `info qtree`, by type: QEMU's defaults included. */
  readonly devices: Record<string, number>;
  readonly qmp: Qmp;
}

async function observe(qmp: Qmp, hide: readonly string[]): Promise<Observed> {
  const list = (await qmp.execute('query-chardev')) as Array<{ label: string; filename: string }>;
  const chardevs = new Map(list.filter((c) => !hide.includes(c.label)).map((c) => [c.label, c.filename]));
  const qtree = await qmp.hmp('info qtree');
  const ports = [...qtree.matchAll(/dev: isa-serial, id "[^"]*"\n\s+index = (\d+) .*\n\s+iobase = (\d+) /g)];
  const isaIndices = ports.map((m) => Number(m[1])).sort((a, b) => a - b);
  const isaIobases = ports.map((m) => Number(m[2])).sort((a, b) => a - b);
  const devices: Record<string, number> = {};
  for (const m of qtree.matchAll(/^\s*dev: ([^,\s]+),/gm)) devices[m[1] ?? ''] = (devices[m[1] ?? ''] ?? 0) + 1;
  return { chardevs, isaIndices, isaIobases, devices, qmp };
}

/** QEMU run with the user's arguments only, watched through a -readconfig monitor. */
async function plainQemu(t: Test, qemu: QemuUnderTest, userArgs: readonly string[]): Promise<Observed> {
  const dir = await tempDir(t);
  const socket = join(dir, 'probe.sock');
  const config = join(dir, 'probe.cfg');
  await writeFile(
    config,
    `[chardev "probe"]\n  backend = "socket"\n  path = "${socket}"\n  server = "on"\n  wait = "off"\n` +
      `[mon "probe-mon"]\n  chardev = "probe"\n  mode = "control"\n`,
  );
  const died = startQemu(t, qemu, [...BASE, ...userArgs, '-readconfig', config]);
  const qmp = await Qmp.connect(socket, died);
  t.teardown(() => qmp.close());
  return observe(qmp, ['probe']);
}

/** QEMU run with the launcher's plan, watched through the launcher's own QMP socket. */
async function rewrittenQemu(t: Test, qemu: QemuUnderTest, userArgs: readonly string[], transport: Transport, name = 'vm'): Promise<{ plan: WrapPlan } & Observed> {
  const vmsDir = await tempDir(t);
  const plan = planQemuArgs([...BASE, '-name', name, ...userArgs], { transport, vmsDir, launcherPid: process.pid, qemuVersion: qemu.version });
  if (plan.mode !== 'wrap') throw new Error(`expected a wrap plan: ${JSON.stringify(plan)}`);
  await mkdir(plan.vmDir, { mode: 0o700 });
  const died = startQemu(t, qemu, plan.args);
  const qmp = await Qmp.connect(plan.qmpSocket, died);
  t.teardown(() => qmp.close());
  return { plan, ...(await observe(qmp, [plan.ids.chardev, plan.ids.qmpChardev])) };
}

async function qomGet(qmp: Qmp, path: string, property: string): Promise<unknown> {
  return qmp.execute('qom-get', { path, property });
}

const SAME_AS_QEMU_ALONE: Array<[string, string[], Transport]> = [
  ['graphical defaults (-display none)', ['-display', 'none'], 'isa-serial'],
  ['-nographic', ['-nographic'], 'isa-serial'],
  ['-nographic -serial null', ['-nographic', '-serial', 'null'], 'isa-serial'],
  ['-nographic -monitor none', ['-nographic', '-monitor', 'none'], 'isa-serial'],
  ['-nodefaults, two user ports', ['-nodefaults', '-serial', 'null', '-chardev', 'null,id=u', '-device', 'isa-serial,chardev=u,index=2'], 'isa-serial'],
  ['-serial none, then a port', ['-display', 'none', '-serial', 'none', '-serial', 'null'], 'isa-serial'],
  ['-serial mon:stdio', ['-serial', 'mon:stdio', '-display', 'none'], 'isa-serial'],
  ['-parallel mon:vc', ['-display', 'none', '-parallel', 'mon:vc'], 'isa-serial'],
  ['-global isa-serial.*', ['-display', 'none', '-global', 'isa-serial.baudbase=115200'], 'isa-serial'],
  // The user's JSON device takes the counter (1); ours goes last so it does not move it.
  ['JSON isa-serial without index', ['-nodefaults', '-serial', 'null', '-chardev', 'null,id=j', '-device', '{"driver":"isa-serial","chardev":"j"}'], 'isa-serial'],
  // -set is applied to the device's options before QEMU creates it: s1 is on 1, not the counter's 0.
  ['-set device.ID.index', ['-nodefaults', '-chardev', 'null,id=c1', '-device', 'isa-serial,id=s1,chardev=c1', '-set', 'device.s1.index=1'], 'isa-serial'],
  ['-set, the last one wins', ['-nodefaults', '-serial', 'null', '-chardev', 'null,id=c1', '-device', 'isa-serial,id=s1,chardev=c1', '-set', 'device.s1.index=3', '-set', 'device.s1.index=0x2'], 'isa-serial'],
  ['-set device.ID.driver=isa-serial', ['-display', 'none', '-chardev', 'null,id=c1', '-device', 'virtio-rng-pci,id=x', '-set', 'device.x.driver=isa-serial', '-set', 'device.x.chardev=c1'], 'isa-serial'],
  ['-set device.ID.driver= away from isa-serial', ['-display', 'none', '-device', 'isa-serial,id=x', '-set', 'device.x.driver=virtio-rng-pci'], 'isa-serial'],
  ['index with a leading blank', ['-nodefaults', '-serial', 'null', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1,index= 2'], 'isa-serial'],
  ['-global isa-serial.index', ['-nodefaults', '-global', 'isa-serial.index=1', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1'], 'isa-serial'],
  ['-set on a -global', ['-nodefaults', '-global', 'driver=isa-serial,property=baudbase,value=9600,id=g', '-set', 'global.g.property=index', '-set', 'global.g.value=1', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1'], 'isa-serial'],
  ['-device iobase', ['-nodefaults', '-chardev', 'null,id=c1', '-device', 'isa-serial,chardev=c1,iobase=0x2f8'], 'isa-serial'],
  ['-set iobase', ['-nodefaults', '-chardev', 'null,id=c1', '-device', 'isa-serial,id=s1,chardev=c1', '-set', 'device.s1.iobase=0x2f8'], 'isa-serial'],
  ['-global isa-serial.iobase', ['-nodefaults', '-global', 'isa-serial.iobase=0x2f8', '-serial', 'null'], 'isa-serial'],
  ['-global isa-serial.iobase, JSON port', ['-nodefaults', '-global', 'isa-serial.iobase=0x2f8', '-chardev', 'null,id=c1', '-device', '{"driver":"isa-serial","chardev":"c1"}'], 'isa-serial'],
  ['virtio-serial, -nographic', ['-nographic'], 'virtio-serial'],
  ['virtio-serial, graphical', ['-display', 'none'], 'virtio-serial'],
];

forEachQemu(t, await qemuLegs(), async (t, qemu) => {
  for (const [label, userArgs, transport] of SAME_AS_QEMU_ALONE) {
    t.test(`${label}: QEMU's own devices survive, ours are added`, async (t) => {
      const [plain, rewritten] = await Promise.all([plainQemu(t, qemu, ['-name', 'vm', ...userArgs]), rewrittenQemu(t, qemu, userArgs, transport)]);
      const { plan, qmp } = rewritten;
      t.same(Object.fromEntries(rewritten.chardevs), Object.fromEntries(plain.chardevs), 'same chardevs (serial, monitor, parallel) as QEMU alone');
      // QEMU's default devices (which depend on the display and on the version) are what it makes
      // alone: the plan adds its port's devices and nothing else.
      const ours = transport === 'isa-serial' ? ['isa-serial'] : ['virtio-serial-pci', 'virtio-serial-device', 'virtserialport'];
      const expected = { ...plain.devices };
      for (const type of ours) expected[type] = (expected[type] ?? 0) + 1;
      t.same(rewritten.devices, expected, `the devices of QEMU alone plus ours (${ours.join(', ')}), by info qtree`);

      const chardevs = new Map(((await qmp.execute('query-chardev')) as Array<{ label: string; filename: string }>).map((c) => [c.label, c.filename]));
      t.equal(chardevs.get(plan.ids.chardev), `disconnected:unix:${plan.guestSocket},server=on`, 'our chardev, listening on the planned path');
      t.match(chardevs.get(plan.ids.qmpChardev), `unix:${plan.qmpSocket},server=on`, 'our QMP monitor (connected: this session)');
      t.same(await qmp.execute('query-name'), { name: 'vm' });

      const port = `/machine/peripheral/${plan.ids.port}`;
      t.equal(await qomGet(qmp, port, 'chardev'), plan.ids.chardev);
      if (transport === 'isa-serial') {
        t.equal(await qomGet(qmp, port, 'index'), plan.serialIndex, `our isa-serial on index ${String(plan.serialIndex)}`);
        t.same(rewritten.isaIndices, [...plain.isaIndices, plan.serialIndex].sort((a, b) => (a ?? 0) - (b ?? 0)), "the user's ports keep their indices");
        t.equal(new Set(rewritten.isaIndices).size, rewritten.isaIndices.length, `no two ports on one index: ${rewritten.isaIndices.join(' ')}`);
        const iobase = rewritten.isaIobases.filter((address) => !plain.isaIobases.includes(address));
        t.equal(iobase.length, 1, `ours on an I/O address of its own: ${rewritten.isaIobases.join(' ')} (QEMU alone: ${plain.isaIobases.join(' ')})`);
        t.equal(await qomGet(qmp, port, 'iobase'), [0x3f8, 0x2f8, 0x3e8, 0x2e8][plan.serialIndex ?? 0], "at its index's standard address (the guest's /dev/ttyS<index>)");
      } else {
        t.equal(await qomGet(qmp, port, 'name'), 'org.hostinfo.0');
        t.same(rewritten.isaIndices, plain.isaIndices, 'ISA serial ports untouched');
      }
    });
  }

  t.test('an explicit clash QEMU would accept silently is avoided', async (t) => {
    // QEMU alone accepts two isa-serials on index 0 (seen in info qtree); the plan never does that.
    const userArgs = ['-nodefaults', '-chardev', 'null,id=a', '-device', 'isa-serial,chardev=a', '-serial', 'null'];
    const { plan, isaIndices } = await rewrittenQemu(t, qemu, userArgs, 'isa-serial');
    t.equal(plan.serialIndex, 2, '-serial on 0, the implicit device on counter 1, ours on 2');
    t.same(isaIndices, [0, 1, 2]);
  });
});
