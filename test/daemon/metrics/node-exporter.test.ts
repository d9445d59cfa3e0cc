// End to end with the real tools: a hostinfod configured with `[metrics] textfile`, a VM (real
// paused QEMU, the test playing the guest's end of the port) whose guest gets answers of every
// kind, and Debian's node_exporter reading the daemon's textfile directory on a loopback port. The
// scrape must show hostinfo_requests_total with exactly the statuses the guest was answered, and
// promtool must accept the file as written.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { HOSTINFO_VERSION } from '../../../common/version.js';
import { withTimeout, type Teardown } from '../../helpers/logged-process.js';
import { makeSite, stageVm, startDaemon, vmStatus, waitForSidecarLine, waitForStatus } from '../../helpers/served-vm.js';
import { NODE_EXPORTER, PROMTOOL, TOOLS_MISSING, promtoolCheck } from './fixtures.js';

t.setTimeout(90_000);

const UUID = '6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5';
/** 8 tokens and no refill within the test: the 9th request on is answered 429. */
const POLICY = 'enabled = true\nallow = ["physcpus", "loadavg"]\nburst = 8\ninterval = 3600\n';
/** physcpus is allowed, kernel is a real item this policy does not allow, frobnicate no command at all. */
const REQUESTS = ['physcpus', 'loadavg', 'physcpus', 'kernel', 'physcpus', 'frobnicate', 'kernel', 'loadavg', 'physcpus', 'loadavg', 'physcpus'];
const PLANNED = { '200': 5, '403': 2, '429': 3, error: 1 };

interface Series { readonly name: string; readonly labels: Record<string, string>; readonly value: number }

/** node_exporter's output, the lines of hostinfo_* and node_textfile_* series (its labels come sorted). */
function seriesOf(text: string): Series[] {
  const series: Series[] = [];
  for (const line of text.split('\n')) {
    const match = /^((?:hostinfo|node_textfile)_[a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    series.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return series;
}

const find = (series: readonly Series[], name: string, labels: Record<string, string> = {}): Series | undefined =>
  series.find((s) => s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value));

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** node_exporter with the textfile collector alone, on a loopback port; another port if that one was taken meanwhile. */
async function startNodeExporter(t: Teardown, dir: string): Promise<{ scrape: () => Promise<string>; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(NODE_EXPORTER, ['--collector.disable-defaults', '--collector.textfile', `--collector.textfile.directory=${dir}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4096); });
    const exited = once(child, 'exit');
    t.teardown(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    });
    const scrape = async (): Promise<string> => {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      if (!response.ok) throw new Error(`node_exporter answered ${response.status}`);
      return response.text();
    };
    const up = await withTimeout((async () => {
      for (;;) {
        if (child.exitCode !== null) return false;
        if (await scrape().then(() => true, () => false)) return true;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })(), 'node_exporter to listen', 15_000);
    if (up) return { scrape, port };
    if (attempt >= 3 || !/address already in use/.test(stderr)) throw new Error(`node_exporter exited with ${child.exitCode}: ${stderr}`);
  }
}

const statusClass = (reply: string): keyof typeof PLANNED => {
  const code = /^1\.0 (\d{3}) /.exec(reply)?.[1];
  if (code === undefined) throw new Error(`not a reply: ${JSON.stringify(reply)}`);
  return code === '200' || code === '403' || code === '429' ? code : 'error';
};

t.test('node_exporter shows the requests the guest was answered, by status, and promtool accepts the file', async (t) => {
  if (!existsSync(PROMTOOL) || !existsSync(NODE_EXPORTER)) {
    t.plan(0, TOOLS_MISSING);
    return;
  }
  const started = performance.now();
  const lap = (): string => `${((performance.now() - started) / 1000).toFixed(2)} s`;
  const site = await makeSite(t, { policy: POLICY, extraConfig: '[metrics]\ntextfile = "textfile/hostinfo.prom"\n' });
  const textDir = join(site.dir, 'textfile');
  mkdirSync(textDir, { mode: 0o755 });
  const textfile = join(textDir, 'hostinfo.prom');
  await startDaemon(t, site);
  const vm = await stageVm(t, site, 'metrics1', { uuid: UUID });
  // Host data first, so no allowed request is answered 503 for want of a sample.
  await waitForSidecarLine(site, 'metrics1', (line) => line['event'] === 'host-data');
  t.comment(`daemon and VM up: ${lap()}`);

  const firstAsk = Date.now();
  const seen = { '200': 0, '403': 0, '429': 0, error: 0 };
  for (const request of REQUESTS) seen[statusClass(await vm.guest.ask(request))] += 1;
  const lastAsk = Date.now();
  t.same(seen, PLANNED, 'sanity: the guest got the answers the policy means');

  await waitForStatus(site, 'the sidecar\'s counters report', (reply) => (vmStatus(reply, 'metrics1')?.counters?.requests === REQUESTS.length ? true : undefined));
  t.comment(`guest answered and counters reported: ${lap()}`);
  const exporter = await startNodeExporter(t, textDir);
  t.comment(`node_exporter on 127.0.0.1:${exporter.port}: ${lap()}`);
  const total = (series: readonly Series[]): number =>
    series.filter((s) => s.name === 'hostinfo_requests_total' && s.labels['vm'] === 'metrics1').reduce((sum, s) => sum + s.value, 0);
  // The daemon rewrites the file every 0.2 s: the first scrape may still see a write from before the report.
  const deadline = Date.now() + 10_000;
  let series = seriesOf(await exporter.scrape());
  while (total(series) !== REQUESTS.length) {
    if (Date.now() > deadline) throw new Error(`no scrape with all ${REQUESTS.length} requests within 10 s; the last had ${total(series)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    series = seriesOf(await exporter.scrape());
  }
  t.comment(`scraped: ${lap()}`);

  const vmLabels = { vm: 'metrics1', uuid: UUID };
  for (const status of ['200', '403', '429', 'error'] as const) {
    t.equal(find(series, 'hostinfo_requests_total', { ...vmLabels, status })?.value, seen[status], `hostinfo_requests_total{status="${status}"} is what the guest saw`);
  }
  t.equal(find(series, 'node_textfile_scrape_error')?.value, 0, 'node_exporter read the file without error');
  t.ok(series.some((s) => s.name === 'node_textfile_mtime_seconds' && /hostinfo/.test(s.labels['file'] ?? '')), 'the file\'s mtime, which the dashboard\'s textfile age uses');
  t.equal(find(series, 'hostinfo_build_info', { version: HOSTINFO_VERSION })?.value, 1);
  t.equal(find(series, 'hostinfo_vms')?.value, 1);
  t.equal(find(series, 'hostinfo_vms_served')?.value, 1);
  t.equal(find(series, 'hostinfo_vm_served', vmLabels)?.value, 1);
  t.equal(find(series, 'hostinfo_sidecar_up', vmLabels)?.value, 1);
  t.equal(find(series, 'hostinfo_sidecar_restarts_total', vmLabels)?.value, 0);
  t.equal(find(series, 'hostinfo_guest_dropped_bytes_total', vmLabels)?.value, 0);
  const last = find(series, 'hostinfo_last_request_timestamp_seconds', vmLabels)?.value ?? 0;
  t.ok(last * 1000 >= firstAsk - 1 && last * 1000 <= lastAsk + 1, `last request at ${last}, between the first and the last ask`);
  const age = find(series, 'hostinfo_sample_age_seconds')?.value ?? -1;
  t.ok(age >= 0 && age < 2, `sample age ${age} s, written right after a sample`);
  t.ok((find(series, 'hostinfo_sample_duration_seconds')?.value ?? -1) > 0, 'the sample took some time');
  t.same(Object.keys(find(series, 'hostinfo_sidecar_up', vmLabels)?.labels ?? {}).sort(), ['uuid', 'vm'], 'labels: the VM\'s name and uuid, nothing per request');

  t.same(promtoolCheck(readFileSync(textfile, 'utf8')), { status: 0, output: '' }, 'promtool check metrics on the file the daemon wrote');
  t.equal(statSync(textfile).mode & 0o777, 0o644, 'readable by node_exporter\'s user');
  t.comment(`done: ${lap()}`);
});
