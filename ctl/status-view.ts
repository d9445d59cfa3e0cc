// hostinfo-ctl status as people read it: one header line for the daemon, an aligned table with a
// row per VM, or every field of one VM. The --json form is the StatusReply itself.

import { matchVmKey } from '../common/vm-key.js';
import type { StatusReply, VmStatus } from '../daemon/messages.js';

export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? `${hours}h${String(minutes % 60).padStart(2, '0')}m` : `${Math.floor(hours / 24)}d${String(hours % 24).padStart(2, '0')}h`;
}

export function daemonLine(status: StatusReply, now: number): string {
  const sample = status.takenAt === null ? 'no sample yet' : `last sample ${((now - status.takenAt) / 1000).toFixed(1)}s ago`;
  const served = status.vms.filter((vm) => vm.served).length;
  return `hostinfod ${status.version}, pid ${status.pid}, up ${formatDuration(now - status.startedAt)}, sampling every ${status.intervalMs / 1000}s (${sample}), ${status.vms.length} VMs, ${served} served`;
}

const access = (vm: VmStatus): string => (vm.served ? 'served' : `not served: ${vm.reason ?? 'unknown'}`);
const rate = (vm: VmStatus): string => (vm.limit === null ? '-' : `${vm.limit.burst}/${vm.limit.intervalMs / 1000}s`);
const requests = (vm: VmStatus): string => (vm.counters === null ? '-' : `${vm.counters.ok}/${vm.counters.denied}/${vm.counters.rateLimited}/${vm.counters.errors}`);
const lastRequest = (vm: VmStatus, now: number): string => (vm.counters?.lastRequestAt == null ? 'never' : `${formatDuration(now - vm.counters.lastRequestAt)} ago`);
const sidecar = (vm: VmStatus): string => (vm.sidecar.pid === null ? 'down' : vm.sidecar.connected ? `pid ${vm.sidecar.pid}` : `pid ${vm.sidecar.pid} (connecting)`);

/** Columns: header and cell. Access goes last: its reason may be long. */
const COLUMNS: readonly (readonly [string, (vm: VmStatus, now: number) => string])[] = [
  ['VM', (vm) => vm.id],
  ['NAME', (vm) => vm.vm.name],
  ['QEMU', (vm) => String(vm.vm.pid)],
  ['GUEST PORT', (vm) => `${vm.guestDevice}${vm.attached ? ' (attached)' : ''}`],
  ['RATE', rate],
  ['200/403/429/ERR', requests],
  ['DROPPED', (vm) => (vm.counters === null ? '-' : `${vm.counters.droppedBytes}B`)],
  ['LAST REQUEST', lastRequest],
  ['SIDECAR', sidecar],
  ['RESTARTS', (vm) => String(vm.sidecar.restarts)],
  ['ACCESS', access],
];

export function statusTable(status: StatusReply, now: number): string {
  const rows = [COLUMNS.map(([header]) => header), ...status.vms.map((vm) => COLUMNS.map(([, cell]) => cell(vm, now)))];
  const widths = COLUMNS.map((_column, index) => Math.max(...rows.map((row) => row[index]?.length ?? 0)));
  const lines = rows.map((row) => row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0))).join('  ').trimEnd());
  return `${daemonLine(status, now)}\n${status.vms.length === 0 ? '(no VMs registered)\n' : `${lines.join('\n')}\n`}`;
}

/** Every field of one VM, one per line. */
export function vmDetails(vm: VmStatus, now: number): string {
  const fields: [string, string][] = [
    ['vm', vm.id],
    ['name', vm.vm.name],
    ['uuid', vm.vm.uuid],
    ['qemu pid', String(vm.vm.pid)],
    ['guest port', `${vm.guestDevice} (${vm.transport})`],
    ['registered', vm.attached ? 'attached (hostinfo-ctl attach)' : 'launched through hostinfo'],
    ['access', access(vm)],
    ['policy file', vm.file ?? '-'],
    ['items', vm.items.length === 0 ? '-' : vm.items.join(' ')],
    ['rate', vm.limit === null ? '-' : `burst ${vm.limit.burst}, one more every ${vm.limit.intervalMs / 1000}s`],
    ['requests', vm.counters === null ? 'none reported' : `${vm.counters.requests} (200: ${vm.counters.ok}, 403: ${vm.counters.denied}, 429: ${vm.counters.rateLimited}, errors: ${vm.counters.errors})`],
    ['dropped', vm.counters === null ? '-' : `${vm.counters.droppedBytes} bytes, ${vm.counters.droppedLines} lines (flood budget)`],
    ['last request', lastRequest(vm, now)],
    ['sidecar', `${sidecar(vm)}${vm.sidecar.uid === null ? '' : `, uid ${vm.sidecar.uid}`}, ${vm.sidecar.restarts} restarts`],
  ];
  const width = Math.max(...fields.map(([key]) => key.length));
  return fields.map(([key, value]) => `${`${key}:`.padEnd(width + 2)}${value}`).join('\n') + '\n';
}

/** A VM as common/vm-key.ts names it, or why none is meant. */
export function findVm(status: StatusReply, key: string): VmStatus | string {
  const match = matchVmKey(status.vms, key, (vm) => ({ id: vm.id, pids: [vm.vm.pid], name: vm.vm.name, uuid: vm.vm.uuid }));
  if (match.kind === 'found') return match.vm;
  return match.kind === 'ambiguous' ? match.message : `no VM ${JSON.stringify(key)} is registered (hostinfo-ctl status lists them)`;
}
