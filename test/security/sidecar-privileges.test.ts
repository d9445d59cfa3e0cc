// What a sidecar (the one process that parses guest bytes) holds, read from /proc while it serves
// a root-owned VM: not root, no capabilities, no supplementary groups, cwd /, an empty
// environment, and no descriptor but its channel, QMP, the guest chardev, /dev/null and its log.
// The daemon runs uninstrumented here: tap's hook would otherwise put NODE_OPTIONS into the
// sidecar's environment.

import { readdirSync, readlinkSync } from 'node:fs';
import t from 'tap';
import { findAccount } from '../../daemon/passwd.js';
import { isRoot } from '../helpers/as-user.js';
import { cwdOf, environOf, statusField } from '../helpers/proc-stats.js';
import { makeSite, stageVm, startBareDaemon, waitForSidecar } from '../helpers/served-vm.js';

t.setTimeout(60_000);

t.test('the sidecar of a root-owned VM runs unprivileged, in /, with nothing inherited', { skip: isRoot ? false : 'needs root (a root daemon drops the sidecar to the sidecar user)' }, async (t) => {
  const site = await makeSite(t);
  await startBareDaemon(t, site);
  const vm = await stageVm(t, site, 'priv-vm');
  t.equal(await vm.guest.ask('PING'), '1.0 200 pong', 'serving');
  const { pid } = (await waitForSidecar(site, 'priv-vm')).sidecar;
  const account = findAccount('hostinfo');

  const uids = statusField(pid, 'Uid').split(/\s+/).map(Number);
  const gids = statusField(pid, 'Gid').split(/\s+/).map(Number);
  t.comment(`/proc/${pid}/status: Uid ${uids.join(' ')}, Gid ${gids.join(' ')}, Groups "${statusField(pid, 'Groups')}", CapEff ${statusField(pid, 'CapEff')}, CapPrm ${statusField(pid, 'CapPrm')}, CapBnd ${statusField(pid, 'CapBnd')}, NoNewPrivs ${statusField(pid, 'NoNewPrivs')}, Seccomp ${statusField(pid, 'Seccomp')}`);
  t.ok(uids.every((uid) => uid !== 0), 'no uid is 0 (real, effective, saved, fs)');
  t.same(uids, Array(4).fill(account?.uid), 'every uid is the hostinfo user\'s');
  t.same(gids, Array(4).fill(account?.gid), 'every gid is the hostinfo group\'s');
  t.equal(statusField(pid, 'Groups'), '', 'no supplementary groups (root\'s are not inherited)');
  t.equal(statusField(pid, 'CapEff'), '0000000000000000', 'no effective capabilities');
  t.equal(statusField(pid, 'CapPrm'), '0000000000000000', 'no permitted capabilities');
  t.equal(statusField(pid, 'CapAmb'), '0000000000000000', 'no ambient capabilities');
  t.equal(statusField(pid, 'NoNewPrivs'), '1', 'no_new_privs: a compromised sidecar cannot gain privileges through a setuid binary');
  t.equal(statusField(pid, 'CapBnd'), '0000000000000000', 'an empty capability bounding set');
  t.equal(statusField(pid, 'CapInh'), '0000000000000000', 'no inheritable capabilities');

  t.equal(cwdOf(pid), '/', 'cwd /');
  t.same(environOf(pid), [], 'an empty environment');

  // Node's own descriptors (its event loop, signal pipes) are anonymous; nothing of the daemon's
  // (its log, its control socket, other VMs' channels) is here.
  const named = readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return [Number(fd), readlinkSync(`/proc/${pid}/fd/${fd}`)] as const;
    } catch {
      return [Number(fd), '(gone)'] as const;
    }
  });
  const log = site.sidecarLog('priv-vm');
  const files = named.filter(([, target]) => target.startsWith('/'));
  t.same(files.filter(([fd]) => fd <= 2).map(([fd, target]) => `${fd} ${target}`), ['0 /dev/null', `1 ${log}`, `2 ${log}`], 'stdin /dev/null, stdout and stderr its own log');
  // libuv keeps one /dev/null in reserve (for accept() under EMFILE).
  t.same(files.filter(([fd, target]) => fd > 2 && target !== '/dev/null'), [], 'no other file: /dev/null at most');
  const sockets = named.filter(([, target]) => target.startsWith('socket:')).map(([fd]) => fd);
  t.same(sockets.sort((a, b) => a - b), [3, 4, 5], 'sockets: the channel (3), QMP (4) and the guest chardev (5) only');
  t.ok(named.every(([, target]) => /^(\/|socket:|pipe:|anon_inode:)/.test(target)), `nothing else: ${named.map(([fd, target]) => `${fd}=${target}`).join(' ')}`);
});
