// The whole guest request path as one pure function: (access, limiter, newest snapshot, VM facts,
// now, frame) → reply. The I/O layer feeds it frames and writes what it returns; nothing here
// reads a file, a socket or a clock, so every status can be tested at an exact instant.

import type { HostSnapshot } from '../daemon/sample.js';
import type { Access } from '../policies/access.js';
import { isHostItemName, isItemName, type ItemName } from '../policies/items.js';
import { takeToken, type LimiterState } from '../policies/rate-limiter.js';
import { hostItemText, hostTimeText, vcpuDelayText } from './item-text.js';
import { MAX_REQUEST_BYTES } from './protocol/limits.js';
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
  readonly vcpuDelay: { readonly percent: number; readonly measuredAt: number } | undefined;
}

export interface RequestContext {
  readonly access: Access;
  readonly limiter: LimiterState;
  readonly snapshot: HostSnapshot | undefined;
  readonly vm: VmFacts;
  /** Samples older than this are not served. */
  readonly maxAgeMs: number;
  /** Wall-clock epoch milliseconds of this request. */
  readonly now: number;
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
      return noArguments(command, args) ?? ok(`hostinfo-qemu ${context.version} protocol 1.0`);
  }
  if (!isItemName(command)) {
    return { status: STATUS.unknownCommand, text: `unknown command: ${command.slice(0, MAX_ECHOED_COMMAND)}` };
  }
  if (!items.includes(command)) return { status: STATUS.forbidden, text: `${command} is not permitted for this VM` };
  return noArguments(command, args) ?? itemReply(context, command);
}

function itemReply(context: RequestContext, item: ItemName): Reply {
  if (item === 'hosttime') return ok(hostTimeText(context.now));
  if (item === 'hypervisor') {
    return context.vm.hypervisor === undefined ? unavailable('hypervisor version not known yet') : ok(context.vm.hypervisor);
  }
  if (item === 'vcpudelay') {
    const delay = context.vm.vcpuDelay;
    if (delay === undefined) return unavailable('no vCPU measurement yet');
    return isStale(context, delay.measuredAt) ?? ok(vcpuDelayText(delay.percent));
  }
  if (!isHostItemName(item)) return { status: STATUS.internalError, text: `no source for ${item}` };
  const snapshot = context.snapshot;
  if (snapshot === undefined) return unavailable('no sample from the host cache yet');
  const stale = isStale(context, snapshot.takenAt);
  if (stale !== undefined) return stale;
  const text = hostItemText(item, snapshot.values);
  return text === undefined ? unavailable(`${item} is not available on this host`) : ok(text);
}

function isStale(context: RequestContext, measuredAt: number): Reply | undefined {
  const ageMs = context.now - measuredAt;
  return ageMs > context.maxAgeMs ? unavailable(`newest sample is ${(ageMs / 1000).toFixed(1)} s old`) : undefined;
}

function noArguments(command: string, args: readonly string[]): Reply | undefined {
  return args.length === 0 ? undefined : { status: STATUS.badRequest, text: `bad request: ${command} takes no arguments` };
}

const ok = (text: string): Reply => ({ status: STATUS.ok, text });
const unavailable = (why: string): Reply => ({ status: STATUS.unavailable, text: `${UNAVAILABLE_TEXT}: ${why}` });
