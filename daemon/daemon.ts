// hostinfod's moving parts put together: the runtime tree, the exclusive control socket, the
// static inventory, the sampling tick, the sidecar fan-out and the registered VMs. main.ts adds
// only flags, config loading, logging and signals.

import { join } from 'node:path';
import { CONTROL_SOCKET, prepareRuntimeTree } from '../common/runtime-tree.js';
import type { HostConfig } from '../policies/host-config.js';
import { HotCounters } from './collectors/hot-counters.js';
import { ProcFiles } from './collectors/proc-reader.js';
import { SILENT_LOG, type Log } from './log.js';
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
  #config: HostConfig;
  #stopping: Promise<void> | undefined;

  private constructor(options: DaemonOptions) {
    this.#options = options;
    this.#config = options.config;
    this.#log = options.log ?? SILENT_LOG;
    this.socketPath = join(options.config.runtimeDir, CONTROL_SOCKET);
    this.server = new DaemonServer({ intervalMs: options.intervalMs, status: () => this.status(), log: this.#log });
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
  }

  /** Resolves once the control socket accepts connections, the first sample is out and vms/ is read. */
  static async start(options: DaemonOptions): Promise<HostDaemon> {
    const daemon = new HostDaemon(options);
    prepareRuntimeTree(options.config.runtimeDir, { gid: options.gid });
    // systeminformation takes a few hundred ms; that overlaps with taking the socket.
    const inventory = loadStaticInventory(options.inventory ?? SYSTEM_SOURCES);
    await listenExclusive(daemon.server.control, daemon.socketPath, { mode: 0o600, gid: undefined, log: daemon.#log });
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
      pid: process.pid,
      startedAt: this.#startedAt,
      intervalMs: this.#options.intervalMs,
      seq: latest?.seq ?? null,
      takenAt: latest?.snapshot.takenAt ?? null,
      vmcount: this.fleet.servedCount(),
      vms: this.fleet.status(),
    };
  }

  /** SIGHUP: the host config, every VM's policy and the static inventory, read again. */
  async reload(): Promise<void> {
    await this.#loadConfig();
    await this.fleet.reload();
    const inventory = await loadStaticInventory(this.#options.inventory ?? SYSTEM_SOURCES);
    this.#sampler.setInventory(inventory);
    this.#log.info({ event: 'reloaded', ...inventory }, 'config, policies and static inventory reloaded');
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
      this.server.publish(this.#sampler.sample());
    } catch (error) {
      // A collector bug must not kill the daemon; the sidecars see the data age and answer 503.
      this.#log.error({ event: 'sample-failed', err: (error as Error).message });
    }
  }
}
