// One VM's sidecar, wired together: QMP for the VM's identity and lifetime, the policy source for
// its access decision, the cache client for host samples, the guest port for bytes. The request
// path itself is handleGuestFrame; this file only keeps its inputs current.

import type { VmCounters } from '../cache/messages.js';
import { CacheClient } from '../cache/client.js';
import type { Access } from '../policies/access.js';
import type { HostConfig } from '../policies/host-config.js';
import { FRESH_LIMITER, rebaseLimiter, type LimiterState } from '../policies/rate-limiter.js';
import { AuditLog, type AuditRecord } from './audit-log.js';
import { countRequest, ZERO_COUNTERS } from './counters.js';
import { GuestPort } from './guest-port.js';
import { PolicySource } from './policy-source.js';
import type { GuestFrame } from './protocol/line-decoder.js';
import { QmpClient, QmpConnectError, NIL_UUID, qemuPidFromSocket, queryCpusFast, queryName, queryUuid, queryVersion, type QmpEvent } from './qmp/index.js';
import { handleGuestFrame, type VmFacts } from './request-handler.js';
import { delayPercent, readRunDelays, type DelayReading } from './vcpu-delay.js';
import { HOSTINFO_VERSION } from './version.js';

/** Counters go to the cache registry at most this often, however fast the guest asks. */
export const COUNTER_REPORT_MS = 1_000;
export const QMP_CONNECT_TIMEOUT_MS = 10_000;
export const CACHE_RECONNECT = { minMs: 100, maxMs: 1_000 } as const;
const QMP_RETRY_MS = 50;

export interface SidecarLog {
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

export interface SidecarOptions {
  readonly qmpPath: string;
  readonly guestPath: string;
  /** Undefined: <runtime_dir>/cache.sock of the config loaded at start. */
  readonly cachePath: string | undefined;
  readonly qemuPid: number | undefined;
  readonly loadConfig: () => Promise<HostConfig>;
  readonly log: SidecarLog;
  /** Wall clock, epoch ms. */
  readonly now?: () => number;
}

export interface VmIdentityFacts {
  readonly name: string | undefined;
  readonly uuid: string | undefined;
  readonly pid: number | undefined;
  readonly hypervisor: string;
  readonly vcpuThreads: readonly number[];
}

export class Sidecar {
  readonly #options: SidecarOptions;
  readonly #now: () => number;
  readonly #qmp = new QmpClient();
  #config: HostConfig | undefined;
  #identity: VmIdentityFacts | undefined;
  #policy: PolicySource | undefined;
  #cache: CacheClient | undefined;
  #guest: GuestPort | undefined;
  #limiter: LimiterState = FRESH_LIMITER;
  #vm: VmFacts = { hypervisor: undefined, vcpuDelay: undefined };
  #counters: VmCounters = ZERO_COUNTERS;
  #countersDirty = false;
  #timers: NodeJS.Timeout[] = [];
  #audit: AuditLog;
  #stopping: Promise<void> | undefined;
  readonly #stopped: Promise<string>;
  #resolveStopped: (reason: string) => void = () => {};

  constructor(options: SidecarOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#audit = new AuditLog((record: AuditRecord) => options.log.info({ event: 'request', ...record }));
    this.#stopped = new Promise((resolve) => { this.#resolveStopped = resolve; });
  }

  get identity(): VmIdentityFacts | undefined {
    return this.#identity;
  }

  /** Resolves with the reason once the sidecar has stopped (QEMU gone, or stop() called). */
  get stopped(): Promise<string> {
    return this.#stopped;
  }

  async start(): Promise<void> {
    const log = this.#options.log;
    this.#config = await this.#options.loadConfig();
    await this.#connectQmp();
    this.#qmp.on('event', (event) => this.#onQmpEvent(event));
    this.#qmp.on('disconnected', (reason) => void this.stop(`QMP connection closed: ${reason.message}`));
    this.#identity = await this.#learnIdentity();
    this.#vm = { ...this.#vm, hypervisor: this.#identity.hypervisor };
    log.info({ event: 'identity', vm: this.#identity }, 'VM identified over QMP');

    const { name, uuid } = this.#identity;
    this.#policy = new PolicySource({ name, uuid }, async () => (this.#config = await this.#options.loadConfig()));
    this.#policy.on('change', (access) => this.#onAccessChange(access));
    this.#policy.on('unwatched', (reason) => log.warn({ event: 'policy-unwatched', reason }, 'policy directory not watched; SIGHUP reloads'));
    await this.#policy.reload();

    const cachePath = this.#options.cachePath ?? `${this.#config.runtimeDir}/cache.sock`;
    const pid = this.#identity.pid ?? process.pid;
    this.#cache = new CacheClient({
      socketPath: cachePath,
      // The registry counts VMs by uuid: VMs started without -uuid must not all count as one.
      vm: { name: name ?? uuid ?? `vm-${pid}`, uuid: uuid ?? `${NIL_UUID}-${pid}`, pid },
      items: this.#allowedItems(),
      // A retry on a local unix socket costs nothing: cap the backoff so data returns within
      // about a second of a restarted cache listening.
      reconnect: CACHE_RECONNECT,
    });
    this.#cache.on('disconnected', (info) => log.warn({ event: 'cache-disconnected', ...info }, 'hostinfo-cache connection lost; data items answer 503 until it is back'));
    this.#cache.on('subscribed', (items) => log.info({ event: 'cache-subscribed', items }));
    let awaitingData = true;
    this.#cache.on('open', () => { awaitingData = true; });
    this.#cache.on('sample', (sample) => {
      if (!awaitingData) return;
      awaitingData = false;
      log.info({ event: 'cache-data', seq: sample.seq, items: Object.keys(sample.snapshot.values) }, 'host samples arriving');
    });
    this.#cache.on('refused', (error) => log.error({ event: 'cache-refused', ...error }));
    this.#cache.connect();

    this.#guest = new GuestPort(this.#options.guestPath, (frame) => this.#answer(frame));
    this.#guest.on('connected', () => log.info({ event: 'guest-connected' }));
    this.#guest.on('disconnected', (reason) => log.warn({ event: 'guest-disconnected', reason }));
    this.#guest.start();

    this.#every(COUNTER_REPORT_MS, () => this.#reportCounters());
    if (this.#identity.pid !== undefined && this.#identity.vcpuThreads.length > 0) {
      this.#startDelayMeter(this.#identity.pid, this.#identity.vcpuThreads);
    } else {
      log.warn({ event: 'vcpudelay-unavailable' }, 'QEMU pid or vCPU threads unknown: vcpudelay answers 503');
    }
  }

  /** Re-reads host config and policy now (SIGHUP). */
  reload(): Promise<Access> | undefined {
    return this.#policy?.reload();
  }

  stop(reason: string): Promise<void> {
    this.#stopping ??= (async () => {
      this.#options.log.info({ event: 'stopping', reason });
      for (const timer of this.#timers) clearInterval(timer);
      this.#guest?.close();
      this.#policy?.close();
      this.#reportCounters();
      this.#audit.flush((suppressed) => this.#options.log.info({ event: 'requests-not-logged', vm: this.#identity?.name ?? '-', suppressed }));
      await this.#cache?.close();
      await this.#qmp.close();
      this.#resolveStopped(reason);
    })();
    return this.#stopping;
  }

  /**
   * QEMU creates its QMP socket a moment after it starts; a sidecar started alongside it retries
   * until the socket answers, within QMP_CONNECT_TIMEOUT_MS.
   */
  async #connectQmp(): Promise<void> {
    const deadline = Date.now() + QMP_CONNECT_TIMEOUT_MS;
    for (;;) {
      try {
        await this.#qmp.connect(this.#options.qmpPath, { timeoutMs: Math.max(1, deadline - Date.now()) });
        return;
      } catch (error) {
        if (!(error instanceof QmpConnectError) || Date.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, QMP_RETRY_MS));
      }
    }
  }

  async #learnIdentity(): Promise<VmIdentityFacts> {
    const [name, uuid, hypervisor, cpus] = await Promise.all([
      queryName(this.#qmp), queryUuid(this.#qmp), queryVersion(this.#qmp), queryCpusFast(this.#qmp),
    ]);
    const vcpuThreads = cpus.map((cpu) => cpu.threadId);
    const pid = this.#options.qemuPid ?? await qemuPidFromSocket(this.#options.qmpPath, { threadIds: vcpuThreads }).catch(() => undefined);
    return { name, uuid, pid, hypervisor, vcpuThreads };
  }

  #answer(frame: GuestFrame): string | undefined {
    const config = this.#config;
    const access = this.#policy?.access;
    if (config === undefined || access === undefined) return undefined;
    const now = this.#now();
    const outcome = handleGuestFrame({
      access,
      limiter: this.#limiter,
      snapshot: this.#cache?.latest?.snapshot,
      vm: this.#vm,
      maxAgeMs: config.cache.maxAgeSeconds * 1000,
      now,
      version: HOSTINFO_VERSION,
    }, frame);
    this.#limiter = outcome.limiter;
    if (outcome.audit !== undefined) {
      this.#counters = countRequest(this.#counters, outcome.audit.status, now);
      this.#countersDirty = true;
      this.#audit.record(this.#identity?.name ?? '-', outcome.audit.command, outcome.audit.status, now);
    }
    return outcome.reply;
  }

  #allowedItems(): readonly string[] {
    const access = this.#policy?.access;
    return access?.served === true ? access.policy.items : [];
  }

  #onAccessChange(access: Access): void {
    if (access.served) {
      this.#limiter = rebaseLimiter(access.policy.limit, this.#limiter, this.#now());
      this.#options.log.info({ event: 'policy', served: true, file: access.policy.file, items: access.policy.items, limit: access.policy.limit });
    } else {
      this.#options.log.warn({ event: 'policy', served: false, reason: access.reason }, 'hostinfo not served to this VM');
    }
    // Least privilege: the cache only ever sends what the current policy allows.
    this.#cache?.subscribe(this.#allowedItems());
  }

  #onQmpEvent(event: QmpEvent): void {
    if (event.event === 'SHUTDOWN') void this.stop('QEMU shut down');
    else if (event.event === 'STOP' || event.event === 'RESUME') this.#options.log.info({ event: 'vm-run-state', qmp: event.event });
  }

  #reportCounters(): void {
    if (!this.#countersDirty) return;
    this.#countersDirty = false;
    this.#cache?.reportCounters(this.#counters);
  }

  #startDelayMeter(pid: number, threads: readonly number[]): void {
    let previous: DelayReading | undefined;
    const measure = async (): Promise<void> => {
      const reading = await readRunDelays(pid, threads);
      const percent = previous === undefined ? undefined : delayPercent(previous, reading);
      previous = reading;
      if (percent !== undefined) this.#vm = { ...this.#vm, vcpuDelay: { percent, measuredAt: this.#now() } };
    };
    void measure();
    this.#every((this.#config?.cache.intervalSeconds ?? 1) * 1000, () => void measure());
  }

  #every(ms: number, run: () => void): void {
    this.#timers.push(setInterval(run, ms));
  }
}
