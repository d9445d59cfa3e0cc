// hostinfo-ctl query and reload against a real hostinfod and a staged VM (real paused QEMU, the
// test's GuestEnd as the guest): query answers what the guest would get without spending its
// tokens; reload re-reads hostinfo.toml (which nothing watches) and reports per VM what changed.

import { readFileSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { makeSite, stageVm, startDaemon, waitForSidecar, waitForSidecarLine } from '../helpers/served-vm.js';
import { ctl } from './run-ctl.js';

t.test('query: the reply the guest would get, its tokens untouched', async (t) => {
  // One token a minute: a query that took one would leave the guest a 429.
  const site = await makeSite(t, { policy: 'enabled = true\nallow = ["physcpus", "loadavg"]\nburst = 1\ninterval = 60\n' });
  await startDaemon(t, site);
  const vm = await stageVm(t, site, 'q1');
  await waitForSidecar(site, 'q1');
  for (let i = 0; i < 3; i += 1) {
    const run = ctl(site, ['query', 'q1', 'physcpus']);
    t.equal(run.status, 0, run.stderr);
    t.match(run.stdout, /^1\.0 200 \d+\n$/, `query ${i + 1}: ${run.stdout.trim()}`);
  }
  t.match(ctl(site, ['query', 'q1', 'hostname']).stdout, /^1\.0 403 hostname is not permitted for this VM\n$/, 'the VM\'s policy applies');
  t.match(await vm.guest.ask('physcpus'), /^1\.0 200 \d+$/, 'the guest still has its one token');
  t.match(await vm.guest.ask('physcpus'), /^1\.0 429 /, 'and now it is spent');
  t.match(ctl(site, ['query', 'q1', 'physcpus']).stdout, /^1\.0 429 too many requests/, 'query shows the guest is rate-limited right now');
  const audit = await waitForSidecarLine(site, 'q1', (line) => line['event'] === 'request' && line['query'] === true);
  t.match(audit, { command: 'physcpus', status: 200 }, 'queries are marked as such in the audit');
  const json = ctl(site, ['query', String(vm.qemuPid), 'loadavg', '--json']);
  t.match(JSON.parse(json.stdout), { type: 'queried', id: 'q1', reply: /^1\.0 429 / }, 'by QEMU pid, as JSON');
  const missing = ctl(site, ['query', 'nope', 'physcpus']);
  t.match([missing.status, missing.stderr], [1, /no VM "nope" is served/]);
});

t.test('reload: the host switch turned off reaches a running VM, and the report says so', async (t) => {
  const site = await makeSite(t);
  await startDaemon(t, site);
  const vm = await stageVm(t, site, 'r1');
  await waitForSidecar(site, 'r1');
  t.match(await vm.guest.ask('physcpus'), /^1\.0 200 /);
  const unchanged = ctl(site, ['reload']);
  t.equal(unchanged.status, 0, unchanged.stderr);
  t.match(unchanged.stdout, /^reloaded .*hostinfo\.toml and the policies of 1 VMs\n  r1: unchanged \(served by .*default\.toml: physcpus loadavg physmem uptime; burst 1000, every 0\.001s\)\n$/);
  writeFileSync(site.config, readFileSync(site.config, 'utf8').replace('enabled = true', 'enabled = false'));
  const off = ctl(site, ['reload', '--json']);
  t.equal(off.status, 0, off.stderr);
  t.match(JSON.parse(off.stdout), { type: 'reloaded', vms: [{ id: 'r1', before: { served: true }, after: { served: false, reason: /disabled|switch|enabled/ } }] });
  t.match(await vm.guest.ask('physcpus'), /^1\.0 403 hostinfo is not enabled for this VM$/, 'the guest is refused from then on');
  writeFileSync(site.config, readFileSync(site.config, 'utf8').replace('enabled = false', 'enabled = "yes"'));
  const broken = ctl(site, ['reload']);
  t.equal(broken.status, 1, 'an invalid config is refused');
  t.match(broken.stderr, /hostinfo\.toml.*enabled/, `and named: ${broken.stderr.trim()}`);
  t.match(await vm.guest.ask('physcpus'), /^1\.0 403 /, 'the previous config stays in force');
});
