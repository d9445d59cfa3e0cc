// The whole guest request path as one pure function: (access, limiter, newest sample, VM facts,
// now, frame) → reply. The I/O layer feeds it frames and writes what it returns; nothing here
// reads a file, a socket or a clock, so every status can be tested at an exact instant.
//
// Two clocks come in, and each has one use. `now` is monotonic (performance.now() in the sidecar):
// the rate limiter and every age are measured on it, so an NTP step of the wall clock can neither
// lock a guest out (a step back by X used to mean "retry after X ms") nor make data look fresher
// or staler than it is. `wallNow` is epoch ms and is only what hosttime reports.

import type { PartialHostValues } from '../daemon/sample.js';
import type { Access } from '../policies/access.js';
import { isHostItemName, isItemName, type ItemName } from '../policies/items.js';
import { takeToken, type LimiterState } from '../policies/rate-limiter.js';
import { hostItemText, hostTimeText, vcpuDelayText } from './item-text.js';
import { MAX_REQUEST_BYTES } from './protocol/limits.js';
import { PROTOCOL_VERSION } from './protocol/version.js';
import type { GuestFrame } from './protocol/line-decoder.js';
import { formatReply, STATUS, type Reply } from './protocol/reply.js';
import { looksLikeReply, parseRequestLine, type ParsedLine } from './protocol/request-parser.js';

export const NOT_ENABLED_TEXT = 'hostinfo is not enabled for this VM';
export const UNAVAILABLE_TEXT = 'host statistics unavailable';
const ALWAYS_KNOWN = ['ping', 'help', 'version'] as const;
/** Longest unknown command name echoed back in a 404. */
const MAX_ECHOED_COMMAND = 32;

/** What the sidecar knows about its own VM, outside the host cache. */
export interface VmFacts {
  /** e.g. `QEMU 7.2.22`, from QMP query-version; undefined until QMP has answered. */
  readonly hypervisor: string | undefined;
  /** `measuredAt`: monotonic ms, on the same clock as RequestContext.now. */
  readonly vcpuDelay: { readonly percent: number; readonly measuredAt: number } | undefined;
}

/**
 * The newest host sample as the sidecar holds it. Its age is counted from `receivedAt`, the
 * sidecar's own monotonic time when the sample arrived over the channel, and from nothing else:
 * the daemon's `takenAt` is epoch ms on the daemon's wall clock, which cannot be compared with
 * a monotonic clock (and, compared with the sidecar's wall clock, turns every NTP step into a
 * spurious 503 or a stale sample served). The time a sample spent in the daemon before it was
 * sent is not counted: the daemon sends each sample as it takes it, and a newly attached (or
 * slow) sidecar the newest one, at most one sampling interval old while the daemon samples. A
 * daemon that stops sampling stops sending new samples, so what the sidecar holds then ages out
 * here (a sidecar attached after sampling stopped serves the last sample for max_age once).
 * The daemon's takenAt is kept from going backwards on its side (daemon/sampler.ts) for its
 * own subscribers; the sidecar does not use it.
 */
export interface HeldSample {
  readonly values: PartialHostValues;
  /** Monotonic ms, on the same clock as RequestContext.now. */
  readonly receivedAt: number;
}

export interface RequestContext {
  readonly access: Access;
  readonly limiter: LimiterState;
  readonly sample: HeldSample | undefined;
  readonly vm: VmFacts;
  /** Samples (host and vCPU) older than this are not served. */
  readonly maxAgeMs: number;
  /** Monotonic milliseconds of this request: the rate limiter's clock and every age's. Never epoch ms. */
  readonly now: number;
  /** Wall-clock epoch milliseconds of this request: what hosttime reports, and nothing else. */
  readonly wallNow: number;
  /** Package version, for VERSION. */
  readonly version: string;
}

export interface RequestOutcome {
  /** The line to send, LF included; undefined means send nothing (blank line or echo). */
  readonly reply: string | undefined;
  readonly limiter: LimiterState;
  /** For counters and the audit log: the command as understood (or `-`) and the status. */
  readonly audit: { readonly command: string; readonly status: Reply['status'] } | undefined;
}

export function handleGuestFrame(context: RequestContext, frame: GuestFrame): RequestOutcome {
  const parsed: ParsedLine = frame.kind === 'line'
    ? parseRequestLine(frame.bytes)
    : looksLikeReply(frame.head)
      ? { kind: 'echo' }
      : { kind: 'invalid', reason: `line longer than ${MAX_REQUEST_BYTES} bytes` };
  if (parsed.kind === 'empty' || parsed.kind === 'echo') {
    return { reply: undefined, limiter: context.limiter, audit: undefined };
  }
  const command = parsed.kind === 'request' ? parsed.command.slice(0, MAX_ECHOED_COMMAND) : '-';
  let limiter = context.limiter;
  let reply: Reply;
  try {
    if (!context.access.served) {
      reply = { status: STATUS.forbidden, text: NOT_ENABLED_TEXT };
    } else {
      const decision = takeToken(context.access.policy.limit, limiter, context.now);
      limiter = decision.state;
      if (!decision.allowed) {
        reply = { status: STATUS.rateLimited, text: `too many requests; retry after ${decision.retryAfterMs} ms` };
      } else if (parsed.kind === 'invalid') {
        reply = { status: STATUS.badRequest, text: `bad request: ${parsed.reason}` };
      } else {
        reply = answer(context, context.access.policy.items, parsed.command, parsed.args);
      }
    }
  } catch {
    // A bug must cost one request, never the sidecar or the guest's framing.
    reply = { status: STATUS.internalError, text: 'internal error' };
  }
  return { reply: formatReply(reply), limiter, audit: { command, status: reply.status } };
}

function answer(context: RequestContext, items: readonly ItemName[], command: string, args: readonly string[]): Reply {
  switch (command) {
    case 'ping':
      if (args.length > 1) return { status: STATUS.badRequest, text: 'bad request: ping takes at most one argument' };
      return ok(args[0] ?? 'pong');
    case 'help':
      return noArguments(command, args) ?? ok([...ALWAYS_KNOWN, ...items].join(' '));
    case 'version':
      return noArguments(command, args) ?? ok(`hostinfo-qemu ${context.version} protocol ${PROTOCOL_VERSION}`);
  }
  if (!isItemName(command)) {
    return { status: STATUS.unknownCommand, text: `unknown command: ${command.slice(0, MAX_ECHOED_COMMAND)}` };
  }
  if (!items.includes(command)) return { status: STATUS.forbidden, text: `${command} is not permitted for this VM` };
  return noArguments(command, args) ?? itemReply(context, command);
}

function itemReply(context: RequestContext, item: ItemName): Reply {
  if (item === 'hosttime') return ok(hostTimeText(context.wallNow));
  if (item === 'hypervisor') {
    return context.vm.hypervisor === undefined ? unavailable('hypervisor version not known (no QMP socket for this VM)') : ok(context.vm.hypervisor);
  }
  if (item === 'vcpudelay') {
    const delay = context.vm.vcpuDelay;
    if (delay === undefined) return unavailable('no vCPU measurement yet');
    return isStale(context, delay.measuredAt) ?? ok(vcpuDelayText(delay.percent));
  }
  if (!isHostItemName(item)) return { status: STATUS.internalError, text: `no source for ${item}` };
  const sample = context.sample;
  if (sample === undefined) return unavailable('no sample from the host cache yet');
  const stale = isStale(context, sample.receivedAt);
  if (stale !== undefined) return stale;
  const text = hostItemText(item, sample.values);
  return text === undefined ? unavailable(`${item} is not available on this host`) : ok(text);
}

/** `since` and context.now are both monotonic: a wall-clock step changes no age. */
function isStale(context: RequestContext, since: number): Reply | undefined {
  const ageMs = context.now - since;
  return ageMs > context.maxAgeMs ? unavailable(`newest sample is ${(ageMs / 1000).toFixed(1)} s old`) : undefined;
}

function noArguments(command: string, args: readonly string[]): Reply | undefined {
  return args.length === 0 ? undefined : { status: STATUS.badRequest, text: `bad request: ${command} takes no arguments` };
}

const ok = (text: string): Reply => ({ status: STATUS.ok, text });
const unavailable = (why: string): Reply => ({ status: STATUS.unavailable, text: `${UNAVAILABLE_TEXT}: ${why}` });
