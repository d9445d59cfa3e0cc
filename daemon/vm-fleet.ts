// The registered VMs: whatever appears under <runtime_dir>/vms/ is adopted (on start, on each
// change the directory reports, and on a periodic rescan that catches what a watch missed), each
// by its own VmKeeper. A directory is only ever removed for being a dead VM's own.

import { readdirSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { processStartTime, processUid, sameProcess } from '../common/proc.js';
import { VMS_DIR } from '../common/runtime-tree.js';
import type { VmStatus } from './messages.js';
import { sidecarAccount } from './sidecar-launch.js';
import { readVmRecord, removeVmDir, vmDirOwner, type VmDirOwner } from './vm-dir.js';
import { VmKeeper, type KeeperContext } from './vm-keeper.js';

/** How often every VM's process is checked, and vms/ read again in case a watch event was lost. */
export const LIVENESS_MS = 1_000;
export const RESCAN_MS = 5_000;

/** What every VM's keeper is given; the daemon's uid defaults to this process's. */
export interface FleetOptions extends Omit<KeeperContext, 'daemonUid'> {
  readonly daemonUid?: number;
}

export class VmFleet {
  readonly #options: FleetOptions;
  readonly #vmsDir: string;
  readonly #daemonUid: number;
  readonly #keepers = new Map<string, VmKeeper>();
  /** Entries judged not to be VMs, with what made them so: logged once, not retried until changed. */
  readonly #rejected = new Map<string, string>();
  #watcher: FSWatcher | undefined;
  #timers: NodeJS.Timeout[] = [];
  #stopped = false;

  constructor(options: FleetOptions) {
    this.#options = options;
    this.#vmsDir = join(options.runtimeDir, VMS_DIR);
    this.#daemonUid = options.daemonUid ?? process.geteuid?.() ?? 0;
  }

  start(): void {
    this.#watcher = watch(this.#vmsDir, { persistent: false }, () => this.scan());
    this.#watcher.on('error', (error) => this.#options.log.warn({ event: 'vms-unwatched', err: error.message }, `${this.#vmsDir} not watched; rescanning every ${RESCAN_MS} ms`));
    this.#timers.push(setInterval(() => this.#checkAll(), LIVENESS_MS), setInterval(() => this.scan(), RESCAN_MS));
    this.scan();
  }

  /** Served VMs only: what the `vmcount` item counts. */
  servedCount(): number {
    let count = 0;
    for (const keeper of this.#keepers.values()) if (keeper.served) count += 1;
    return count;
  }

  status(): VmStatus[] {
    return [...this.#keepers.values()].map((keeper) => keeper.status()).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  keeper(id: string): VmKeeper | undefined {
    return this.#keepers.get(id);
  }

  /** SIGHUP: every VM's config and policy read again. */
  async reload(): Promise<void> {
    await Promise.all([...this.#keepers.values()].map((keeper) => keeper.reload()));
  }

  /** The daemon stops; the VMs do not: their directories stay for the next daemon to adopt. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watcher?.close();
    for (const timer of this.#timers) clearInterval(timer);
    await Promise.all([...this.#keepers.values()].map((keeper) => keeper.end('hostinfod stopping', true)));
  }

  scan(): void {
    if (this.#stopped) return;
    let names: string[];
    try {
      names = readdirSync(this.#vmsDir);
    } catch (error) {
      this.#options.log.error({ event: 'vms-unreadable', err: (error as Error).message });
      return;
    }
    for (const name of names) {
      if (this.#keepers.has(name)) continue;
      if (name.startsWith('.new-')) this.#clearStaging(name);
      else if (!name.startsWith('.')) this.#adopt(name);
    }
  }

  #checkAll(): void {
    for (const keeper of this.#keepers.values()) keeper.check();
  }

  #reject(name: string, fingerprint: string, reason: string): void {
    if (this.#rejected.get(name) === fingerprint) return;
    this.#rejected.set(name, fingerprint);
    this.#options.log.error({ event: 'vm-rejected', dir: join(this.#vmsDir, name), reason }, 'not serving this VM directory');
  }

  #adopt(name: string): void {
    const dir = join(this.#vmsDir, name);
    const owner = vmDirOwner(dir);
    if (typeof owner === 'string') return this.#reject(name, owner, owner);
    const result = readVmRecord(dir);
    // No vm.json yet can only be a directory made by hand: launchers publish complete ones.
    if (result === undefined) return this.#reject(name, 'no-record', 'no vm.json in it');
    if (!result.ok) return this.#reject(name, result.problem, `invalid vm.json: ${result.problem}`);
    const { record } = result;
    if (!sameProcess(record.pid, record.startTime)) {
      if (record.pidfile === undefined) return void this.#remove(name, dir, owner, `pid ${record.pid} is gone`);
    } else if (this.#daemonUid === 0 && owner.uid !== 0 && processUid(record.pid) !== owner.uid) {
      return this.#reject(name, `uid:${record.pid}`, `pid ${record.pid} does not run as the directory's owner (uid ${owner.uid})`);
    }
    this.#rejected.delete(name);
    const account = sidecarAccount(owner, this.#daemonUid, this.#options.config().sidecarUser);
    const keeper = new VmKeeper(name, dir, owner, record, account, { ...this.#options, daemonUid: this.#daemonUid });
    this.#keepers.set(name, keeper);
    keeper.once('gone', () => {
      this.#keepers.delete(name);
      this.#rejected.delete(name);
    });
    this.#options.log.info({ event: 'vm-adopted', vm: name, qemuPid: record.pid, owner: owner.uid, vmName: record.name, uuid: record.uuid, guestDevice: record.guestDevice });
    void keeper.start();
    // A daemonized VM whose parent already exited is followed (or let go) right away.
    keeper.check();
  }

  #clearStaging(name: string): void {
    const pid = Number(/^\.new-(\d+)-/.exec(name)?.[1]);
    if (processStartTime(pid) !== undefined) return;
    const dir = join(this.#vmsDir, name);
    const owner = vmDirOwner(dir);
    if (typeof owner === 'string') return;
    void this.#remove(name, dir, owner, `staging directory of launcher ${pid}, which is gone`);
  }

  async #remove(name: string, dir: string, owner: VmDirOwner, reason: string): Promise<void> {
    this.#options.log.info({ event: 'stale-removed', dir, reason });
    await removeVmDir(dir, owner, this.#daemonUid).catch((error: unknown) => this.#reject(name, 'rm', `cannot remove: ${(error as Error).message}`));
  }
}
