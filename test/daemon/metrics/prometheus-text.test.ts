// renderMetrics: the exposition text a status reply turns into. Checked three ways: exact lines
// for a two-VM host, a small parser of the format's grammar that must read every label back
// exactly (fast-check over arbitrary names), and Debian's promtool, the format's own checker.

import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { METRIC_FAMILIES, escapeLabelValue, renderMetrics } from '../../../daemon/metrics/prometheus-text.js';
import { COUNTERS, T0, TOOLS_MISSING, TWO_VMS, havePromtool, promtoolCheck, statusOf, vmEntry } from './fixtures.js';

interface Sample { readonly name: string; readonly labels: Record<string, string>; readonly value: string }
interface Parsed { readonly families: { name: string; type: string; help: string; samples: Sample[] }[] }

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|\})/y;

/** The exposition grammar, strictly: HELP, TYPE, then that family's samples; nothing else. */
function parse(text: string): Parsed {
  if (!text.endsWith('\n')) throw new Error('no trailing newline');
  const families: Parsed['families'] = [];
  const lines = text.slice(0, -1).split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const help = /^# HELP ([a-z_]+) (.*)$/.exec(line);
    if (help !== null) {
      const type = /^# TYPE ([a-z_]+) (gauge|counter)$/.exec(lines[i + 1] ?? '');
      if (type === null || type[1] !== help[1]) throw new Error(`line ${i + 2}: no TYPE after HELP ${help[1]}`);
      families.push({ name: help[1]!, type: type[2]!, help: help[2]!, samples: [] });
      i += 1;
      continue;
    }
    const head = /^([a-z_]+)(\{?)/.exec(line);
    const family = families.at(-1);
    if (head === null || family === undefined || head[1] !== family.name) throw new Error(`line ${i + 1} outside its family: ${line}`);
    const labels: Record<string, string> = {};
    let at = head[0].length;
    if (head[2] === '{') {
      for (let end = ''; end !== '}';) {
        LABEL.lastIndex = at;
        const match = LABEL.exec(line);
        if (match === null) throw new Error(`line ${i + 1}: bad label at ${at}: ${line}`);
        labels[match[1]!] = match[2]!.replace(/\\([\\"n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
        at = LABEL.lastIndex;
        end = match[3]!;
      }
    }
    const value = /^ (\S+)$/.exec(line.slice(at));
    if (value === null) throw new Error(`line ${i + 1}: not "value" alone after the labels (a timestamp?): ${line}`);
    family.samples.push({ name: head[1]!, labels, value: value[1]! });
  }
  return { families };
}

const samplesOf = (parsed: Parsed, name: string): Sample[] => parsed.families.find((family) => family.name === name)?.samples ?? [];
const valueOf = (parsed: Parsed, name: string, labels: Record<string, string> = {}): string | undefined =>
  samplesOf(parsed, name).find((sample) => Object.entries(labels).every(([key, value]) => sample.labels[key] === value))?.value;

t.test('two VMs: every family once, in order, with HELP and TYPE, and the values of the status', async (t) => {
  const text = renderMetrics(TWO_VMS, T0);
  const parsed = parse(text);
  t.same(parsed.families.map((family) => family.name), METRIC_FAMILIES, 'all families, in the fixed order');
  for (const family of parsed.families) {
    t.equal(family.type, family.name.endsWith('_total') ? 'counter' : 'gauge', `${family.name}: counters and only counters end in _total`);
    t.not(family.help, '', `${family.name} has a HELP text`);
  }
  const web = { vm: 'web "01" \\ prod', uuid: 'a0b1c2d3-0000-4000-8000-000000000001' };
  const db = { vm: 'db02', uuid: 'a0b1c2d3-0000-4000-8000-000000000002' };
  t.match(text, /^hostinfo_build_info\{version="0\.1\.0"\} 1$/m);
  t.match(text, /^hostinfo_requests_total\{vm="web \\"01\\" \\\\ prod",uuid="a0b1c2d3-0000-4000-8000-000000000001",status="200"\} 7$/m, 'the name escaped as the format says');
  t.same(samplesOf(parsed, 'hostinfo_requests_total').map((sample) => [sample.labels['vm'], sample.labels['status'], sample.value]), [
    [web.vm, '200', '7'], [web.vm, '403', '2'], [web.vm, '429', '2'], [web.vm, 'error', '1'],
    [db.vm, '200', '0'], [db.vm, '403', '0'], [db.vm, '429', '0'], [db.vm, 'error', '0'],
  ], 'four status series per VM, zeros for a VM that has not reported yet');
  t.same(Object.keys(samplesOf(parsed, 'hostinfo_sidecar_up')[0]!.labels), ['vm', 'uuid'], 'per-VM labels: name and uuid only');
  t.same([valueOf(parsed, 'hostinfo_vms'), valueOf(parsed, 'hostinfo_vms_served')], ['2', '1']);
  t.same([valueOf(parsed, 'hostinfo_vm_served', web), valueOf(parsed, 'hostinfo_vm_served', db)], ['1', '0']);
  t.same([valueOf(parsed, 'hostinfo_sidecar_up', web), valueOf(parsed, 'hostinfo_sidecar_up', db)], ['1', '0']);
  t.same([valueOf(parsed, 'hostinfo_sidecar_restarts_total', web), valueOf(parsed, 'hostinfo_sidecar_restarts_total', db)], ['2', '0']);
  t.same([valueOf(parsed, 'hostinfo_guest_dropped_bytes_total', web), valueOf(parsed, 'hostinfo_guest_dropped_lines_total', web)], ['4096', '3']);
  t.same([valueOf(parsed, 'hostinfo_guest_dropped_bytes_total', db), valueOf(parsed, 'hostinfo_guest_dropped_lines_total', db)], ['0', '0']);
  t.same(samplesOf(parsed, 'hostinfo_last_request_timestamp_seconds').map((sample) => [sample.labels['vm'], Number(sample.value)]), [[web.vm, (T0 - 1500) / 1000]], 'only for a VM that made a request');
  t.equal(Number(valueOf(parsed, 'hostinfo_sample_age_seconds')), 0.25, 'now - takenAt, in seconds');
  t.equal(Number(valueOf(parsed, 'hostinfo_sample_duration_seconds')), 0.000125);
  t.equal(Number(valueOf(parsed, 'hostinfo_start_time_seconds')), (T0 - 60_000) / 1000);
  t.notMatch(text, /\n\n/, 'no blank lines');
  t.equal(renderMetrics(TWO_VMS, T0), text, 'pure: same input, same bytes');
});

t.test('before the first sample and without VMs: the families are there, the sample gauges are not', async (t) => {
  const parsed = parse(renderMetrics(statusOf([], { seq: null, takenAt: null, sampleDurationMs: null }), T0));
  t.same(parsed.families.map((family) => family.name), METRIC_FAMILIES);
  t.same(parsed.families.filter((family) => family.samples.length > 0).map((family) => family.name),
    ['hostinfo_build_info', 'hostinfo_start_time_seconds', 'hostinfo_vms', 'hostinfo_vms_served'], 'no made-up 0 or NaN for the sample age and duration');
  t.equal(valueOf(parsed, 'hostinfo_vms'), '0');
});

t.test('a wall clock stepped back below takenAt: the age is 0, never negative', async (t) => {
  t.equal(valueOf(parse(renderMetrics(TWO_VMS, T0 - 10_000)), 'hostinfo_sample_age_seconds'), '0');
});

t.test('two VMs with the same name and uuid: one series, the first (a duplicate makes node_exporter drop the file)', async (t) => {
  const twin = vmEntry('twin', 'same-uuid', { ...COUNTERS, ok: 1 });
  const parsed = parse(renderMetrics(statusOf([twin, { ...twin, id: 'other', counters: { ...COUNTERS, ok: 99 } }, vmEntry('twin', 'other-uuid', null)]), T0));
  t.same(samplesOf(parsed, 'hostinfo_requests_total').filter((sample) => sample.labels['status'] === '200').map((sample) => [sample.labels['uuid'], sample.value]),
    [['same-uuid', '1'], ['other-uuid', '0']]);
  t.equal(valueOf(parsed, 'hostinfo_vms'), '3', 'hostinfo_vms still counts every registered VM');
});

t.test('escaping: any name reads back exactly through the format\'s grammar', async (t) => {
  t.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ maxLength: 40 }), (name, uuid) => {
    const parsed = parse(renderMetrics(statusOf([vmEntry(name, uuid, COUNTERS)]), T0));
    const sample = samplesOf(parsed, 'hostinfo_sidecar_up')[0];
    return sample?.labels['vm'] === name && sample.labels['uuid'] === uuid;
  }), { seed: 20261212, numRuns: 500 });
});

t.test('promtool check metrics: the rendered text passes, a broken one does not', async (t) => {
  if (!havePromtool()) {
    t.plan(0, TOOLS_MISSING);
    return;
  }
  const weird = ['quote"d', 'back\\slash', 'new\nline', 'tab\there', 'ünïcødé ☃', '\\"\\n', ''];
  const status = statusOf([...TWO_VMS.vms, ...weird.map((name, i) => vmEntry(name, `uuid-${i}`, i % 2 === 0 ? COUNTERS : null))]);
  const good = promtoolCheck(renderMetrics(status, T0));
  t.same(good, { status: 0, output: '' }, 'valid, and no lint complaint');
  const empty = promtoolCheck(renderMetrics(statusOf([], { takenAt: null, sampleDurationMs: null }), T0));
  t.same(empty, { status: 0, output: '' }, 'families without samples are valid too');
  // Sanity: promtool does reject what an unescaped name would produce.
  const broken = promtoolCheck(renderMetrics(status, T0).replace('quote\\"d', 'quote"d'));
  t.not(broken.status, 0, 'an unescaped quote fails the check');
  t.match(broken.output, /label value/);
});

t.test('100 VMs render in well under a sample interval', async (t) => {
  const status = statusOf(Array.from({ length: 100 }, (_, i) => vmEntry(`vm-${i}`, `uuid-${i}`, COUNTERS)));
  renderMetrics(status, T0);
  const started = performance.now();
  const rounds = 100;
  let bytes = 0;
  for (let i = 0; i < rounds; i++) bytes = renderMetrics(status, T0 + i).length;
  const ms = (performance.now() - started) / rounds;
  t.comment(`100 VMs: ${bytes} bytes, ${ms.toFixed(3)} ms per render`);
  // A loose bound, so a loaded CI machine does not fail it: the interval's default is 1000 ms.
  t.ok(ms < 50, `${ms.toFixed(3)} ms per render`);
});

t.test('the README\'s metric table lists every family, in order, with its type and labels', async (t) => {
  const readme = readFileSync(fileURLToPath(new URL('../../../../README.md', import.meta.url)), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Prometheus metrics\n'));
  const rows = [...section.matchAll(/^\| `(hostinfo_[a-z_]+)` \| (gauge|counter) \|([^|]*)\|/gm)].map((m) => [m[1], m[2], m[3]!.trim()]);
  const parsed = parse(renderMetrics(TWO_VMS, T0));
  t.same(rows, parsed.families.map((family) => {
    const labels = [...new Set(family.samples.flatMap((sample) => Object.keys(sample.labels)))];
    return [family.name, family.type, labels.map((label) => `\`${label}\``).join(', ')];
  }));
});
