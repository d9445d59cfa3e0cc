// README's vhostmd metric table is the code's (sidecar/vhostmd/metrics.ts): name, context, type,
// unit and source items, row for row in order; every source is a catalogue item; every unit is
// set; and the metrics the README says are not served are not in the table.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { isItemName } from '../../../policies/items.js';
import { METRICS, NOT_SERVED_METRICS } from '../../../sidecar/vhostmd/metrics.js';

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
  const notServed = /Not served, for want of an item to\s+compute them from:([^;]*);/.exec(README)?.[1] ?? '';
  for (const entry of NOT_SERVED_METRICS) {
    const name = entry.replace(/ \(host\)$/, '');
    t.ok(notServed.includes(`\`${name}\``), `the README names ${entry} as not served`);
    t.notOk(METRICS.some((metric) => metric.context === 'host' && metric.name === name), `host ${name} is not in the table`);
  }
});
