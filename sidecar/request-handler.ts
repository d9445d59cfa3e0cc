// The line protocol's codec, and the whole guest request path as one pure function: (access,
// limiter, newest sample, VM facts, now, frame) → reply. The I/O layer feeds it frames and writes
// what it returns; nothing here reads a file, a socket or a clock, so every status can be tested
// at an exact instant. What an item's value is, and whether this VM may have it, is the item
// service's (items/item-service.ts); this file parses, limits and encodes.
//
// Two clocks come in, and each has one use. `now` is monotonic (performance.now() in the sidecar):
// the rate limiter and every age are measured on it, so an NTP step of the wall clock can neither
// lock a guest out (a step back by X used to mean "retry after X ms") nor make data look fresher
// or staler than it is. `wallNow` is epoch ms and is only what hosttime reports.

import { isItemName, type ItemName } from '../policies/items.js';
import { takeToken, type LimiterState } from '../policies/rate-limiter.js';
import { allText } from './items/all-line.js';
import { answerItem, answerPermitted, type ItemAnswer, type ItemContext } from './items/item-service.js';
import { itemText } from './item-text.js';
import { MAX_REQUEST_BYTES } from './protocol/limits.js';
import { PROTOCOL_VERSION } from './protocol/version.js';
import type { GuestFrame } from './protocol/line-decoder.js';
import { formatReply, STATUS, type Reply } from './protocol/reply.js';
import { looksLikeReply, parseRequestLine, type ParsedLine } from './protocol/request-parser.js';

export type { HeldSample } from './items/item-service.js';
export type { VmFacts } from './items/vm-values.js';

export const NOT_ENABLED_TEXT = 'hostinfo is not enabled for this VM';
export const UNAVAILABLE_TEXT = 'host statistics unavailable';
const ALWAYS_KNOWN = ['ping', 'help', 'version'] as const;
/** Longest unknown command name echoed back in a 404. */
const MAX_ECHOED_COMMAND = 32;

/** The item service's context, plus what only the line protocol needs. */
export interface RequestContext extends ItemContext {
  readonly limiter: LimiterState;
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
  // A first line that is no known command may be the tail of what the guest sent the previous host
  // end (see GuestFrame): a reply to it would answer the guest's next request, and every one after.
  if (parsed.kind === 'empty' || parsed.kind === 'echo' || (frame.kind === 'line' && frame.maybeTail && !startsWithKnownWord(frame.bytes))) {
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

const COMMANDS: ReadonlySet<string> = new Set(['ping', 'help', 'version', 'all']);
const SPACE = 0x20;

/** Whether the line's first word (after any spaces) names a command or item, in any letter case. */
function startsWithKnownWord(bytes: Buffer): boolean {
  let start = 0;
  while (start < bytes.length && bytes[start] === SPACE) start += 1;
  let end = start;
  while (end < bytes.length && bytes[end] !== SPACE) end += 1;
  const word = bytes.toString('latin1', start, end).toLowerCase();
  return COMMANDS.has(word) || isItemName(word);
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
    case 'all':
      // One token for every permitted item: a guest no longer pays one interval per item.
      return noArguments(command, args) ?? ok(allText(answerPermitted(context).map((item) => ({ item: item.item, text: valueText(item) }))));
  }
  if (!isItemName(command)) {
    return { status: STATUS.unknownCommand, text: `unknown command: ${command.slice(0, MAX_ECHOED_COMMAND)}` };
  }
  const item = answerItem(context, command);
  // The policy is checked before the arity: a VM learns nothing about items it may not read.
  if (item.kind === 'forbidden') return { status: STATUS.forbidden, text: `${command} is not permitted for this VM` };
  return noArguments(command, args) ?? (item.kind === 'value' ? ok(itemText(item.item, item.value)) : unavailable(item.why));
}

/** The reply text of an answered item; undefined when it has no value. */
function valueText(answer: ItemAnswer): string | undefined {
  return answer.kind === 'value' ? itemText(answer.item, answer.value) : undefined;
}

function noArguments(command: string, args: readonly string[]): Reply | undefined {
  return args.length === 0 ? undefined : { status: STATUS.badRequest, text: `bad request: ${command} takes no arguments` };
}

const ok = (text: string): Reply => ({ status: STATUS.ok, text });
const unavailable = (why: string): Reply => ({ status: STATUS.unavailable, text: `${UNAVAILABLE_TEXT}: ${why}` });
