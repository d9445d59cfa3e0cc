// What hostinfo-qemu tells the user on stderr about a VM it wires up, just before it becomes QEMU
// (silenced by --quiet): where the guest finds its hostinfo port, and which QEMU options it did
// not know and so read as flags (one that really takes a value could have hidden a -serial).

import type { WrapPlan } from './qemu-args.js';

/** `hostinfo: guest port /dev/ttyS1 (COM2)` or `hostinfo: guest port virtio-serial org.hostinfo.0`. */
export function guestPortLine(plan: Pick<WrapPlan, 'serialIndex' | 'portName'>): string {
  if (plan.serialIndex !== undefined) return `hostinfo: guest port /dev/ttyS${plan.serialIndex} (COM${plan.serialIndex + 1})`;
  return `hostinfo: guest port virtio-serial ${plan.portName ?? ''}`;
}

/** Each unknown option once, in the order given; undefined when there is none. */
export function unknownOptionsNote(plan: Pick<WrapPlan, 'unknownOptions'>): string | undefined {
  if (plan.unknownOptions.length === 0) return undefined;
  return `hostinfo: note: options not known to hostinfo-qemu, treated as flags: ${[...new Set(plan.unknownOptions)].join(', ')}`;
}

/** The lines for a wrapped VM, in the order they are printed. */
export function planNotices(plan: Pick<WrapPlan, 'serialIndex' | 'portName' | 'unknownOptions'>): string[] {
  const note = unknownOptionsNote(plan);
  return [guestPortLine(plan), ...(note === undefined ? [] : [note])];
}
