// hostinfo-ctl reload as people read it: per VM, what the reload changed in its access.

import type { AccessSummary, ControlReply } from '../daemon/control-messages.js';

type Reloaded = Extract<ControlReply, { type: 'reloaded' }>;

/** One VM's access in a line (hostinfo-ctl explain uses it too). */
export const describe = (access: AccessSummary): string =>
  access.served
    ? `served by ${access.file ?? '?'}: ${access.items.join(' ') || 'no items'}; burst ${access.limit?.burst}, every ${(access.limit?.intervalMs ?? 0) / 1000}s`
    : `not served: ${access.reason ?? 'unknown'}`;

export function reloadReport(reply: Reloaded): string {
  const lines = [`reloaded ${reply.config ?? '(no config file: built-in defaults)'} and the policies of ${reply.vms.length} VMs`];
  for (const change of reply.vms) {
    const before = describe(change.before);
    const after = describe(change.after);
    lines.push(before === after ? `  ${change.id}: unchanged (${after})` : `  ${change.id}: ${before}\n  ${' '.repeat(change.id.length)}  now ${after}`);
  }
  return `${lines.join('\n')}\n`;
}
