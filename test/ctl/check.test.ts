// hostinfo-ctl check on real files, with no daemon anywhere: exit status, the exact ConfigError
// lines, FILE operands, and that its verdict is the daemon's own (the daemon refuses the same host
// config with the same line; the daemon's policy lookup reports the same policy error).

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { findVmPolicy } from '../../policies/policy-lookup.js';
import { DAEMON, makeSite, writePolicy, type Site } from '../helpers/served-vm.js';
import { CTL, ctl } from './run-ctl.js';

const UNKNOWN_KEY = 'enabled = true\nburts = 5\n';
const BURST_ZERO = 'enabled = true\nburst = 0\n';

/** The line hostinfod logs when it refuses to start with the site's config. */
function daemonRefusal(site: Site): string {
  const run = spawnSync(process.execPath, [DAEMON, '--config', site.config, '--runtime-dir', site.runtime], { encoding: 'utf8', timeout: 30_000 });
  const failed = run.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>).find((line) => line['event'] === 'start-failed');
  return `${run.status} ${String(failed?.['err'])}`;
}

/** The error the daemon's lookup gives a VM named `name`. */
async function lookupError(site: Site, name: string): Promise<string> {
  const lookup = await findVmPolicy(site.policies, { name });
  return lookup.kind === 'invalid' ? lookup.error.message : `lookup ${lookup.kind}`;
}

t.test('a valid site: the config and every policy, exit 0, nothing created', async (t) => {
  const site = await makeSite(t);
  await writePolicy(site, 'web1', 'enabled = true\nallow = ["physcpus"]\nburst = 3\n');
  const run = ctl(site, ['check']);
  t.equal(run.status, 0, run.stderr);
  t.equal(run.stdout, '3 files checked, 0 errors\n', 'hostinfo.toml, default.toml, web1.toml');
  t.equal(run.stderr, '');
  t.notOk(existsSync(site.runtime), 'no runtime directory, no socket: check starts and touches nothing');
  const json = ctl(site, ['check', '--json']);
  t.equal(json.status, 0);
  t.same(JSON.parse(json.stdout), {
    ok: true,
    files: [
      { file: site.config, kind: 'host config', valid: true },
      { file: join(site.policies, 'default.toml'), kind: 'policy', valid: true },
      { file: join(site.policies, 'web1.toml'), kind: 'policy', valid: true },
    ],
    errors: [],
    notes: [],
  });
});

t.test('broken policies: each error as its ConfigError line, exit 1', async (t) => {
  const site = await makeSite(t);
  const typo = await writePolicy(site, 'web1', UNKNOWN_KEY);
  const zero = await writePolicy(site, 'web2', BURST_ZERO);
  const typoLine = `${typo}:2: key "burts": unknown key: expected one of enabled, allow, deny, interval, burst: received "burts"`;
  const zeroLine = `${zero}:2: key "burst": expected an integer >= 1: received 0`;
  const run = ctl(site, ['check']);
  t.equal(run.status, 1);
  t.equal(run.stdout, `${typoLine}\n${zeroLine}\n4 files checked, 2 errors\n`);
  t.equal(await lookupError(site, 'web1'), typoLine, 'the daemon\'s lookup fails web1 with the same line');
  t.equal(await lookupError(site, 'web2'), zeroLine, 'and web2');
  const json = JSON.parse(ctl(site, ['check', '--json']).stdout) as { ok: boolean; files: { file: string; valid: boolean }[]; errors: unknown[] };
  t.equal(json.ok, false);
  t.same(json.files.filter((file) => !file.valid).map((file) => file.file), [typo, zero]);
  t.same(json.errors[1], { code: 'CONFIG_RANGE', file: zero, line: 2, key: 'burst', expected: 'an integer >= 1', received: '0', message: zeroLine });
});

t.test('a host config with a bad value: the daemon\'s refusal, word for word', async (t) => {
  const site = await makeSite(t, { extraConfig: '[guest]\nlines_per_second = 0\n' });
  await writePolicy(site, 'web1', UNKNOWN_KEY);
  const line = `${site.config}:5: key "guest.lines_per_second": expected an integer >= 1: received 0`;
  const run = ctl(site, ['check']);
  t.equal(run.status, 1);
  t.equal(run.stdout, `${line}\nnote: policies not checked: the host config must be valid first\n1 file checked, 1 error\n`);
  t.equal(daemonRefusal(site), `1 ${line}`, 'hostinfod refuses to start with the same line');
  t.notOk(existsSync(site.runtime));
});

t.test('admin_group naming no group: caught here as the daemon catches it at start', async (t) => {
  const site = await makeSite(t, { extraConfig: 'admin_group = "hostinfo-no-such-group"\n' });
  const line = `${site.config}: key "admin_group": unknown group: expected a group in /etc/group or a numeric gid: received "hostinfo-no-such-group"`;
  const run = ctl(site, ['check']);
  t.same([run.status, run.stdout], [1, `${line}\n2 files checked, 1 error\n`]);
  t.equal(daemonRefusal(site), `1 ${line}`);
});

t.test('FILE operands: only those, the config file as a config, the rest as policies', async (t) => {
  const site = await makeSite(t);
  const typo = await writePolicy(site, 'web1', UNKNOWN_KEY);
  await writePolicy(site, 'web2', BURST_ZERO);
  const fine = await writePolicy(site, 'web3', 'enabled = true\n');
  const one = ctl(site, ['check', typo]);
  t.equal(one.status, 1);
  t.equal(one.stdout, `${typo}:2: key "burts": unknown key: expected one of enabled, allow, deny, interval, burst: received "burts"\n1 file checked, 1 error\n`, 'web2\'s error is not reported');
  t.same([ctl(site, ['check', fine]).status, ctl(site, ['check', fine]).stdout], [0, '1 file checked, 0 errors\n']);
  const config = ctl(site, ['check', site.config]);
  t.same([config.status, config.stdout], [0, '1 file checked, 0 errors\n'], 'the config alone: its policy directory is not read');
  const relative = spawnSync(CTL, ['--config', 'hostinfo.toml', 'check', '--json', 'policies/web3.toml', './hostinfo.toml'], { cwd: site.dir, encoding: 'utf8', env: { ...process.env, HOSTINFO_NODE: process.execPath } });
  t.equal(relative.status, 0, relative.stderr);
  t.same((JSON.parse(relative.stdout) as { files: unknown }).files, [
    { file: fine, kind: 'policy', valid: true },
    { file: site.config, kind: 'host config', valid: true },
  ], 'relative FILEs from the cwd; ./hostinfo.toml is the config file --config names');
  const missing = join(site.policies, 'nothere.toml');
  const gone = ctl(site, ['check', missing]);
  t.same([gone.status, gone.stdout], [1, `${missing}: cannot read policy: expected a readable file: received ENOENT\n1 file checked, 1 error\n`]);
  const usage = ctl(site, ['check', '']);
  t.same([usage.status, usage.stdout], [2, '']);
  t.match(usage.stderr, /check takes file paths, not an empty one/);
});

t.test('what the lookup can never use, and a missing policy directory', async (t) => {
  const site = await makeSite(t);
  await writePolicy(site, '.hidden', 'enabled = true\n');
  await mkdir(join(site.policies, 'sub.toml'));
  const run = ctl(site, ['check']);
  t.equal(run.status, 0, 'notes are not errors');
  t.equal(run.stdout, [
    `note: ${join(site.policies, '.hidden.toml')} is never used: ".hidden" is not a VM name, uuid or "default" the lookup tries`,
    `note: ${join(site.policies, 'sub.toml')} is a directory, not a policy`,
    '3 files checked, 0 errors',
  ].join('\n') + '\n');

  const elsewhere = await makeSite(t);
  await writeFile(elsewhere.config, 'enabled = true\npolicy_dir = "no-such-dir"\n');
  const missing = ctl(elsewhere, ['check']);
  t.equal(missing.status, 1);
  t.equal(missing.stdout, `${elsewhere.config}: key "policy_dir": cannot list the policy directory: expected a readable directory of policies: received ${join(elsewhere.dir, 'no-such-dir')}: ENOENT\n1 file checked, 1 error\n`);
});
