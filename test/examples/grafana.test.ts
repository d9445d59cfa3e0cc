// The example Grafana dashboard: it must load as JSON, import with any Prometheus (its data source
// is the ${DS_PROMETHEUS} input), and ask only for series that exist: every hostinfo_* name in a
// query is one renderMetrics emits, every label it groups or filters VMs by is one those series
// have, and every expression is PromQL that Prometheus's own parser (promtool) accepts.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { renderMetrics } from '../../daemon/metrics/prometheus-text.js';
import { PROMTOOL, T0, TOOLS_MISSING, TWO_VMS, havePromtool } from '../daemon/metrics/fixtures.js';

const DASHBOARD = fileURLToPath(new URL('../../../examples/grafana/hostinfo-dashboard.json', import.meta.url));
const DS = '${DS_PROMETHEUS}';
/** node_exporter's own series that the dashboard may use beside hostinfo's (the e2e test sees it exported). */
const NODE_EXPORTER_SERIES = new Set(['node_textfile_mtime_seconds']);
/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = new Set(['instance', 'job']);

interface Query { readonly where: string; readonly expr: string }

/** Metric name -> label names, from the samples of a rendered status (families with no sample do not count). */
function emitted(text: string): Map<string, Set<string>> {
  const families = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{(.*)\})? /.exec(line);
    if (match === null) continue;
    const labels = families.get(match[1]!) ?? new Set<string>();
    for (const [, key] of (match[2] ?? '').matchAll(/([a-z_]+)="/g)) labels.add(key!);
    families.set(match[1]!, labels);
  }
  return families;
}

function queries(dashboard: Record<string, unknown>): Query[] {
  const found: Query[] = [];
  const panels = (dashboard['panels'] as Record<string, unknown>[] | undefined) ?? [];
  for (const panel of panels) {
    for (const target of (panel['targets'] as Record<string, unknown>[] | undefined) ?? []) {
      found.push({ where: `panel "${String(panel['title'])}" ${String(target['refId'])}`, expr: String(target['expr']) });
    }
  }
  const variables = ((dashboard['templating'] as { list?: Record<string, unknown>[] } | undefined)?.list) ?? [];
  for (const variable of variables) {
    const query = variable['query'] as { query?: unknown } | string;
    found.push({ where: `variable $${String(variable['name'])}`, expr: String(typeof query === 'string' ? query : query.query) });
  }
  return found;
}

/** Everything wrong with a dashboard; empty when it only asks for what exists. */
export function dashboardProblems(dashboard: Record<string, unknown>, series: Map<string, Set<string>>): string[] {
  const problems: string[] = [];
  const inputs = (dashboard['__inputs'] as Record<string, unknown>[] | undefined) ?? [];
  if (!inputs.some((input) => input['name'] === 'DS_PROMETHEUS' && input['type'] === 'datasource' && input['pluginId'] === 'prometheus')) {
    problems.push('no DS_PROMETHEUS data source input');
  }
  const panels = (dashboard['panels'] as Record<string, unknown>[] | undefined) ?? [];
  const ids = panels.map((panel) => panel['id']);
  if (new Set(ids).size !== ids.length) problems.push(`panel ids repeat: ${ids.join(' ')}`);
  const variables = ((dashboard['templating'] as { list?: Record<string, unknown>[] } | undefined)?.list) ?? [];
  const users = [
    ...panels.filter((p) => p['type'] !== 'row').map((panel) => ({ where: `panel "${String(panel['title'])}"`, source: panel['datasource'] })),
    ...panels.flatMap((panel) => ((panel['targets'] as Record<string, unknown>[] | undefined) ?? []).map((target) => ({ where: `panel "${String(panel['title'])}" ${String(target['refId'])}`, source: target['datasource'] }))),
    ...variables.map((variable) => ({ where: `variable $${String(variable['name'])}`, source: variable['datasource'] })),
  ];
  for (const { where, source } of users) {
    const uid = (source as { uid?: unknown } | undefined)?.uid;
    if (uid !== DS) problems.push(`${where}: data source ${JSON.stringify(uid)}, not ${DS}`);
  }
  for (const panel of panels.filter((p) => p['type'] !== 'row')) {
    if (((panel['targets'] as unknown[] | undefined) ?? []).length === 0) problems.push(`panel "${String(panel['title'])}" has no query`);
  }
  for (const { where, expr } of queries(dashboard)) {
    for (const [name] of expr.matchAll(/\b(?:hostinfo|node)_[a-z_]+/g)) {
      if (!series.has(name) && !NODE_EXPORTER_SERIES.has(name)) problems.push(`${where}: ${name} is not a series renderMetrics emits`);
    }
    // Labels a hostinfo series is filtered, grouped or listed by must be its own or the target's.
    for (const [, name, selector] of expr.matchAll(/\b(hostinfo_[a-z_]+)\{([^}]*)\}/g)) {
      for (const [, label] of selector!.matchAll(/([a-z_]+)\s*(?:=~|!=|!~|=)/g)) {
        if (series.has(name!) && !series.get(name!)!.has(label!) && !TARGET_LABELS.has(label!)) problems.push(`${where}: ${name} has no label ${label}`);
      }
    }
    for (const [, name, label] of expr.matchAll(/label_values\((hostinfo_[a-z_]+)(?:\{[^}]*\})?,\s*([a-z_]+)\)/g)) {
      if (series.has(name!) && !series.get(name!)!.has(label!) && !TARGET_LABELS.has(label!)) problems.push(`${where}: ${name} has no label ${label}`);
    }
  }
  return problems;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Record<string, unknown>;
const series = emitted(renderMetrics(TWO_VMS, T0));

t.test('the dashboard parses, takes its data source as an input, and names only series that exist', async (t) => {
  t.ok(series.has('hostinfo_requests_total') && series.get('hostinfo_requests_total')!.has('status'), 'sanity: the rendered sample has the request series');
  t.same(dashboardProblems(dashboard, series), []);
  const exprs = queries(dashboard).map((query) => query.expr).join('\n');
  t.match(exprs, /sum by \(vm, status\) \(rate\(hostinfo_requests_total\{[^}]*\}\[5m\]\)\)/, 'per-VM request rate by status');
  for (const name of ['hostinfo_sample_age_seconds', 'hostinfo_sidecar_restarts_total', 'hostinfo_sidecar_up', 'hostinfo_guest_dropped_bytes_total']) {
    t.match(exprs, name, `a panel shows ${name}`);
  }
});

t.test('the checks catch a dashboard that asks for something that does not exist', async (t) => {
  const text = JSON.stringify(dashboard);
  const mutate = (from: RegExp, to: string): Record<string, unknown> => {
    const changed = text.replace(from, to);
    t.not(changed, text, `mutation ${from} applies`);
    return JSON.parse(changed) as Record<string, unknown>;
  };
  t.match(dashboardProblems(mutate(/hostinfo_requests_total/, 'hostinfo_request_total'), series), [/hostinfo_request_total is not a series renderMetrics emits/]);
  t.match(dashboardProblems(mutate(/hostinfo_sidecar_up\{/, 'hostinfo_sidecar_up{host=\\"a\\", '), series), [/hostinfo_sidecar_up has no label host/]);
  t.match(dashboardProblems(mutate(/label_values\(hostinfo_vm_served\{instance=~\\"\$instance\\"\}, vm\)/, 'label_values(hostinfo_vms, vm)'), series), [/hostinfo_vms has no label vm/]);
  t.match(dashboardProblems(mutate(/"uid":"\$\{DS_PROMETHEUS\}"/, '"uid":"my-prometheus"'), series), [/data source "my-prometheus"/]);
});

t.test('every query is PromQL that promtool parses', async (t) => {
  if (!havePromtool()) {
    t.plan(0, TOOLS_MISSING);
    return;
  }
  // Grafana's variables are not PromQL; each becomes the match-all its "All" option sends. The
  // label_values() of variables is Grafana's own syntax: its metric selector is what is checked.
  const exprs = queries(dashboard).map(({ where, expr }) => ({ where, expr: expr.replace(/label_values\(([^,]+(?:\{[^}]*\})?),\s*[a-z_]+\)/, '$1').replace(/\$(instance|vm)\b/g, '.*') }));
  const dir = mkdtempSync(join(tmpdir(), 'hostinfo-grafana-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rules = join(dir, 'rules.yml');
  // JSON strings are YAML double-quoted scalars.
  writeFileSync(rules, `groups:\n  - name: dashboard\n    rules:\n${exprs.map((e, i) => `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(e.expr)}\n`).join('')}`);
  const run = spawnSync(PROMTOOL, ['check', 'rules', rules], { encoding: 'utf8', timeout: 30_000 });
  t.equal(run.status, 0, `promtool check rules: ${run.stdout}${run.stderr}`);
  t.match(run.stdout, `SUCCESS: ${exprs.length} rules found`);
});
