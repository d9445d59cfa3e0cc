// File modes of the runtime tree as common/runtime-tree.ts documents them, with a VM started by the
// real bin/hostinfo-qemu front, and what another local user can reach: `nobody` (no groups)
// cannot connect to the control socket nor to a VM's QMP or guest socket; a member of the
// configured `group` may add VM directories under vms/ (sticky) and still reaches neither the
// control socket (owner-only in every configuration) nor any VM's sockets.

import { once } from 'node:events';
import { chmod, readdir, rmdir, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { connectAs, listAs, NOBODY, needsRootAndSetpriv, openAs, runNodeAs, type As } from '../helpers/as-user.js';
import { launchVm, makeSite, PAUSED_VM, startBareDaemon, waitForSidecar } from '../helpers/served-vm.js';

const GROUP = 'audio';
const GROUP_ID = 29;
const MEMBER: As = { user: 'nobody', group: 'nogroup', groups: GROUP_ID };

t.setTimeout(90_000);

const mode = async (path: string): Promise<string> => ((await stat(path)).mode & 0o7777).toString(8);

t.test('default: owner-only tree; nobody reaches no socket', { skip: needsRootAndSetpriv }, async (t) => {
  // makeSite leaves its base directory 0755: only the runtime tree's own modes stand between
  // another user and the sockets.
  const site = await makeSite(t);
  await startBareDaemon(t, site);
  launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'sec-a']);
  await waitForSidecar(site, 'sec-a');
  const vmDir = join(site.vms, 'sec-a');
  t.equal(await mode(site.runtime), '700', 'runtime dir 0700');
  t.equal(await mode(site.control), '600', 'hostinfod.sock 0600');
  t.equal(await mode(site.vms), '700', 'vms/ 0700');
  t.equal(await mode(vmDir), '700', 'per-VM dir 0700');
  t.equal(await mode(join(vmDir, 'vm.json')), '600', 'vm.json 0600');
  t.equal(await mode(join(site.runtime, 'logs')), '700', 'logs dir 0700');
  for (const file of await readdir(join(site.runtime, 'logs'))) t.equal(await mode(join(site.runtime, 'logs', file)), '600', `logs/${file} 0600`);

  // Control: the probe itself works as nobody against a socket that is open to all.
  const open = createServer((socket) => socket.destroy());
  open.listen(join(site.dir, 'open.sock'));
  await once(open, 'listening');
  t.teardown(() => open.close());
  await chmod(join(site.dir, 'open.sock'), 0o666);
  t.equal(connectAs(join(site.dir, 'open.sock')), 'connected', 'control: nobody connects to a world-open socket');

  t.equal(connectAs(site.control), 'EACCES', 'nobody cannot connect to hostinfod');
  t.equal(connectAs(join(vmDir, 'qmp.sock')), 'EACCES', 'nobody cannot connect to the VM\'s QMP');
  t.equal(connectAs(join(vmDir, 'guest.sock')), 'EACCES', 'nobody cannot connect to the VM\'s guest chardev');
  t.equal(openAs(site.sidecarLog('sec-a')), 'EACCES', 'nobody cannot read the sidecar\'s log');
});

t.test(`group = "${GROUP}": members may register VMs, and reach no socket`, { skip: needsRootAndSetpriv }, async (t) => {
  const site = await makeSite(t, { extraConfig: `group = "${GROUP}"\n` });
  await startBareDaemon(t, site);
  launchVm(t, site, ['--', ...PAUSED_VM, '-name', 'sec-g']);
  await waitForSidecar(site, 'sec-g');
  const vmDir = join(site.vms, 'sec-g');
  t.equal(await mode(site.runtime), '750', 'runtime dir 0750');
  t.equal((await stat(site.runtime)).gid, GROUP_ID, `runtime dir group ${GROUP}`);
  t.equal(await mode(site.vms), '1770', 'vms/ 1770: members add entries, and touch only their own');
  t.equal((await stat(site.vms)).gid, GROUP_ID, `vms/ group ${GROUP}`);
  t.equal(await mode(site.control), '600', 'hostinfod.sock stays 0600');
  t.equal(await mode(vmDir), '700', 'per-VM dir still 0700');
  t.equal(await mode(join(site.runtime, 'logs')), '700', 'logs dir still 0700');

  t.equal(connectAs(site.control, MEMBER), 'EACCES', 'a group member cannot reach hostinfod');
  t.equal(connectAs(join(vmDir, 'qmp.sock'), MEMBER), 'EACCES', 'a group member cannot reach a VM\'s QMP');
  t.equal(connectAs(join(vmDir, 'guest.sock'), MEMBER), 'EACCES', 'a group member cannot reach a VM\'s guest chardev');
  t.match(listAs(site.vms, MEMBER), /(^|,)sec-g(,|$)/, 'a group member can see the registered VMs');
  const staging = join(site.vms, '.new-probe');
  t.equal(runNodeAs(MEMBER, `try{require('fs').mkdirSync(${JSON.stringify(staging)},{mode:0o700});console.log('made')}catch(e){console.log(e.code)}`), 'made', 'a group member can stage a VM directory');
  t.teardown(() => rmdir(staging).catch(() => {}));
  t.equal(runNodeAs(MEMBER, `try{require('fs').rmSync(${JSON.stringify(vmDir)},{recursive:true});console.log('removed')}catch(e){console.log(e.code)}`), 'EACCES', 'and cannot remove another user\'s');
  t.equal(listAs(site.vms, NOBODY), 'EACCES', 'nobody outside the group cannot even list vms/');
  t.equal(connectAs(site.control, NOBODY), 'EACCES', 'nor reach hostinfod');
});
