// hostinfo-ctl metrics against a real hostinfod with two real paused QEMUs, one of whose guests made
// requests: promtool accepts the text, hostinfo_vms is the status' VM count, the request counters
// are the guest's, and the text is what the daemon writes to its [metrics] textfile.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { promtoolCheck, havePromtool, TOOLS_MISSING } from '../daemon/metrics/fixtures.js';
import { makeSite, stageVm, startDaemon, vmStatus, waitForStatus, writePolicy } from '../helpers/served-vm.js';
import { ctl } from './run-ctl.js';

/** Sample age and duration change with every sample; everything else is the same status. */
const steady = (text: string): string[] => text.split('\n').filter((line) => !/^hostinfo_sample_(age|duration)_seconds /.test(line));
/** web1 has no -uuid: the status (and so the label) gives it a nil uuid of its own. */
const WEB1 = 'hostinfo_requests_total{vm="web1",uuid="00000000-0000-0000-0000-000000000000-web1",';
const sample = (text: string, series: string): string | undefined => text.split('\n').find((line) => line.startsWith(`${series} `))?.slice(series.length + 1);

t.test('metrics: promtool-valid, the status\' counts, the textfile\'s text', { skip: havePromtool() ? false : TOOLS_MISSING }, async (t) => {
  const site = await makeSite(t, { extraConfig: '[metrics]\ntextfile = "textfile/hostinfo.prom"\n' });
  mkdirSync(join(site.dir, 'textfile'), { mode: 0o755 });
  await writePolicy(site, 'quiet', 'enabled = false\n');
  await startDaemon(t, site);
  const web1 = await stageVm(t, site, 'web1');
  await stageVm(t, site, 'quiet');
  for (const item of ['physcpus', 'loadavg', 'kernel']) await web1.guest.ask(item);
  const reply = await waitForStatus(site, 'web1\'s three requests counted', (found) => (vmStatus(found, 'web1')?.counters?.requests === 3 ? found : undefined));

  const run = ctl(site, ['metrics']);
  t.equal(run.status, 0, run.stderr);
  t.same(promtoolCheck(run.stdout), { status: 0, output: '' }, 'promtool check metrics accepts it without a lint');
  t.equal(reply.vms.length, 2);
  t.equal(sample(run.stdout, 'hostinfo_vms'), String(reply.vms.length), 'hostinfo_vms is the status\' VM count');
  t.equal(sample(run.stdout, 'hostinfo_vms_served'), '1', 'quiet is registered, not served');
  t.equal(sample(run.stdout, `${WEB1}status="200"}`), '2');
  t.equal(sample(run.stdout, `${WEB1}status="403"}`), '1', 'kernel is not in the policy');

  // The textfile is rewritten after every sample (0.2 s here): one written since the counters came in.
  const written = await waitForStatus(site, 'a textfile with web1\'s counters', () => {
    const text = readFileSync(join(site.dir, 'textfile', 'hostinfo.prom'), 'utf8');
    return sample(text, `${WEB1}status="403"}`) === '1' ? text : undefined;
  });
  t.same(steady(run.stdout), steady(written), 'the same text as the daemon\'s textfile, but for the sample\'s age and duration');
});

t.test('metrics with no daemon: exit 3', async (t) => {
  const site = await makeSite(t);
  const run = ctl(site, ['metrics']);
  t.same([run.status, run.stdout], [3, '']);
  t.match(run.stderr, /no hostinfod answers on /);
});
