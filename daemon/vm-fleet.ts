// The registered VMs: whatever appears under <runtime_dir>/vms/ is adopted (on start, on each
// change the directory reports, and on a periodic rescan that catches what a watch missed), each
// by its own VmKeeper. A directory is only ever removed for being a dead VM's own.

import { readdirSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { processGid, processStartTime, processUid, sameProcess } from '../common/proc.js';
import { VMS_DIR } from '../common/runtime-tree.js';
import { matchVmKey } from '../common/vm-key.js';
import type { VmRecord } from '../common/vm-record.js';
import type { AccessSummary, ReloadChange } from './control-messages.js';
import { ProtocolError, type AccessMessage, type VmStatus } from './messages.js';
import { reachOf, sidecarAccount, type SidecarAccount, type SidecarReach } from './sidecar-launch.js';
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

  keeperOfPid(pid: number): VmKeeper | undefined {
    return [...this.#keepers.values()].find((keeper) => keeper.pid === pid || keeper.record.pid === pid);
  }

  /** A VM as common/vm-key.ts names it; NO_SUCH_VM, or AMBIGUOUS_VM for a shared name or uuid. */
  find(key: string): VmKeeper {
    const match = matchVmKey([...this.#keepers.values()], key, (keeper) => ({ id: keeper.id, pids: [keeper.pid, keeper.record.pid], name: keeper.record.name, uuid: keeper.record.uuid }));
    if (match.kind === 'ambiguous') throw new ProtocolError('AMBIGUOUS_VM', match.message);
    if (match.kind === 'none') throw new ProtocolError('NO_SUCH_VM', `no VM ${JSON.stringify(key)} is served (hostinfo-ctl status lists them)`);
    return match.vm;
  }

  /** Stops serving an attached VM. */
  async detach(key: string): Promise<string> {
    const keeper = this.find(key);
    if (keeper.record.attached === undefined) {
      throw new ProtocolError('REFUSED', `${keeper.id} was launched through hostinfo and is served until its QEMU exits; disable its policy to stop answering its guest`);
    }
    await keeper.end('detached');
    return keeper.id;
  }

  get daemonUid(): number {
    return this.#daemonUid;
  }

  /** SIGHUP: every VM's config and policy read again; each VM's decision before and after. */
  reload(): Promise<ReloadChange[]> {
    return Promise.all([...this.#keepers.values()].map(async (keeper) => {
      const before = summarize(keeper.access());
      await keeper.reload();
      return { id: keeper.id, name: keeper.access().vm.name, before, after: summarize(keeper.access()) };
    }));
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
    if (record.attached !== undefined && owner.uid !== this.#daemonUid) {
      return this.#reject(name, 'attached-owner', `an attached VM's record must be the daemon's own (uid ${this.#daemonUid}), this one is uid ${owner.uid}'s`);
    }
    this.#rejected.delete(name);
    const keeper = new VmKeeper(name, dir, owner, record, this.#sidecarOf(dir, owner, record), { ...this.#options, daemonUid: this.#daemonUid });
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

  /**
   * Who the sidecar runs as and how it reaches the VM. A launched VM's sidecar acts for the
   * directory's owner; an attached VM's for whoever runs its QEMU (libvirt-qemu, say), since that
   * user's reach is exactly what QEMU's sockets were made for.
   */
  #sidecarOf(dir: string, owner: VmDirOwner, record: VmRecord): { account: SidecarAccount | string; reach: SidecarReach } {
    const uid = record.attached === undefined ? owner.uid : processUid(record.pid);
    const gid = record.attached === undefined ? owner.gid : processGid(record.pid);
    if (uid === undefined || gid === undefined) return { account: `pid ${record.pid} is gone`, reach: reachOf(dir, record, false) };
    const account = sidecarAccount({ uid, gid }, this.#daemonUid, this.#options.config().sidecarUser);
    return { account, reach: reachOf(dir, record, uid === this.#daemonUid) };
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

function summarize(access: AccessMessage): AccessSummary {
  return { served: access.served, reason: access.reason, file: access.file, items: access.items, limit: access.served ? access.limit : null };
}
