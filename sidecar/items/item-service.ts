// The protocol-neutral item service: (what the sidecar holds now, an item) → the item's typed
// value, "forbidden" (outside this VM's policy) or "unavailable, because ...". Pure: it reads no
// file, socket or clock; every codec (the line protocol's request handler, and any other guest
// protocol) asks it and only encodes what it says.
//
// SOURCES is keyed by every ItemName and typed by ItemValues, so the compiler rejects a catalogue
// item without a source (or a source of the wrong type); there is no fall-through case.

import type { PartialHostValues } from '../../daemon/sample.js';
import type { Access } from '../../policies/access.js';
import { ITEM_NAMES, type HostItemName, type ItemName } from '../../policies/items.js';
import type { ItemValues, Measurement, VmFacts } from './vm-values.js';

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
  /** Monotonic ms, on the same clock as ItemContext.now. */
  readonly receivedAt: number;
}

/** Everything an answer depends on. Two clocks, one use each: see sidecar/request-handler.ts. */
export interface ItemContext {
  readonly access: Access;
  readonly sample: HeldSample | undefined;
  readonly vm: VmFacts;
  /** Samples and measurements older than this are not served. */
  readonly maxAgeMs: number;
  /** Monotonic ms: every age is measured on it. Never epoch ms. */
  readonly now: number;
  /** Wall-clock epoch ms: what hosttime reports, and nothing else. */
  readonly wallNow: number;
}

export type ItemValueAnswer = { readonly [K in ItemName]: { readonly kind: 'value'; readonly item: K; readonly value: ItemValues[K] } }[ItemName];

export type ItemAnswer =
  | ItemValueAnswer
  | { readonly kind: 'forbidden'; readonly item: ItemName }
  | { readonly kind: 'unavailable'; readonly item: ItemName; readonly why: string };

type Lookup<V> = { readonly value: V } | { readonly why: string };
type Source<K extends ItemName> = (context: ItemContext) => Lookup<ItemValues[K]>;

const found = <V>(value: V): Lookup<V> => ({ value });
const missing = (why: string): { readonly why: string } => ({ why });

/** `since` and context.now are both monotonic: a wall-clock step changes no age. */
function staleness(context: ItemContext, since: number): { readonly why: string } | undefined {
  const ageMs = context.now - since;
  return ageMs > context.maxAgeMs ? missing(`newest sample is ${(ageMs / 1000).toFixed(1)} s old`) : undefined;
}

function sampled<K extends HostItemName>(item: K): Source<K> {
  return (context) => {
    const sample = context.sample;
    if (sample === undefined) return missing('no sample from the host cache yet');
    const value = sample.values[item];
    // The order of the checks is the reply's: an old sample is old whatever it holds.
    return staleness(context, sample.receivedAt) ?? (value === undefined ? missing(`${item} is not available on this host`) : found(value as ItemValues[K]));
  };
}

/** A per-VM meter's reading: absent until its first, aged like a host sample. */
function metered<V>(context: ItemContext, reading: Measurement<V> | undefined, before: string): Lookup<V> {
  if (reading === undefined) return missing(before);
  if ('why' in reading) return reading;
  return staleness(context, reading.measuredAt) ?? found(reading.value);
}

function known<V>(value: V | undefined, why: string): Lookup<V> {
  return value === undefined ? missing(why) : found(value);
}

const SOURCES: { readonly [K in ItemName]: Source<K> } = {
  physcpus: sampled('physcpus'),
  physcores: sampled('physcores'),
  sockets: sampled('sockets'),
  cpumodel: sampled('cpumodel'),
  cpumhz: sampled('cpumhz'),
  loadavg: sampled('loadavg'),
  cpuusage: sampled('cpuusage'),
  pressure: sampled('pressure'),
  physmem: sampled('physmem'),
  swap: sampled('swap'),
  uptime: sampled('uptime'),
  hosttime: (context) => found(context.wallNow),
  hostname: sampled('hostname'),
  kernel: sampled('kernel'),
  hypervisor: (context) => known(context.vm.hypervisor, 'hypervisor version not known (no QMP socket for this VM)'),
  vcpudelay: (context) => {
    const delay = context.vm.vcpuDelay;
    return metered(context, delay && { value: delay.percent, measuredAt: delay.measuredAt }, 'no vCPU measurement yet');
  },
  vmcount: sampled('vmcount'),
  pagedin: sampled('pagedin'),
  pagedout: sampled('pagedout'),
  hostcputime: sampled('hostcputime'),
  vmcputime: (context) => metered(context, context.vm.cpuTime, 'no CPU time measurement yet'),
  vmcpuusage: (context) => metered(context, context.vm.vcpuUsage, 'no vCPU measurement yet'),
  vcpus: (context) => known(context.vm.vcpus, 'vCPU threads not known'),
  vmmem: (context) => metered(context, context.vm.memory, 'no memory size from QMP yet'),
  cpulimit: (context) => metered(context, context.vm.cpuLimit, 'no cgroup reading yet'),
  memlimit: (context) => metered(context, context.vm.memLimit, 'no cgroup reading yet'),
  vmname: (context) => known(context.vm.name, 'this VM has no name (QEMU was started without -name)'),
  vmuuid: (context) => known(context.vm.uuid, 'this VM has no UUID (QEMU was started without -uuid)'),
  // Not aged: it is a fact of the QEMU process, not a measurement that goes stale.
  vmsession: (context) => {
    const session = context.vm.session;
    if (session === undefined) return missing('QEMU process not identified yet');
    return 'why' in session ? session : found(session.value);
  },
};

/** True when this VM is served and its policy lists `item`. */
export function isPermitted(access: Access, item: ItemName): boolean {
  return access.served && access.policy.items.includes(item);
}

export function answerItem<K extends ItemName>(context: ItemContext, item: K): ItemAnswer {
  if (!isPermitted(context.access, item)) return { kind: 'forbidden', item };
  const lookup = SOURCES[item](context);
  if ('why' in lookup) return { kind: 'unavailable', item, why: lookup.why };
  return { kind: 'value', item, value: lookup.value } as ItemValueAnswer;
}

/** Every item this VM may read, in catalogue order: values and unavailable ones, never forbidden. */
export function answerPermitted(context: ItemContext): ItemAnswer[] {
  return ITEM_NAMES.filter((item) => isPermitted(context.access, item)).map((item) => answerItem(context, item));
}
