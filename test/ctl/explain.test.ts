// hostinfo-ctl explain against a real hostinfod and real paused QEMUs (stageVm): which file
// applies and why, every candidate, the effective settings, and the daemon's decision beside the
// files'. The disagreement case is made deterministic through the host switch: the daemon re-reads
// the policy directory by itself whenever it changes (daemon/policy-source.ts watches it), but
// hostinfo.toml, outside it, only on a reload.

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { explainText, type Explanation } from '../../ctl/explain.js';
import { makeSite, startDaemon, stageVm, vmStatus, waitForStatus, writePolicy } from '../helpers/served-vm.js';
import { ctl } from './run-ctl.js';

const UUID = '5f0c2a8e-3b1d-4c6e-9a7f-1e2d3c4b5a69';
const NAME_POLICY = 'enabled = true\nallow = ["physcpus", "loadavg", "uptime"]\ndeny = ["uptime"]\nburst = 7\ninterval = 2\n';

t.test('explain: the name file against default.toml, text and --json, and a stale decision', async (t) => {
  const site = await makeSite(t);
  const named = await writePolicy(site, 'web1', NAME_POLICY);
  const fallback = join(site.policies, 'default.toml');
  await startDaemon(t, site);
  const web1 = await stageVm(t, site, 'web1', { uuid: UUID });
  await stageVm(t, site, 'db1');
  await waitForStatus(site, 'both VMs decided', (reply) => (vmStatus(reply, 'web1')?.served === true && vmStatus(reply, 'db1')?.served === true ? true : undefined));

  const run = ctl(site, ['explain', 'web1']);
  t.equal(run.status, 0, run.stderr);
  const lines = run.stdout.split('\n');
  t.equal(lines[0], `vm:          web1 (name web1, uuid ${UUID}, QEMU pid ${web1.qemuPid})`);
  t.equal(lines[1], `host switch: on (enabled = true in ${site.config})`);
  t.equal(lines[2], `policy dir:  ${site.policies}`);
  t.equal(lines[3], 'looked at:');
  t.match(lines[4], new RegExp(`^  1\\. ${join(site.policies, `${UUID}.toml`)}\\s+uuid\\s+missing$`), 'the uuid file first: missing');
  t.match(lines[5], new RegExp(`^  2\\. ${named}\\s+name\\s+exists: applies$`), 'the name file: applies');
  t.match(lines[6], new RegExp(`^  3\\. ${fallback}\\s+default\\s+not read \\(${named} comes first\\), exists$`), 'default.toml is not read, though it exists');
  t.same(lines.slice(7), [
    `policy:      ${named}: the VM's name, web1`,
    'enabled:     true',
    'items:       physcpus loadavg',
    'interval:    2s',
    'burst:       7',
    `files say:   served by ${named}: physcpus loadavg; burst 7, every 2s`,
    `daemon says: served by ${named}: physcpus loadavg; burst 7, every 2s`,
    'vhostmd:     off: this VM has no vhostmd port ([vhostmd] enabled = false in hostinfo.toml)',
    '',
  ], 'allow minus deny, the policy\'s rate; the daemon agrees');
  t.equal(ctl(site, ['explain', UUID]).stdout, run.stdout, 'found by uuid');
  t.equal(ctl(site, ['explain', String(web1.qemuPid)]).stdout, run.stdout, 'and by QEMU pid');

  const json = ctl(site, ['explain', 'db1', '--json']);
  t.equal(json.status, 0, json.stderr);
  const db1 = JSON.parse(json.stdout) as Explanation;
  t.match(db1, {
    vm: { id: 'db1', name: 'db1', pid: Number },
    config: site.config,
    hostSwitch: true,
    policyDir: site.policies,
    candidates: [
      { file: join(site.policies, 'db1.toml'), why: 'name', read: true, exists: false, error: null },
      { file: fallback, why: 'default', read: true, exists: true, error: null },
    ],
    skipped: ['uuid: none given (QEMU\'s -uuid), no <uuid>.toml'],
    lookup: 'found',
    policy: { file: fallback, why: 'default', enabled: true, items: ['physcpus', 'loadavg', 'physmem', 'uptime'], intervalSeconds: 0.001, burst: 1000 },
    error: null,
    decision: { served: true, reason: null, file: fallback, items: ['physcpus', 'loadavg', 'physmem', 'uptime'], limit: { intervalMs: 1, burst: 1000 } },
    agrees: true,
    vhostmd: { port: false, enabled: false },
  });
  t.same(db1.daemon, db1.decision, 'the daemon\'s decision, in the same shape');
  t.equal(db1.candidates.length, 2, 'no uuid candidate at all');

  // Switch the host off without a reload: only a reload (or a policy change) makes the daemon read it.
  const config = await readFile(site.config, 'utf8');
  await writeFile(site.config, config.replace('enabled = true', 'enabled = false'));
  const stale = ctl(site, ['explain', 'web1']);
  t.equal(stale.status, 0);
  t.match(stale.stdout, `host switch: off (enabled is not true in ${site.config})\n`);
  t.match(stale.stdout, `files say:   not served: host switch is off (enabled is not true in ${site.config})\ndaemon says: served by ${named}: `);
  t.match(stale.stdout, /\nnote: the daemon decided otherwise than the files say now: .*hostinfo-ctl reload applies them now/);
  t.equal((JSON.parse(ctl(site, ['explain', 'web1', '--json']).stdout) as Explanation).agrees, false);
  t.equal(ctl(site, ['reload']).status, 0);
  const applied = JSON.parse(ctl(site, ['explain', 'web1', '--json']).stdout) as Explanation;
  t.match(applied, { agrees: true, daemon: { served: false, reason: /^host switch is off/ } }, 'after hostinfo-ctl reload the two agree');
});

t.test('explain: an invalid specific policy fails closed, and an unknown VM', async (t) => {
  const site = await makeSite(t);
  const named = await writePolicy(site, 'web2', 'enabled = true\nburst = 0\n');
  await startDaemon(t, site);
  await stageVm(t, site, 'web2');
  await waitForStatus(site, 'web2 refused', (reply) => (vmStatus(reply, 'web2')?.reason?.startsWith('invalid policy') === true ? true : undefined));
  const run = ctl(site, ['explain', 'web2']);
  t.equal(run.status, 0, run.stderr);
  t.match(run.stdout, new RegExp(`\\n  1\\. ${named}\\s+name\\s+exists: applies\\n  2\\. ${join(site.policies, 'default.toml')}\\s+default\\s+not read`));
  t.match(run.stdout, `\npolicy:      invalid: ${named}:2: key "burst": expected an integer >= 1: received 0\n`);
  t.match(run.stdout, `\nfiles say:   not served: invalid policy, failing closed: ${named}:2: key "burst"`);
  t.notMatch(run.stdout, /\nnote: /, 'the daemon decided the same');
  const missing = ctl(site, ['explain', 'nosuchvm']);
  t.same([missing.status, missing.stdout], [1, '']);
  t.match(missing.stderr, /no VM "nosuchvm" is registered/);
});

t.test('explain: a VM registered without a name is looked up by its uuid and default.toml only', async (t) => {
  const site = await makeSite(t);
  // A file named like its directory: the daemon never reads it for a VM that has no name.
  await writePolicy(site, 'anon', 'enabled = true\nallow = ["physcpus", "uptime"]\n');
  const fallback = await writePolicy(site, 'default', 'enabled = true\nallow = ["loadavg"]\n');
  await startDaemon(t, site);
  await stageVm(t, site, 'anon', { uuid: UUID, unnamed: true });
  await waitForStatus(site, 'anon decided', (reply) => (vmStatus(reply, 'anon')?.served === true ? true : undefined));
  t.match(vmStatus(await waitForStatus(site, 'anon', (reply) => reply), 'anon'), { registered: { name: null, uuid: UUID }, items: ['loadavg'] }, 'the status says what was registered; the daemon applied default.toml');
  const explained = JSON.parse(ctl(site, ['explain', 'anon', '--json']).stdout) as Explanation;
  t.same(explained.candidates.map((candidate) => candidate.why), ['uuid', 'default'], 'no <name>.toml candidate: there is no name');
  t.equal(explained.candidates.at(-1)?.file, fallback);
  t.ok(explained.skipped.includes('name: none given (QEMU\'s -name), no <name>.toml'), JSON.stringify(explained.skipped));
  t.match(explained, { agrees: true, decision: { items: ['loadavg'] } }, 'explained as decided');
});

t.test('explain: the vhostmd line says whether the VM has the port, and why not', async (t) => {
  const base: Explanation = {
    vm: { id: 'v', name: 'v', uuid: UUID, pid: 2 }, config: '/h.toml', hostSwitch: true, policyDir: '/p', candidates: [], skipped: [], lookup: 'none', policy: null, error: null,
    decision: { served: false, reason: 'x', file: null, items: [], limit: null }, daemon: { served: false, reason: 'x', file: null, items: [], limit: null }, agrees: true,
    vhostmd: { port: true, enabled: true },
  };
  const line = (vhostmd: Explanation['vhostmd']): string | undefined => explainText({ ...base, vhostmd }).split('\n').find((l) => l.startsWith('vhostmd:'));
  t.equal(line({ port: true, enabled: true }), 'vhostmd:     on: port org.github.vhostmd.1, answered under the policy above (same items, same token bucket)');
  t.equal(line({ port: false, enabled: true }), 'vhostmd:     off: this VM has no vhostmd port ([vhostmd] enabled = true in hostinfo.toml, but the VM was started before that or attached without --vhostmd-socket)');
  t.equal(line({ port: null, enabled: false }), 'vhostmd:     unknown (the daemon does not say; [vhostmd] enabled = false in hostinfo.toml)');
});
