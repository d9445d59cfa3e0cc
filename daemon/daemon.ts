// hostinfod's moving parts put together: the runtime tree, the exclusive control socket, the
// static inventory, the sampling tick, the sidecar fan-out and the registered VMs. main.ts adds
// only flags, config loading, logging and signals.

import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CONTROL_SOCKET, controlSocketMode, prepareRuntimeTree } from '../common/runtime-tree.js';
import { HOSTINFO_VERSION } from '../common/version.js';
import type { HostConfig } from '../policies/host-config.js';
import { attachVm } from './attach.js';
import { HotCounters } from './collectors/hot-counters.js';
import type { ControlReply, ControlRequest, ReloadChange } from './control-messages.js';
import { ProcFiles } from './collectors/proc-reader.js';
import { SILENT_LOG, type Log } from './log.js';
import { renderMetrics } from './metrics/prometheus-text.js';
import { TextfileWriter } from './metrics/textfile-writer.js';
import type { StatusReply } from './messages.js';
import { HostSampler } from './sampler.js';
import { DaemonServer } from './server.js';
import { listenExclusive } from './single-instance.js';
import { type InventorySources, SYSTEM_SOURCES, loadStaticInventory } from './static-inventory.js';
import { Ticker } from './ticker.js';
import { VmFleet } from './vm-fleet.js';

export interface DaemonOptions {
  readonly config: HostConfig;
  /** Re-reads hostinfo.toml (SIGHUP, policy changes); a failure keeps the previous config. */
  readonly loadConfig: () => Promise<HostConfig>;
  /** Group allowed into the runtime directory (to register VMs); undefined: owner only. */
  readonly gid: number | undefined;
  /** admin_group's gid: may use the control socket (0660); undefined: the daemon's user only. */
  readonly adminGid?: number | undefined;
  readonly intervalMs: number;
  readonly procRoot?: string;
  readonly inventory?: InventorySources;
  readonly log?: Log;
}

export class HostDaemon {
  readonly server: DaemonServer;
  readonly fleet: VmFleet;
  readonly socketPath: string;
  readonly #options: DaemonOptions;
  readonly #sampler: HostSampler;
  readonly #ticker: Ticker;
  readonly #log: Log;
  readonly #startedAt = Date.now();
  readonly #metrics: TextfileWriter;
  #sampleDurationMs: number | null = null;
  #config: HostConfig;
  #stopping: Promise<void> | undefined;

  private constructor(options: DaemonOptions) {
    this.#options = options;
    this.#config = options.config;
    this.#log = options.log ?? SILENT_LOG;
    this.socketPath = join(options.config.runtimeDir, CONTROL_SOCKET);
    this.server = new DaemonServer({ intervalMs: options.intervalMs, control: (request) => this.control(request), log: this.#log });
    this.fleet = new VmFleet({
      runtimeDir: options.config.runtimeDir,
      log: this.#log,
      config: () => this.#config,
      loadConfig: () => this.#loadConfig(),
      attach: (channel, link) => this.server.attachSidecar(channel, link),
      refresh: (link) => this.server.refreshAccess(link),
    });
    this.#sampler = new HostSampler({ hot: new HotCounters(new ProcFiles(options.procRoot)), vmCount: () => this.fleet.servedCount() });
    this.#ticker = new Ticker(options.intervalMs, () => this.#sampleNow());
    this.#metrics = new TextfileWriter({ log: this.#log });
  }

  /** Resolves once the control socket accepts connections, the first sample is out and vms/ is read. */
  static async start(options: DaemonOptions): Promise<HostDaemon> {
    const daemon = new HostDaemon(options);
    const access = { gid: options.gid, adminGid: options.adminGid };
    prepareRuntimeTree(options.config.runtimeDir, access);
    // systeminformation takes a few hundred ms; that overlaps with taking the socket.
    const inventory = loadStaticInventory(options.inventory ?? SYSTEM_SOURCES);
    await listenExclusive(daemon.server.control, daemon.socketPath, { mode: controlSocketMode(access), gid: options.adminGid, log: daemon.#log });
    daemon.#log.info({ event: 'listening', socket: daemon.socketPath, intervalMs: options.intervalMs }, 'hostinfod serving');
    daemon.#sampler.setInventory(await inventory);
    daemon.#sampleNow();
    daemon.#ticker.start();
    daemon.fleet.start();
    return daemon;
  }

  get config(): HostConfig {
    return this.#config;
  }

  status(): StatusReply {
    const latest = this.server.latest;
    return {
      v: 2,
      type: 'status',
      version: HOSTINFO_VERSION,
      pid: process.pid,
      startedAt: this.#startedAt,
      intervalMs: this.#options.intervalMs,
      seq: latest?.seq ?? null,
      takenAt: latest?.snapshot.takenAt ?? null,
      sampleDurationMs: this.#sampleDurationMs,
      vmcount: this.fleet.servedCount(),
      vms: this.fleet.status(),
    };
  }

  /** One control-socket request (hostinfo-ctl). */
  async control(request: ControlRequest): Promise<ControlReply> {
    switch (request.type) {
      case 'status':
        return this.status();
      case 'reload':
        return { v: request.v, type: 'reloaded', config: this.#config.file ?? null, vms: await this.reload() };
      case 'attach': {
        const attached = attachVm(request.vm, {
          runtimeDir: this.#config.runtimeDir,
          daemonUid: this.fleet.daemonUid,
          keeperOfPid: (pid) => this.fleet.keeperOfPid(pid),
          scan: () => this.fleet.scan(),
        });
        this.#log.info({ event: 'attached', vm: attached.id, already: attached.already, qemuPid: request.vm.pid, guestSocket: request.vm.guestSocket, qmp: request.vm.qmpSocket ?? null });
        return { v: request.v, type: 'attached', ...attached };
      }
      case 'detach':
        return { v: request.v, type: 'detached', id: await this.fleet.detach(request.vm) };
      case 'query': {
        const keeper = this.fleet.find(request.vm);
        const reply = await this.server.query(keeper, request.line);
        this.#log.info({ event: 'query', vm: keeper.id, line: request.line, reply });
        return { v: request.v, type: 'queried', id: keeper.id, reply };
      }
    }
  }

  /** SIGHUP: the host config, every VM's policy and the static inventory, read again; what changed per VM. */
  async reload(): Promise<ReloadChange[]> {
    await this.#loadConfig();
    const changes = await this.fleet.reload();
    const inventory = await loadStaticInventory(this.#options.inventory ?? SYSTEM_SOURCES);
    this.#sampler.setInventory(inventory);
    this.#log.info({ event: 'reloaded', ...inventory, changed: changes.filter((change) => JSON.stringify(change.before) !== JSON.stringify(change.after)).map((change) => change.id) }, 'config, policies and static inventory reloaded');
    return changes;
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#ticker.stop();
      await this.fleet.stop();
      await this.server.close();
      this.#log.info({ event: 'stopped', socket: this.socketPath });
    })();
    return this.#stopping;
  }

  async #loadConfig(): Promise<HostConfig> {
    try {
      this.#config = await this.#options.loadConfig();
    } catch (error) {
      this.#log.error({ event: 'config-invalid', err: (error as Error).message }, 'keeping the previous host config');
      throw error;
    }
    return this.#config;
  }

  #sampleNow(): void {
    try {
      const started = performance.now();
      const snapshot = this.#sampler.sample();
      this.#sampleDurationMs = performance.now() - started;
      this.server.publish(snapshot);
    } catch (error) {
      // A collector bug must not kill the daemon; the sidecars see the data age and answer 503.
      this.#log.error({ event: 'sample-failed', err: (error as Error).message });
    }
    // Written after a failed sample too: the growing sample age is how a scrape learns of it.
    const textfile = this.#config.metrics.textfile;
    if (textfile !== undefined) void this.#metrics.write(textfile, () => renderMetrics(this.status(), Date.now()));
  }
}
