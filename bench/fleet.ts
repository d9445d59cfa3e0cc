// N VMs as the fleet benchmarks need them, on the production path: one real hostinfod adopts
// every VM registered under its runtime directory's vms/ and spawns each VM's hostinfo-sidecar
// itself. A VM here is registered as the launcher does it (common/vm-publish.ts stageVmDir +
// publishVmDir): a real paused QEMU provides QMP in the staging directory, and the bench plays
// QEMU's hostinfo chardev end at guest.sock, so it can ask at full speed. Every process started
// here, the daemon's sidecars included, is killed by close() (and by reaper.ts on any exit).

import { type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { processStartTime } from '../common/proc.js';
import { GUEST_SOCKET, QMP_SOCKET } from '../common/runtime-tree.js';
import type { VmRecord } from '../common/vm-record.js';
import { fetchStatus } from '../daemon/control-client.js';
import type { StatusReply } from '../daemon/messages.js';
import { publishVmDir, stageVmDir } from '../common/vm-publish.js';
import { DaemonProcess, makeSite, PAUSED_QEMU, poll, POLL_MS, QEMU, READY_TIMEOUT_MS, readLogLines, type Site } from './fleet-site.js';
import { killNoted, spawnNoted, stillRuns, stopChild, untilGone } from './reaper.js';

/** VMs registered at once: 2 cores gain nothing from more, and start-up stays orderly. */
const START_CONCURRENCY = 6;

export interface FleetVm {
  readonly index: number;
  /** The VM's directory name under vms/, its id in the daemon's status. */
  readonly name: string;
  readonly qemu: ChildProcess;
  /** The bench's end of the VM's hostinfo chardev: write requests here, replies come back. */
  readonly guest: Socket;
  readonly server: Server;
}

/** One guest request, one reply line. */
export async function ask(socket: Socket, request: string, timeoutMs = 10_000): Promise<string> {
  let buffered = '';
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`no reply to ${request} in ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('latin1');
      const lf = buffered.indexOf('\n');
      if (lf !== -1) finish(buffered.slice(0, lf));
    };
    function finish(result: string | Error): void {
      clearTimeout(timer);
      socket.off('data', onData);
      if (result instanceof Error) reject(result);
      else resolve(result);
    }
    socket.on('data', onData);
    socket.write(`${request}\n`);
  });
}

/** Runs `task` for 0..count-1 with at most `limit` at a time. */
export async function pool(count: number, limit: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

export async function killAndWait(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  await stopChild(child, signal);
}

export class Fleet {
  readonly site: Site;
  readonly daemon: DaemonProcess;
  readonly vms: FleetVm[] = [];
  /** VMs whose sidecar failed to start at least once before serving, and why. */
  readonly failedStarts: string[] = [];
  readonly #qemus: ChildProcess[] = [];
  readonly #servers: Server[] = [];

  private constructor(site: Site, daemon: DaemonProcess) {
    this.site = site;
    this.daemon = daemon;
  }

  /**
   * Starts hostinfod (with `daemonEnv` added to its environment), then registers `count` VMs;
   * resolves once every VM's sidecar answers its guest from host data.
   */
  static async start(count: number, daemonEnv: NodeJS.ProcessEnv = {}): Promise<Fleet> {
    const site = await makeSite('hostinfo-fleet-');
    const fleet = new Fleet(site, new DaemonProcess(site, daemonEnv));
    try {
      await fleet.daemon.waitFor('hostinfod listening', (line) => line['event'] === 'listening');
      await pool(count, START_CONCURRENCY, (index) => fleet.#register(index));
      fleet.vms.sort((a, b) => a.index - b.index);
      if (fleet.failedStarts.length > 0) process.stderr.write(`  ${fleet.failedStarts.length} of ${count} VMs had a sidecar fail to start before serving: ${fleet.failedStarts.join('; ')}\n`);
      return fleet;
    } catch (error) {
      await fleet.close();
      throw error;
    }
  }

  /** Registers more VMs, up to `count` in all; resolves once each new VM's sidecar answers. */
  async grow(count: number): Promise<void> {
    const from = this.vms.length === 0 ? 0 : Math.max(...this.vms.map((vm) => vm.index)) + 1;
    await pool(count - this.vms.length, START_CONCURRENCY, (offset) => this.#register(from + offset));
    this.vms.sort((a, b) => a.index - b.index);
  }

  status(): Promise<StatusReply> {
    return fetchStatus(this.site.control);
  }

  /** Each VM's sidecar pid, from the daemon's status, in the order of `vms`. */
  async sidecarPids(): Promise<number[]> {
    const reply = await this.status();
    return this.vms.map((vm) => {
      const pid = reply.vms.find((entry) => entry.id === vm.name)?.sidecar.pid;
      if (pid === null || pid === undefined) throw new Error(`hostinfod reports no sidecar for ${vm.name}`);
      return pid;
    });
  }

  /** Stops every VM after the first `count` (QEMU first, as when a VM shuts down); resolves once the daemon has let them go. */
  async shrink(count: number): Promise<void> {
    const gone = this.vms.splice(count);
    const names = new Set(gone.map((vm) => vm.name));
    const sidecars = (await this.status()).vms.filter((entry) => names.has(entry.id)).map((entry) => entry.sidecar.pid);
    await Promise.all(gone.map((vm) => killAndWait(vm.qemu)));
    await poll(`hostinfod to let ${gone.length} VMs go`, async () => ((await this.status()).vms.some((entry) => names.has(entry.id)) ? undefined : true));
    for (const pid of sidecars) if (pid !== null && !(await untilGone(pid))) throw new Error(`sidecar ${pid} still runs after its QEMU is gone`);
    for (const vm of gone) {
      vm.guest.destroy();
      vm.server.close();
    }
  }

  /** The daemon first (it stops its sidecars), then QEMUs, then whatever sidecar outlived it. */
  async close(): Promise<void> {
    let sidecars: number[] = [];
    if (this.daemon.running) sidecars = (await this.status().catch(() => undefined))?.vms.flatMap((entry) => (entry.sidecar.pid === null ? [] : [entry.sidecar.pid])) ?? [];
    for (const line of this.daemon.lines) if (line['event'] === 'sidecar-started' && typeof line['sidecarPid'] === 'number') sidecars.push(line['sidecarPid']);
    await this.daemon.stop();
    await Promise.all(this.#qemus.map((qemu) => killAndWait(qemu)));
    for (const pid of sidecars) if (stillRuns(pid)) killNoted(pid);
    for (const server of this.#servers) server.close();
    for (const vm of this.vms) vm.guest.destroy();
    await rm(this.site.dir, { recursive: true, force: true });
  }

  /** As test/helpers/served-vm.ts stageVm: staged, QEMU listening in the stage, vm.json naming QEMU, published. */
  async #register(index: number): Promise<void> {
    const name = `bench-${index}`;
    const placeholder: VmRecord = {
      v: 1, pid: process.pid, startTime: processStartTime(process.pid) ?? '0', name, uuid: undefined,
      transport: 'isa-serial', guestDevice: '/dev/ttyS0', pidfile: undefined,
    };
    const stage = stageVmDir(this.site.vms, placeholder);
    const server = createServer();
    this.#servers.push(server);
    server.listen(join(stage, GUEST_SOCKET));
    await once(server, 'listening');
    // hostinfod connects anew for each sidecar it starts: the newest connection is the live one.
    const connections: Socket[] = [];
    server.on('connection', (socket: Socket) => {
      socket.on('error', () => {});
      connections.push(socket);
    });
    const qemu = spawnNoted(QEMU, [...PAUSED_QEMU, '-name', name, '-qmp', `unix:${join(stage, QMP_SOCKET)},server=on,wait=off`], { stdio: 'ignore' });
    this.#qemus.push(qemu);
    const qemuPid = qemu.pid ?? 0;
    // QEMU binds its QMP socket by path: the staging directory must not move before it has.
    const startTime = await poll(`QEMU ${name} to listen on QMP`, () => {
      if (qemu.exitCode !== null || qemu.signalCode !== null) throw new Error(`QEMU ${name} exited (${qemu.exitCode ?? qemu.signalCode}) before listening`);
      const value = processStartTime(qemuPid);
      return value !== undefined && existsSync(join(stage, QMP_SOCKET)) ? value : undefined;
    });
    writeFileSync(join(stage, 'vm.json.tmp'), `${JSON.stringify({ ...placeholder, pid: qemuPid, startTime })}\n`, { mode: 0o600 });
    renameSync(join(stage, 'vm.json.tmp'), join(stage, 'vm.json'));
    if (!publishVmDir(stage, join(this.site.vms, name))) {
      rmSync(stage, { recursive: true, force: true });
      throw new Error(`${name} is taken under ${this.site.vms}`);
    }
    // The daemon (root) connects to guest.sock for the sidecar and hands it over; the sidecar
    // reads it from `guest-connected` on, and logs `host-data` at its first sample.
    await poll(`${name}'s sidecar to be ready`, () => {
      if (!this.daemon.running) throw new Error(`hostinfod exited while ${name} was starting`);
      const events = new Set(readLogLines(this.site.sidecarLog(name)).map((line) => line['event']));
      return events.has('guest-connected') && events.has('host-data') ? true : undefined;
    }, READY_TIMEOUT_MS, () => `: ${existsSync(this.site.sidecarLog(name)) ? readFileSync(this.site.sidecarLog(name), 'utf8').slice(-800) : 'no sidecar log'}`);
    const guest = await poll(`${name}'s guest connection`, () => {
      const newest = connections[connections.length - 1];
      return newest !== undefined && !newest.destroyed ? newest : undefined;
    });
    // A sidecar that failed (e.g. never got QMP's greeting) is restarted by the daemon; the
    // benchmark goes on with the restarted one, and says so.
    const failed = readLogLines(this.site.sidecarLog(name)).filter((line) => line['event'] === 'start-failed');
    if (failed.length > 0) this.failedStarts.push(`${name}: ${failed.map((line) => String(line['code'] ?? line['err'])).join(', ')}`);
    guest.setNoDelay(true);
    // A 503 (no data yet) would only be a sidecar whose first sample has not come: asked again then.
    let reply = await ask(guest, 'physcpus');
    for (let tries = 0; reply.startsWith('1.0 503') && tries < 100; tries += 1) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      reply = await ask(guest, 'physcpus');
    }
    if (!/^1\.0 200 \d+$/.test(reply)) throw new Error(`${name}: physcpus answered ${JSON.stringify(reply)}`);
    this.vms.push({ index, name, qemu, guest, server });
  }
}
