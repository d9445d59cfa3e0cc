// README's vhostmd metric table is the code's (sidecar/vhostmd/metrics.ts): name, context, type,
// unit and source items, row for row in order; every source is a catalogue item; every unit is
// set; and the table serves the whole set RHEL's vhostmd.conf ships, in its order.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { isItemName } from '../../../policies/items.js';
import { METRICS } from '../../../sidecar/vhostmd/metrics.js';

const README = readFileSync(fileURLToPath(new URL('../../../../README.md', import.meta.url)), 'utf8');

/** The rows of the first table after the line starting with `after`, inside the vhostmd section. */
function metricTable(text: string): string[][] {
  const section = text.slice(text.indexOf('## vhostmd protocol (SAP)'));
  const lines = section.split('\n');
  const start = lines.findIndex((line) => line.startsWith('| metric | context | type | unit | source items |'));
  if (start === -1) return [];
  const rows: string[][] = [];
  for (let at = start + 2; lines[at]?.startsWith('|') === true; at += 1) rows.push((lines[at] ?? '').replace(/^\||\|$/g, '').split('|').map((cell) => cell.trim()));
  return rows;
}

const unquote = (cell: string): string => cell.replace(/^`|`$/g, '');

t.test('the README table is the metric table', async (t) => {
  const rows = metricTable(README);
  t.equal(rows.length, METRICS.length, 'one row per metric');
  rows.forEach((row, index) => {
    const metric = METRICS[index];
    const sources = (row[4] ?? '').split(',').map((cell) => unquote(cell.trim()));
    t.same([unquote(row[0] ?? ''), row[1], row[2], row[3], sources], [metric?.name, metric?.context, metric?.type, metric?.unit, metric?.sources], `row ${index + 1}: ${row[0]}`);
  });
});

t.test('the table itself', async (t) => {
  t.ok(METRICS.every((metric) => metric.sources.length > 0 && metric.sources.every(isItemName)), 'every metric has catalogue items as sources');
  t.ok(METRICS.every((metric) => metric.unit !== ''), 'a unit on every metric');
  t.equal(new Set(METRICS.map((metric) => `${metric.context}:${metric.name}`)).size, METRICS.length, 'no metric twice');
  const firstVm = METRICS.findIndex((metric) => metric.context === 'vm');
  t.ok(METRICS.slice(firstVm).every((metric) => metric.context === 'vm'), 'host metrics first, then VM metrics');
});

// RHEL's vhostmd.conf (written with SAP), metric for metric, with the types it declares.
const RHEL_SET = [
  ['host', 'HostName', 'string'], ['host', 'Time', 'uint64'], ['host', 'VirtualizationVendor', 'string'], ['host', 'VirtProductInfo', 'string'],
  ['host', 'HostSystemInfo', 'string'], ['host', 'NumberOfPhysicalCPUs', 'uint32'], ['host', 'MemoryAllocatedToVirtualServers', 'uint64'],
  ['host', 'FreePhysicalMemory', 'uint64'], ['host', 'FreeVirtualMemory', 'uint64'], ['host', 'UsedVirtualMemory', 'uint64'],
  ['host', 'PagedInMemory', 'uint64'], ['host', 'PagedOutMemory', 'uint64'], ['host', 'TotalCPUTime', 'real64'],
  ['vm', 'TotalCPUTime', 'real64'], ['vm', 'ResourceProcessorLimit', 'uint32'], ['vm', 'ResourceMemoryLimit', 'uint64'],
  ['vm', 'PhysicalMemoryAllocatedToVirtualSystem', 'uint64'],
] as const;
// The two types hostinfo chose differently when the table was first written (README's table
// has them): Time as int64, and the processor limit as a real, since a cgroup quota is fractional.
const OWN_TYPES: Readonly<Record<string, string>> = { 'host:Time': 'int64', 'vm:ResourceProcessorLimit': 'real64' };

t.test('every metric of the SAP set is served, in vhostmd.conf\'s order', async (t) => {
  t.same(METRICS.map((metric) => [metric.context, metric.name]), RHEL_SET.map(([context, name]) => [context, name]));
  for (const [context, name, type] of RHEL_SET) {
    const metric = METRICS.find((m) => m.context === context && m.name === name);
    t.equal(metric?.type, OWN_TYPES[`${context}:${name}`] ?? type, `${context} ${name}: type`);
  }
  const paging = METRICS.filter((metric) => metric.name.startsWith('Paged'));
  t.same(paging.map((metric) => [metric.unit, metric.sources]), [['MiB', ['pagedin']], ['MiB', ['pagedout']]], 'paging in MiB, from pgpgin and pgpgout');
  t.notMatch(README, /Not served, for want of an item/, 'the README no longer lists metrics as not served');
});
