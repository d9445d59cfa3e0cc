// Real processes for the live hostile-guest tests: one hostinfo-cache, and per VM a paused QEMU (for
// QMP), a unix socket standing in for QEMU's chardev end, and a real hostinfo-sidecar. The guest
// end here is built for volume: replies are split into lines as they arrive and handed to a
// callback, never accumulated in one growing string.

import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startQemu, type Qemu } from '../fixtures/qmp/qemu.js';
import { binPath, spawnLogged, withTimeout, type LoggedProcess, type Teardown } from '../helpers/logged-process.js';

const SIDECAR = binPath('sidecar/main.js');
const CACHE = binPath('cache/main.js');

export interface Host {
  readonly dir: string;
  readonly config: string;
  readonly cacheSocket: string;
  readonly cache: LoggedProcess;
}

export async function startHost(t: Teardown): Promise<Host> {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-hostile-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'policies'));
  const config = join(dir, 'hostinfo.toml');
  await writeFile(config, 'enabled = true\npolicy_dir = "policies"\nruntime_dir = "run"\n[cache]\ninterval = 0.5\nmax_age = 5.0\n');
  const cacheSocket = join(dir, 'cache.sock');
  const cache = spawnLogged(t, CACHE, ['--config', config, '--socket', cacheSocket]);
  await cache.waitFor('listening');
  return { dir, config, cacheSocket, cache };
}

export interface Vm {
  readonly name: string;
  readonly policyFile: string;
  readonly qemu: Qemu;
  readonly guest: FastGuest;
  readonly sidecar: LoggedProcess;
}

export async function startVm(t: Teardown, host: Host, name: string, policy: string): Promise<Vm> {
  const policyFile = join(host.dir, 'policies', `${name}.toml`);
  await writeFile(policyFile, policy);
  const qemu = await startQemu(t, ['-name', name, '-smp', '1']);
  const guest = await FastGuest.listen(t, join(host.dir, `${name}.guest.sock`));
  const sidecar = spawnLogged(t, SIDECAR, ['--qmp', qemu.socketPath, '--guest', guest.path, '--config', host.config, '--cache', host.cacheSocket, '--qemu-pid', String(qemu.pid)]);
  await guest.connected();
  await sidecar.waitFor('cache-data');
  return { name, policyFile, qemu, guest, sidecar };
}

/** Rewrites a VM's policy and waits for the sidecar to log the new decision. */
export async function changePolicy(vm: Vm, text: string): Promise<void> {
  const from = vm.sidecar.lines.length;
  await writeFile(vm.policyFile, text);
  await vm.sidecar.waitFor('policy', from);
}

/** The chardev end: the sidecar connects here; the test writes as the guest. */
export class FastGuest {
  readonly path: string;
  readonly #server: Server;
  #socket: Socket | undefined;
  #partial = '';
  #lines = 0;
  #waiters: { count: number; resolve: () => void }[] = [];
  #connected: (() => void) | undefined;
  onLine: (line: string) => void = () => {};

  private constructor(path: string, server: Server) {
    this.path = path;
    this.#server = server;
    server.on('connection', (socket) => {
      socket.on('error', () => {});
      this.#socket?.destroy();
      this.#socket = socket;
      this.#partial = '';
      socket.on('data', (chunk: Buffer) => this.#receive(chunk));
      this.#connected?.();
    });
  }

  static async listen(t: Teardown, path: string): Promise<FastGuest> {
    const server = createServer();
    server.listen(path);
    await once(server, 'listening');
    const guest = new FastGuest(path, server);
    t.teardown(() => guest.close());
    return guest;
  }

  /** Reply lines received so far (LF included in each). */
  get lines(): number {
    return this.#lines;
  }

  async connected(): Promise<void> {
    if (this.#socket !== undefined) return;
    await withTimeout(new Promise<void>((resolve) => { this.#connected = resolve; }), 'the sidecar connecting to the guest end');
  }

  /** Writes, waiting for the socket to drain when it is full: "as fast as the socket takes it". */
  async send(bytes: Buffer | string): Promise<void> {
    const socket = this.#socket;
    if (socket === undefined) throw new Error('no sidecar connected');
    if (!socket.write(bytes)) await withTimeout(once(socket, 'drain'), 'the guest socket to drain');
  }

  /** Resolves once `count` reply lines have arrived in all. */
  async untilLines(count: number, what: string, ms?: number): Promise<void> {
    if (this.#lines >= count) return;
    await withTimeout(new Promise<void>((resolve) => this.#waiters.push({ count, resolve })), `${what} (${this.#lines} of ${count} reply lines so far)`, ms);
  }

  /** One request, its one reply (LF stripped); other callbacks are suspended meanwhile. */
  async ask(request: string): Promise<string> {
    const previous = this.onLine;
    let reply = '';
    this.onLine = (line) => { reply = line; };
    try {
      const target = this.#lines + 1;
      await this.send(`${request}\n`);
      await this.untilLines(target, `the reply to ${JSON.stringify(request)}`);
    } finally {
      this.onLine = previous;
    }
    return reply.replace(/\n$/, '');
  }

  close(): void {
    this.#socket?.destroy();
    this.#server.close();
  }

  #receive(chunk: Buffer): void {
    const text = this.#partial + chunk.toString('latin1');
    let start = 0;
    for (let lf = text.indexOf('\n'); lf !== -1; lf = text.indexOf('\n', start)) {
      this.#lines += 1;
      this.onLine(text.slice(start, lf + 1));
      start = lf + 1;
    }
    this.#partial = text.slice(start);
    if (this.#partial.length > 4096) throw new Error(`reply without LF longer than 4096 bytes: ${JSON.stringify(this.#partial.slice(0, 100))}`);
    this.#waiters = this.#waiters.filter((waiter) => {
      if (this.#lines < waiter.count) return true;
      waiter.resolve();
      return false;
    });
  }
}

/** Fields of /proc/<pid>/status, in kB, e.g. VmHWM (peak RSS) and VmRSS. */
export function memoryKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no ${field} for ${pid}`);
  return Number(match[1]);
}

/** utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux x86). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}
export const USER_HZ = 100;
