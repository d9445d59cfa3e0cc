// Everything the daemon does for one registered VM, until its QEMU is gone: follow its pid (and
// the daemonized one), keep its access decision current, keep its sidecar running, then clean up
// its directory. It is the sidecar's link: what the sidecar is told comes from here, never from
// what the sidecar says.

import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { processCmdline, processStartTime, sameProcess } from '../common/proc.js';
import { QMP_SOCKET } from '../common/runtime-tree.js';
import type { VmRecord } from '../common/vm-record.js';
import type { Access } from '../policies/access.js';
import type { HostConfig } from '../policies/host-config.js';
import type { Log } from './log.js';
import type { AccessMessage, CountersMessage, HelloMessage, VmCounters, VmStatus } from './messages.js';
import { PolicySource } from './policy-source.js';
import { launchSidecar, type SidecarAccount, type SidecarReach } from './sidecar-launch.js';
import { SidecarSupervisor } from './sidecar-supervisor.js';
import type { SidecarLink } from './subscriber.js';
import { readSmallFile } from '../common/small-file.js';
import { removeVmDir, type VmDirOwner } from './vm-dir.js';
import type { Socket } from 'node:net';

const NIL_UUID = '00000000-0000-0000-0000-000000000000';

export interface KeeperContext {
  readonly runtimeDir: string;
  readonly daemonUid: number;
  readonly log: Log;
  readonly config: () => HostConfig;
  readonly loadConfig: () => Promise<HostConfig>;
  readonly attach: (channel: Socket, link: SidecarLink) => void;
  readonly refresh: (link: SidecarLink) => void;
}

export interface KeeperEvents {
  gone: [];
}

export class VmKeeper extends EventEmitter<KeeperEvents> implements SidecarLink {
  readonly id: string;
  readonly dir: string;
  readonly owner: VmDirOwner;
  readonly record: VmRecord;
  readonly #context: KeeperContext;
  readonly #account: SidecarAccount | string;
  readonly #reach: SidecarReach;
  readonly #policy: PolicySource;
  readonly #supervisor: SidecarSupervisor;
  #pid: number;
  #startTime: string;
  #followedDaemonize = false;
  #counters: VmCounters | null = null;
  #connected = false;
  #ending: Promise<void> | undefined;

  constructor(id: string, dir: string, owner: VmDirOwner, record: VmRecord, sidecar: { readonly account: SidecarAccount | string; readonly reach: SidecarReach }, context: KeeperContext) {
    super();
    this.id = id;
    this.dir = dir;
    this.owner = owner;
    this.record = record;
    this.#account = sidecar.account;
    this.#reach = sidecar.reach;
    this.#context = context;
    this.#pid = record.pid;
    this.#startTime = record.startTime;
    this.#policy = new PolicySource({ name: record.name, uuid: record.uuid }, context.loadConfig);
    this.#policy.on('change', (access) => this.#accessChanged(access));
    this.#supervisor = new SidecarSupervisor({ launch: () => this.#launch() });
    this.#supervisor.on('exited', (how, restartInMs) => {
      context.log.warn({ event: 'sidecar-exited', vm: id, how, restartInMs });
      // A sidecar usually ends because QEMU did: look now, before any restart is due.
      this.check();
    });
    this.#supervisor.on('gave-up', (crashes) => context.log.error({ event: 'sidecar-gave-up', vm: id, crashes }, `sidecar crashed ${crashes} times within a minute; the guest's hostinfo port is no longer answered`));
    this.#supervisor.on('started', (pid) => context.log.info({ event: 'sidecar-started', vm: id, sidecarPid: pid, account: this.#account }));
  }

  get pid(): number {
    return this.#pid;
  }

  get served(): boolean {
    return this.#policy.access.served;
  }

  async start(): Promise<void> {
    await this.#policy.reload();
    if (typeof this.#account === 'string') {
      this.#context.log.error({ event: 'sidecar-impossible', vm: this.id, reason: this.#account }, 'this VM cannot be served');
      return;
    }
    this.#supervisor.start();
  }

  reload(): Promise<Access> {
    return this.#policy.reload();
  }

  /** Liveness: the registered process (or the one it daemonized into) still runs. */
  check(): void {
    if (this.#ending !== undefined || sameProcess(this.#pid, this.#startTime)) return;
    if (this.record.pidfile !== undefined && !this.#followedDaemonize && this.#followDaemonized(this.record.pidfile)) return;
    void this.end('QEMU is gone');
  }

  /** Stops serving. `keepDir` when only the daemon stops: the VM runs on and is adopted again. */
  end(reason: string, keepDir = false): Promise<void> {
    this.#ending ??= (async () => {
      this.#context.log.info({ event: 'vm-ended', vm: this.id, qemuPid: this.#pid, reason });
      this.#policy.close();
      await this.#supervisor.stop();
      if (!keepDir) {
        await removeVmDir(this.dir, this.owner, this.#context.daemonUid).catch((error: unknown) => {
          this.#context.log.error({ event: 'cleanup-failed', vm: this.id, err: (error as Error).message });
        });
      }
      this.emit('gone');
    })();
    return this.#ending;
  }

  access(): AccessMessage {
    const access = this.#policy.access;
    const config = this.#context.config();
    return {
      v: 2,
      type: 'access',
      vm: this.#identity(),
      served: access.served,
      items: access.served ? access.policy.items : [],
      limit: access.served ? access.policy.limit : { intervalMs: 1000, burst: 1 },
      file: access.served ? access.policy.file : null,
      reason: access.served ? null : access.reason,
      maxAgeMs: config.cache.maxAgeSeconds * 1000,
      sampleIntervalMs: config.cache.intervalSeconds * 1000,
      guest: config.guest,
    };
  }

  hello(message: HelloMessage): void {
    this.#connected = true;
    // The registered identity (from QEMU's own arguments, or the attach request) is what policies
    // and logs go by; a sidecar reporting otherwise is noted, never believed.
    const mismatch = message.qmp !== null &&
      ((message.qmp.name ?? undefined) !== this.record.name || (this.record.uuid !== undefined && message.qmp.uuid !== this.record.uuid));
    this.#context.log.info({ event: 'sidecar-hello', vm: this.id, qmp: message.qmp, ...(mismatch ? { mismatch: true } : {}) });
  }

  counters(message: CountersMessage): void {
    const { requests, ok, denied, rateLimited, errors, droppedBytes, droppedLines, lastRequestAt } = message;
    this.#counters = { requests, ok, denied, rateLimited, errors, droppedBytes, droppedLines, lastRequestAt };
  }

  closed(): void {
    this.#connected = false;
  }

  status(): VmStatus {
    const access = this.#policy.access;
    return {
      id: this.id,
      vm: this.#identity(),
      registered: { name: this.record.name ?? null, uuid: this.record.uuid ?? null },
      guestDevice: this.record.guestDevice,
      transport: this.record.transport,
      attached: this.record.attached !== undefined,
      vhostmd: this.record.vhostmd === true,
      served: access.served,
      reason: access.served ? null : access.reason,
      file: access.served ? access.policy.file : null,
      limit: access.served ? access.policy.limit : null,
      items: access.served ? access.policy.items : [],
      sidecar: {
        pid: this.#supervisor.pid ?? null,
        uid: typeof this.#account === 'string' ? null : this.#account.kind === 'account' ? this.#account.uid : this.#context.daemonUid,
        restarts: Math.max(0, this.#supervisor.starts - 1),
        connected: this.#connected,
      },
      counters: this.#counters,
    };
  }

  #identity(): AccessMessage['vm'] {
    return {
      name: this.record.name ?? this.record.uuid ?? this.id,
      // VMs without -uuid must not all look like one VM.
      uuid: this.record.uuid ?? `${NIL_UUID}-${this.id}`,
      pid: this.#pid,
    };
  }

  /**
   * With -daemonize the registered process exits once QEMU's child runs; the pidfile names the
   * child, which is only believed if its command line holds this VM's own QMP socket path.
   */
  #followDaemonized(pidfile: string): boolean {
    this.#followedDaemonize = true;
    const text = readSmallFile(pidfile, 32);
    const pid = typeof text === 'string' ? Number(text.trim()) : NaN;
    const startTime = Number.isSafeInteger(pid) && pid > 1 ? processStartTime(pid) : undefined;
    const qmp = join(this.dir, QMP_SOCKET);
    if (startTime === undefined || !processCmdline(pid).some((word) => word.includes(qmp))) {
      this.#context.log.warn({ event: 'daemonize-not-followed', vm: this.id, pidfile });
      return false;
    }
    this.#pid = pid;
    this.#startTime = startTime;
    this.#context.log.info({ event: 'daemonized', vm: this.id, qemuPid: pid });
    this.#context.refresh(this);
    return true;
  }

  #accessChanged(access: Access): void {
    if (access.served) this.#context.log.info({ event: 'policy', vm: this.id, served: true, file: access.policy.file, items: access.policy.items, limit: access.policy.limit });
    else this.#context.log.warn({ event: 'policy', vm: this.id, served: false, reason: access.reason }, 'hostinfo not served to this VM');
    this.#context.refresh(this);
  }

  async #launch(): Promise<import('node:child_process').ChildProcess> {
    const account = this.#account;
    if (typeof account === 'string') throw new Error(account);
    const { child, channel } = await launchSidecar({
      runtimeDir: this.#context.runtimeDir,
      id: this.id,
      reach: this.#reach,
      qemuPid: this.#pid,
      account,
      trustedUids: [...new Set([0, this.#context.daemonUid])],
      alive: () => this.#ending === undefined && (sameProcess(this.#pid, this.#startTime) || (this.record.pidfile !== undefined && !this.#followedDaemonize)),
    });
    this.#context.attach(channel, this);
    return child;
  }
}
