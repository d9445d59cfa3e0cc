// The vhostmd request path as one pure function: (item service context, limiter, the last reply
// this VM was sent, request) → the reply, the new limiter, what to remember, and the audit. Like
// the line protocol's handleGuestFrame it reads no file, socket or clock.
//
// Every request gets its reply at once, whatever happens: vm-dump-metrics gives up after about
// 5 s, and a reply sent later would be read as the answer to its next request. So a request over
// the rate limit is not told to wait; it gets the last document this VM was sent (the token bucket
// is the line port's: one VM, one bucket), or, when there is none to repeat, an empty document
// saying so. Either way it is counted and audited as a 429.

import { takeToken, type LimiterState } from '../../policies/rate-limiter.js';
import type { ItemName } from '../../policies/items.js';
import { answerItem, type ItemContext } from '../items/item-service.js';
import { STATUS, type Status } from '../protocol/reply.js';
import { NIL_UUID } from '../qmp/queries.js';
import { METRICS, metricText, type Metric } from './metrics.js';
import type { VhostmdRequest } from './request-decoder.js';
import { emptyDocument, INVALID_REQUEST_REPLY, metricsDocument, type MetricEntry } from './xml.js';

export const VHOSTMD_NOT_ENABLED = 'hostinfo is not enabled for this VM';
/**
 * vhostmd's domain id. hostinfo has no domain numbers and serves one VM per port, so it is always
 * 1 (never 0, which vhostmd under Xen gives the host).
 */
export const VHOSTMD_VM_ID = '1';

/** A document sent, and the items it was made from: repeated only while the policy is the same. */
export interface CachedDocument {
  readonly document: string;
  readonly items: readonly ItemName[];
}

export interface VhostmdContext extends ItemContext {
  readonly limiter: LimiterState;
  readonly lastReply: CachedDocument | undefined;
}

export interface VhostmdOutcome {
  readonly reply: string;
  readonly limiter: LimiterState;
  readonly lastReply: CachedDocument | undefined;
  readonly audit: { readonly command: string; readonly status: Status };
}

export function handleVhostmdRequest(context: VhostmdContext, request: VhostmdRequest): VhostmdOutcome {
  const { limiter, lastReply } = context;
  if (request.kind === 'invalid') {
    // No token: the guest gets vhostmd's own answer, and its flood budget bounds what it may cost.
    return { reply: INVALID_REQUEST_REPLY, limiter, lastReply, audit: { command: 'vhostmd-invalid', status: STATUS.badRequest } };
  }
  const access = context.access;
  if (!access.served) {
    return { reply: emptyDocument(VHOSTMD_NOT_ENABLED), limiter, lastReply, audit: { command: 'vhostmd', status: STATUS.forbidden } };
  }
  const decision = takeToken(access.policy.limit, limiter, context.now);
  if (!decision.allowed) {
    // A document made under other items would show what the policy no longer permits.
    const repeat = lastReply !== undefined && sameItems(lastReply.items, access.policy.items) ? lastReply.document : undefined;
    return {
      reply: repeat ?? emptyDocument(`rate limited and no earlier reply to repeat: retry after ${decision.retryAfterMs} ms`),
      limiter: decision.state,
      lastReply,
      audit: { command: 'vhostmd', status: STATUS.rateLimited },
    };
  }
  let document: string;
  try {
    document = metricsDocument(entries(context), { id: VHOSTMD_VM_ID, uuid: vmUuid(context) });
  } catch {
    // A bug must cost one request, never the sidecar or the guest's framing.
    return { reply: emptyDocument('internal error'), limiter: decision.state, lastReply, audit: { command: 'vhostmd', status: STATUS.internalError } };
  }
  return { reply: document, limiter: decision.state, lastReply: { document, items: access.policy.items }, audit: { command: 'vhostmd', status: STATUS.ok } };
}

/** Every metric whose sources are all permitted and all have a value now, in table order. */
function entries(context: ItemContext): MetricEntry[] {
  const out: MetricEntry[] = [];
  for (const metric of METRICS) {
    const values = sourceValues(context, metric);
    if (values === undefined) continue;
    const text = metricText(metric.type, metric.compute(values));
    if (text !== undefined) out.push({ metric, text });
  }
  return out;
}

function sourceValues(context: ItemContext, metric: Metric): Partial<Record<ItemName, unknown>> | undefined {
  const values: Partial<Record<ItemName, unknown>> = {};
  for (const item of metric.sources) {
    const answer = answerItem(context, item);
    if (answer.kind !== 'value') return undefined;
    values[item] = answer.value;
  }
  return values;
}

/** The uuid attribute is the host's name for the VM: the vmuuid item when permitted, else the nil UUID. */
function vmUuid(context: ItemContext): string {
  const answer = answerItem(context, 'vmuuid');
  return answer.kind === 'value' && answer.item === 'vmuuid' ? answer.value : NIL_UUID;
}

function sameItems(a: readonly ItemName[], b: readonly ItemName[]): boolean {
  return a.length === b.length && a.every((item, index) => item === b[index]);
}
