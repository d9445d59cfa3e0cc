// One VM's sidecar, wired together: QMP for the VM's lifetime and facts, the daemon channel for
// its access decision and host samples, the guest port for bytes (and a second one for vhostmd's
// protocol when the VM has that port). The request paths themselves are handleGuestFrame and
// handleVhostmdRequest; this file only keeps their inputs current. Nothing here reads a file: the
// daemon decides, the sidecar applies.

import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { AccessMessage, VmCounters } from '../daemon/messages.js';
import type { BackoffPolicy } from '../common/backoff.js';
import { HOSTINFO_VERSION } from '../common/version.js';
import type { Access } from '../policies/access.js';
import { FRESH_LIMITER, rebaseLimiter, type LimiterState } from '../policies/rate-limiter.js';
import { AuditLog, type AuditRecord } from './audit-log.js';
import { countRequest, ZERO_COUNTERS } from './counters.js';
import { accessOf, type DaemonChannel } from './daemon-channel.js';
import { GuestPort } from './guest-port.js';
import type { GuestFrame } from './protocol/line-decoder.js';
import { isVmUuid, QmpClient, type QmpConnectedSocket, type QmpEvent } from './qmp/index.js';
import { handleGuestFrame, type HeldSample, type RequestContext, type VmFacts } from './request-handler.js';
import { vmMeters } from './vm-meters.js';
import { connectQmp, identityOverQmp, identityWithoutQmp, type VmIdentityFacts } from './vm-identity.js';
import { handleVhostmdRequest, type CachedDocument } from './vhostmd/handler.js';
import { vhostmdPortChanged, vhostmdPortIds } from './vhostmd/port-ids.js';
import { VhostmdRequestDecoder, type VhostmdRequest } from './vhostmd/request-decoder.js';
import type { Status } from './protocol/reply.js';

/** Counters go to the daemon at most this often, however fast the guest asks. */
export const COUNTER_REPORT_MS = 1_000;
/** The daemon sends its decision as soon as the channel opens; without one nothing is served. */
export const ACCESS_TIMEOUT_MS = 10_000;

export interface SidecarLog {
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

/**
 * The sidecar's two clocks. `monotonic` (ms, performance.now) drives the rate limiter, the audit
 * limiter and every age (host sample, vCPU measurement): a wall-clock step must not change any
 * of them. It must be the clock the DaemonChannel stamps samples with (both default to
 * performance.now). `wall` (epoch ms, Date.now) is only for what people and guests read as a
 * time: hosttime and the counters' lastRequestAt.
 */
export interface SidecarClock {
  monotonic(): number;
  wall(): number;
}

export const SYSTEM_CLOCK: SidecarClock = {
  monotonic: () => performance.now(),
  wall: () => Date.now(),
};

export interface GuestReach {
  readonly connect: () => Socket;
  readonly reconnect: BackoffPolicy | false;
}

export interface SidecarOptions {
  readonly channel: DaemonChannel;
  /**
   * A QMP socket path to connect to (retried until QEMU listens), or one already connected;
   * undefined for an attached VM without a QMP socket to spare: its identity comes from the
   * daemon, its vCPU threads from their names, and QEMU's end is seen by the daemon.
   */
  readonly qmp: string | QmpConnectedSocket | undefined;
  readonly guest: GuestReach;
  /** The vhostmd port's chardev; undefined: the VM has none. */
  readonly vhostmd?: GuestReach | undefined;
  readonly qemuPid: number | undefined;
  readonly log: SidecarLog;
  /** Default SYSTEM_CLOCK; tests step the wall clock to show nothing but hosttime follows it. */
  readonly clock?: SidecarClock;
}

export interface Stopped {
  readonly reason: string;
  readonly status: 0 | 1;
}

export class Sidecar {
  readonly #options: SidecarOptions;
  readonly #clock: SidecarClock;
  readonly #qmp = new QmpClient();
  #identity: VmIdentityFacts | undefined;
  #guest: GuestPort | undefined;
  #vhostmd: GuestPort<VhostmdRequest> | undefined;
  /** The last document the vhostmd port was sent: what a rate-limited request gets at once. */
  #vhostmdLast: CachedDocument | undefined;
  /** Device ids of the vhostmd port, for QMP's VSERPORT_CHANGE. */
  #vhostmdPortIds: readonly string[] = [];
  #access: Access = { served: false, reason: 'no decision from hostinfod yet' };
  #limiter: LimiterState = FRESH_LIMITER;
  #vm: VmFacts = { hypervisor: undefined, vcpuDelay: undefined };
  #counters: VmCounters = ZERO_COUNTERS;
  #countersDirty = false;
  #timers: NodeJS.Timeout[] = [];
  #audit: AuditLog;
  #stopping: Promise<void> | undefined;
  readonly #stopped: Promise<Stopped>;
  #resolveStopped: (stopped: Stopped) => void = () => {};

  constructor(options: SidecarOptions) {
    this.#options = options;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    // The QEMU pid tells the two QEMUs of one VM apart while it live-migrates on one host.
    this.#audit = new AuditLog((record: AuditRecord) => options.log.info({ event: 'request', ...record, qemu: options.channel.access?.vm.pid ?? options.qemuPid }));
    this.#stopped = new Promise((resolve) => { this.#resolveStopped = resolve; });
  }

  get identity(): VmIdentityFacts | undefined {
    return this.#identity;
  }

  /** Resolves once the sidecar has stopped (QEMU gone, channel closed, or stop()). */
  get stopped(): Promise<Stopped> {
    return this.#stopped;
  }

  async start(): Promise<void> {
    const { channel, log } = this.#options;
    channel.on('access', (message) => this.#onAccess(message));
    channel.on('query', (id, line) => channel.answerQuery(id, this.#query(line)));
    // Without its channel a sidecar has nothing to serve: exit non-zero, so that a daemon that
    // still wants this VM served starts a new one, and one that is stopping does not.
    channel.on('closed', (code, reason) => void this.stop(`channel to hostinfod closed (${code} ${reason})`, 1));
    channel.on('refused', (error) => log.error({ event: 'daemon-refused', ...error }));
    channel.on('invalid', (reason) => log.error({ event: 'daemon-invalid', reason }));
    // The first sample after start and after each decision is logged: "host data is arriving".
    let awaitingData = true;
    channel.on('access', () => { awaitingData = true; });
    channel.on('sample', (sample) => {
      if (!awaitingData) return;
      awaitingData = false;
      log.info({ event: 'host-data', seq: sample.seq, items: Object.keys(sample.snapshot.values) }, 'host samples arriving');
    });
    const decided = this.#firstAccess();
    // stop() may run during any await below (a signal, QEMU gone, the channel closed): after
    // each one nothing more is created, and what stop() itself cut short is not a start failure.
    try {
      this.#identity = await this.#identifyOverQmp();
    } catch (error) {
      if (this.#stopping !== undefined) return;
      throw error;
    }
    if (this.#stopping !== undefined) return;
    if (this.#identity === undefined) channel.hello(null);
    else channel.hello({ name: this.#identity.name ?? null, uuid: this.#identity.uuid ?? null, version: this.#identity.hypervisor ?? 'unknown' });
    // No guest byte is read before the daemon's decision: a request would get no reply at all,
    // and the decision carries the guest's flood budget.
    const access = await decided;
    if (access === undefined || this.#stopping !== undefined) return;
    this.#identity ??= await identityWithoutQmp(access);
    if (this.#stopping !== undefined) return;
    const { name, uuid, hypervisor, vcpuThreads } = this.#identity;
    // Without QMP the name and UUID are hostinfod's record, whose stand-in for "no UUID" is not one.
    this.#vm = { ...this.#vm, hypervisor, name, uuid: isVmUuid(uuid) ? uuid : undefined, vcpus: vcpuThreads.length > 0 ? vcpuThreads.length : undefined };
    log.info({ event: 'identity', vm: this.#identity, source: this.#options.qmp === undefined ? 'hostinfod and thread names' : 'QMP' });

    this.#guest = new GuestPort({ ...this.#options.guest, respond: (frame) => this.#answer(frame), budget: access.guest });
    this.#guest.on('connected', () => log.info({ event: 'guest-connected' }));
    this.#guest.on('disconnected', (reason) => log.warn({ event: 'guest-disconnected', reason }));
    // An inherited chardev connection cannot be reopened here; the daemon's restart reconnects it.
    this.#guest.on('ended', () => void this.stop('guest chardev connection closed', 1));
    this.#guest.on('throttled', (dropped, pausedMs) => this.#onThrottled(dropped, pausedMs));
    this.#guest.start();
    await this.#startVhostmd(access);
    if (this.#stopping !== undefined) return;
    this.#every(COUNTER_REPORT_MS, () => this.#reportCounters());
    this.#startVmMeters();
  }

  /** `status` 0: nothing to restart (QEMU is gone, or asked to stop); 1: restart me. */
  stop(reason: string, status: 0 | 1 = 0): Promise<void> {
    this.#stopping ??= (async () => {
      this.#options.log.info({ event: 'stopping', reason });
      for (const timer of this.#timers) clearInterval(timer);
      this.#guest?.close();
      this.#vhostmd?.close();
      this.#reportCounters();
      this.#audit.flush((suppressed) => this.#options.log.info({ event: 'requests-not-logged', vm: this.#vmName(), suppressed }));
      await this.#options.channel.close();
      await this.#qmp.close();
      this.#resolveStopped({ reason, status });
    })();
    return this.#stopping;
  }

  /** The daemon's first decision; undefined if the sidecar stops first; rejects if none comes in time. */
  #firstAccess(): Promise<AccessMessage | undefined> {
    const decided = this.#options.channel.firstAccess(ACCESS_TIMEOUT_MS, this.#stopped);
    // Awaited only after QMP: a rejection meanwhile must not count as unhandled.
    decided.catch(() => {});
    return decided;
  }

  /** Undefined without a QMP socket, or when stop() ran meanwhile. */
  async #identifyOverQmp(): Promise<VmIdentityFacts | undefined> {
    if (this.#options.qmp === undefined || !(await connectQmp(this.#qmp, this.#options.qmp, () => this.#stopping !== undefined))) return undefined;
    this.#qmp.on('event', (event) => this.#onQmpEvent(event));
    this.#qmp.on('disconnected', (reason) => void this.stop(`QMP connection closed: ${reason.message}`));
    return identityOverQmp(this.#qmp);
  }

  #vmName(): string {
    return this.#options.channel.access?.vm.name ?? '-';
  }

  #answer(frame: GuestFrame): string | undefined {
    const access = this.#options.channel.access;
    if (access === undefined) return undefined;
    const context = this.#requestContext(access);
    const { now, wallNow } = context;
    const outcome = handleGuestFrame(context, frame);
    this.#limiter = outcome.limiter;
    if (outcome.audit !== undefined) this.#account(access, outcome.audit, now, wallNow);
    return outcome.reply;
  }

  /** Counters and the audit line of one guest request, whichever port it came on. */
  #account(access: AccessMessage, audit: { readonly command: string; readonly status: Status }, now: number, wallNow: number): void {
    // lastRequestAt is read by people (hostinfod status): epoch ms.
    this.#counters = countRequest(this.#counters, audit.status, wallNow);
    this.#countersDirty = true;
    this.#audit.record(access.vm.name, audit.command, audit.status, now);
  }

  /**
   * The vhostmd port, started once the first decision is in. Its guest shares the line port's
   * token bucket (#limiter) and has a flood budget of its own. The port's device ids are looked
   * up over QMP first, so that the guest reopening it drops what was left unfinished.
   */
  async #startVhostmd(access: AccessMessage): Promise<void> {
    const reach = this.#options.vhostmd;
    if (reach === undefined) return;
    const { log } = this.#options;
    if (this.#options.qmp !== undefined) {
      this.#vhostmdPortIds = await vhostmdPortIds(this.#qmp).catch((error: unknown) => {
        log.warn({ event: 'vhostmd-port-unknown', error: String(error) }, 'partial vhostmd requests are not dropped when the guest closes the port');
        return [];
      });
    }
    if (this.#stopping !== undefined) return;
    const port = new GuestPort<VhostmdRequest>({ ...reach, decoder: () => new VhostmdRequestDecoder(), respond: (request) => this.#answerVhostmd(request), budget: access.guest });
    port.on('connected', () => log.info({ event: 'guest-connected', port: 'vhostmd', portIds: this.#vhostmdPortIds }));
    port.on('disconnected', (reason) => log.warn({ event: 'guest-disconnected', port: 'vhostmd', reason }));
    port.on('ended', () => void this.stop('vhostmd chardev connection closed', 1));
    port.on('throttled', (dropped, pausedMs) => this.#onThrottled(dropped, pausedMs));
    this.#vhostmd = port;
    port.start();
  }

  /** Always a reply: a vhostmd guest reads a late one as the answer to its next request. */
  #answerVhostmd(request: VhostmdRequest): string {
    // Set before the port started (start() waits for the first decision), and never unset.
    const access = this.#options.channel.access as AccessMessage;
    const context = { ...this.#requestContext(access), lastReply: this.#vhostmdLast };
    const outcome = handleVhostmdRequest(context, request);
    this.#limiter = outcome.limiter;
    this.#vhostmdLast = outcome.lastReply;
    this.#account(access, outcome.audit, context.now, context.wallNow);
    return outcome.reply;
  }

  #requestContext(access: AccessMessage): RequestContext {
    return {
      access: this.#access,
      limiter: this.#limiter,
      sample: this.#heldSample(),
      vm: this.#vm,
      maxAgeMs: access.maxAgeMs,
      now: this.#clock.monotonic(),
      wallNow: this.#clock.wall(),
      version: HOSTINFO_VERSION,
    };
  }

  /**
   * hostinfo-ctl query: what the guest would be answered to `line` now. The limiter is asked but
   * keeps its tokens, and the guest's counters are untouched; the audit line says it was a query.
   */
  #query(line: string): string {
    const access = this.#options.channel.access;
    if (access === undefined) return '';
    const outcome = handleGuestFrame(this.#requestContext(access), { kind: 'line', bytes: Buffer.from(line, 'latin1'), maybeTail: false });
    if (outcome.audit !== undefined) this.#options.log.info({ event: 'request', query: true, vm: access.vm.name, command: outcome.audit.command, status: outcome.audit.status });
    return (outcome.reply ?? '').replace(/\n$/, '');
  }

  /** The newest sample, aged from its arrival here (never from the daemon's takenAt). */
  #heldSample(): HeldSample | undefined {
    const { latest, latestReceivedAt } = this.#options.channel;
    return latest === undefined || latestReceivedAt === undefined ? undefined : { values: latest.snapshot.values, receivedAt: latestReceivedAt };
  }

  #onAccess(message: AccessMessage): void {
    this.#access = accessOf(message);
    this.#guest?.setBudget(message.guest);
    this.#vhostmd?.setBudget(message.guest);
    if (this.#access.served) {
      this.#limiter = rebaseLimiter(this.#access.policy.limit, this.#limiter, this.#clock.monotonic());
      this.#options.log.info({ event: 'policy', served: true, file: message.file, items: message.items, limit: message.limit });
    } else {
      this.#options.log.warn({ event: 'policy', served: false, reason: message.reason }, 'hostinfo not served to this VM');
    }
  }

  #onThrottled(dropped: { readonly bytes: number; readonly lines: number }, pausedMs: number): void {
    this.#counters = { ...this.#counters, droppedBytes: this.#counters.droppedBytes + dropped.bytes, droppedLines: this.#counters.droppedLines + dropped.lines };
    this.#countersDirty = true;
    // Once per throttled second at most: the flood itself is what must not reach the log.
    this.#options.log.warn({ event: 'guest-throttled', vm: this.#vmName(), droppedBytes: dropped.bytes, droppedLines: dropped.lines, pausedMs });
  }

  #onQmpEvent(event: QmpEvent): void {
    if (event.event === 'SHUTDOWN') void this.stop('QEMU shut down');
    else if (event.event === 'STOP' || event.event === 'RESUME') this.#options.log.info({ event: 'vm-run-state', qmp: event.event });
    // Not logged: the guest opens and closes the port for every request, as often as it likes.
    else if (vhostmdPortChanged(event, this.#vhostmdPortIds)) this.#vhostmd?.resetDecoder();
  }

  #reportCounters(): void {
    if (!this.#countersDirty) return;
    this.#countersDirty = false;
    this.#options.channel.reportCounters(this.#counters);
  }

  /**
   * The per-VM meter (vmcputime, vmcpuusage, vcpudelay, cpulimit, memlimit, vmmem), once per
   * sample interval. The pid comes from the daemon (it follows -daemonize); the vCPU threads from
   * QMP or their names.
   */
  #startVmMeters(): void {
    const threads = this.#identity?.vcpuThreads ?? [];
    const pid = (): number | undefined => this.#options.channel.access?.vm.pid ?? this.#options.qemuPid;
    if (threads.length === 0 || pid() === undefined) {
      const hint = this.#options.qmp === undefined ? ' (no QMP socket: QEMU needs -name ...,debug-threads=on to name its vCPU threads)' : '';
      this.#options.log.warn({ event: 'vcpudelay-unavailable' }, `QEMU pid or vCPU threads unknown${hint}: vcpudelay and vmcpuusage answer 503`);
    }
    const tick = vmMeters({ pid, vcpuThreads: threads, qmp: this.#options.qmp === undefined ? undefined : this.#qmp, monotonic: () => this.#clock.monotonic() });
    const measure = async (): Promise<void> => {
      const facts = await tick().catch((error: unknown) => {
        this.#options.log.error({ event: 'vm-meter-failed', error: String(error) });
        return undefined;
      });
      if (facts !== undefined && this.#stopping === undefined) this.#vm = { ...this.#vm, ...facts };
    };
    void measure();
    this.#every(this.#options.channel.access?.sampleIntervalMs ?? 1000, () => void measure());
  }

  #every(ms: number, run: () => void): void {
    this.#timers.push(setInterval(run, ms));
  }
}
