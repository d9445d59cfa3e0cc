// admin_group against a real root hostinfod: the control socket is 0660 of that group, a member
// (nobody with the group as its one supplementary group) runs hostinfo-ctl, anyone else gets exit 4
// with the group named, and the group opens the socket only (not vms/, not logs/). With `group`
// set too, and different, the runtime directory stays `group`'s and others may only traverse it.
// Existing system groups (adm, users) are used, so nothing is added to /etc/group.

import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { CONTROL_SOCKET, LOGS_DIR, VMS_DIR } from '../../common/runtime-tree.js';
import { findGroupId, GROUP_FILE } from '../../daemon/group.js';
import { connectAs, listAs, needsRootAndSetpriv, NOBODY, type As } from '../helpers/as-user.js';
import { makeSite, startDaemon, type Site } from '../helpers/served-vm.js';
import { CTL } from './run-ctl.js';

const groups = readFileSync(GROUP_FILE, 'utf8');
const ADMINS = findGroupId(groups, 'adm');
const VM_USERS = findGroupId(groups, 'users');
const skip = needsRootAndSetpriv || (ADMINS === undefined || VM_USERS === undefined ? 'needs the system groups adm and users' : false);

const as = (gid: number | 'none'): As => ({ ...NOBODY, groups: gid });

/** hostinfo-ctl as nobody with `groups`, in a bare environment (env -i: no NODE_OPTIONS from tap). */
function ctlAs(site: Site, who: As, args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const groupArgs = who.groups === 'none' ? ['--clear-groups'] : [`--groups=${who.groups}`];
  return spawnSync('env', ['-i', 'PATH=/usr/bin:/bin', `HOSTINFO_NODE=${process.execPath}`, 'setpriv', `--reuid=${who.user}`, `--regid=${who.group}`, ...groupArgs, CTL, '--config', site.config, ...args], { encoding: 'utf8', timeout: 30_000 });
}

const modeAndGroup = (path: string): [string, number] => {
  const stat = statSync(path);
  return [(stat.mode & 0o7777).toString(8), stat.gid];
};

t.test('admin_group alone: the socket is the group\'s, nothing else is', { skip }, async (t) => {
  const admins = ADMINS!;
  const site = await makeSite(t, { extraConfig: 'admin_group = "adm"\n' });
  await startDaemon(t, site);
  t.same(modeAndGroup(site.control), ['660', admins], 'hostinfod.sock 0660 of adm');
  t.same(modeAndGroup(site.runtime), ['750', admins], 'the runtime directory 0750 of adm: members reach the socket');
  t.same([modeAndGroup(site.vms)[0], modeAndGroup(join(site.runtime, LOGS_DIR))[0]], ['700', '700'], 'vms/ and logs/ stay owner-only');

  const member = ctlAs(site, as(admins), ['status']);
  t.equal(member.status, 0, `a member of adm runs status: ${member.stderr}`);
  t.match(member.stdout, /^hostinfod \S+, pid \d+, up /);
  const json = ctlAs(site, as(admins), ['status', '--json']);
  t.match(JSON.parse(json.stdout), { type: 'status', vms: [] }, 'and --json');
  t.same([listAs(site.vms, as(admins)), listAs(join(site.runtime, LOGS_DIR), as(admins))], ['EACCES', 'EACCES'], 'the group opens neither vms/ nor logs/');

  const outsider = ctlAs(site, as('none'), ['status']);
  t.equal(outsider.status, 4, outsider.stderr);
  t.match(outsider.stderr, new RegExp(`permission denied on ${join(site.runtime, CONTROL_SOCKET)}: the control socket is for the daemon's user and members of group adm \\(uid 65534 is neither`));
  t.equal(outsider.stdout, '');
});

t.test('group and admin_group both, different: 0751 of group, the socket 0660 of admin_group', { skip }, async (t) => {
  const admins = ADMINS!;
  const vmUsers = VM_USERS!;
  const site = await makeSite(t, { extraConfig: 'group = "users"\nadmin_group = "adm"\n' });
  await startDaemon(t, site);
  t.same(modeAndGroup(site.runtime), ['751', vmUsers], 'the runtime directory stays group\'s, others may only traverse');
  t.same(modeAndGroup(site.vms), ['1770', vmUsers], 'vms/ as with group alone');
  t.same(modeAndGroup(site.control), ['660', admins]);
  t.equal(modeAndGroup(join(site.runtime, LOGS_DIR))[0], '700');

  t.equal(ctlAs(site, as(admins), ['status']).status, 0, 'an admin reaches the socket through the search bit');
  t.equal(listAs(site.runtime, as(admins)), 'EACCES', 'but cannot list the runtime directory');
  t.equal(listAs(site.vms, as(admins)), 'EACCES', 'nor vms/');
  t.same(listAs(site.runtime, as(vmUsers)).split(',').sort(), [CONTROL_SOCKET, LOGS_DIR, VMS_DIR].sort(), 'a member of group lists the runtime directory as before');
  const vmUser = ctlAs(site, as(vmUsers), ['status']);
  t.same([vmUser.status, /members of group adm/.test(vmUser.stderr)], [4, true], `group gives no control socket: ${vmUser.stderr}`);
  t.equal(connectAs(site.control, as('none')), 'EACCES', 'anyone else: the socket\'s own mode refuses the connect');
  t.same([listAs(site.runtime, as('none')), listAs(site.vms, as('none'))], ['EACCES', 'EACCES']);
});

t.test('admin_group equal to group: one group for both, 0750', { skip }, async (t) => {
  const admins = ADMINS!;
  const site = await makeSite(t, { extraConfig: 'group = "adm"\nadmin_group = "adm"\n' });
  await startDaemon(t, site);
  t.same([modeAndGroup(site.runtime), modeAndGroup(site.vms), modeAndGroup(site.control)], [['750', admins], ['1770', admins], ['660', admins]]);
  t.equal(ctlAs(site, as(admins), ['status']).status, 0);
  t.equal(ctlAs(site, as('none'), ['status']).status, 4);
});
