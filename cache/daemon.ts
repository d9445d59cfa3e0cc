// The daemon's moving parts put together: socket directory, exclusive listen, static inventory,
// the sampling tick and the server. main.ts adds only flags, config, logging and signals.

import { HotCounters } from './collectors/hot-counters.js';
import { ProcFiles } from './collectors/proc-reader.js';
import { SILENT_LOG, type Log } from './log.js';
import { HostSampler } from './sampler.js';
import { CacheServer } from './server.js';
import { listenExclusive } from './single-instance.js';
import { prepareSocketDir, socketMode } from './socket-dir.js';
import { type InventorySources, SYSTEM_SOURCES, loadStaticInventory } from './static-inventory.js';
import { Ticker } from './ticker.js';
import { dirname } from 'node:path';

export interface DaemonOptions {
  readonly socketPath: string;
  readonly intervalMs: number;
  /** Group allowed onto the socket; undefined keeps it owner-only. */
  readonly gid: number | undefined;
  /** The socket's directory is hostinfo's runtime directory, whose mode the daemon may set. */
  readonly ownsSocketDir: boolean;
  readonly procRoot?: string;
  readonly inventory?: InventorySources;
  readonly log?: Log;
}

export class CacheDaemon {
  readonly server: CacheServer;
  private readonly options: DaemonOptions;
  private readonly sampler: HostSampler;
  private readonly ticker: Ticker;
  private readonly log: Log;
  private stopping: Promise<void> | undefined;

  private constructor(options: DaemonOptions) {
    this.options = options;
    this.log = options.log ?? SILENT_LOG;
    this.server = new CacheServer({ intervalMs: options.intervalMs, log: this.log });
    this.sampler = new HostSampler({
      hot: new HotCounters(new ProcFiles(options.procRoot)),
      vmCount: () => this.server.registry.vmCount(),
    });
    this.ticker = new Ticker(options.intervalMs, () => this.sampleNow());
  }

  /** Resolves once the socket accepts connections and the first sample is published. */
  static async start(options: DaemonOptions): Promise<CacheDaemon> {
    const daemon = new CacheDaemon(options);
    const access = { gid: options.gid };
    prepareSocketDir(dirname(options.socketPath), access, options.ownsSocketDir);
    // systeminformation takes a few hundred ms; that overlaps with taking the socket.
    const inventory = loadStaticInventory(options.inventory ?? SYSTEM_SOURCES);
    await listenExclusive(daemon.server.http, options.socketPath, { mode: socketMode(access), gid: options.gid, log: daemon.log });
    daemon.log.info({ event: 'listening', socket: options.socketPath, intervalMs: options.intervalMs }, 'accepting sidecars');
    daemon.sampler.setInventory(await inventory);
    daemon.sampleNow();
    daemon.ticker.start();
    return daemon;
  }

  /** SIGHUP: CPU hotplug, a hostname change or a kernel live-patch show up without a restart. */
  async reloadInventory(): Promise<void> {
    const inventory = await loadStaticInventory(this.options.inventory ?? SYSTEM_SOURCES);
    this.sampler.setInventory(inventory);
    this.log.info({ event: 'inventory', ...inventory }, 'static inventory reloaded');
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.ticker.stop();
      await this.server.close();
      this.log.info({ event: 'stopped', socket: this.options.socketPath });
    })();
    return this.stopping;
  }

  private sampleNow(): void {
    try {
      this.server.publish(this.sampler.sample());
    } catch (error) {
      // A collector bug must not kill the daemon; the sidecars see the data age and answer 503.
      this.log.error({ event: 'sample-failed', err: (error as Error).message });
    }
  }
}
