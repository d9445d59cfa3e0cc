// File modes of the runtime tree as README documents them, and what another local user can reach:
// `nobody` (no groups) cannot connect to the cache socket nor to a VM's QMP or guest socket; a
// member of the configured `group` can reach the cache socket and still no VM's sockets.

import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmod, readdir, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { makeSite, startLaunchedVm } from '../faults/helpers.js';

const GROUP = 'audio';
const GROUP_ID = 29;

t.setTimeout(90_000);

const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
const isRoot = process.geteuid?.() === 0;

/** Connects to a unix socket as nobody; 'connected' or the errno code. */
function connectAs(path: string, groups: 'none' | number): string {
  const script = `const s=require('net').connect(${JSON.stringify(path)});s.on('connect',()=>{console.log('connected');s.destroy()});s.on('error',(e)=>console.log(e.code))`;
  const groupArgs = groups === 'none' ? ['--clear-groups'] : [`--groups=${groups}`];
  // `env -i`: tap adds NODE_OPTIONS to every child it sees spawned (its process-info hook, which
  // nobody may not write); the probe must run in a bare environment.
  const run = spawnSync('env', ['-i', 'PATH=/usr/bin:/bin', 'setpriv', '--reuid=nobody', '--regid=nogroup', ...groupArgs, process.execPath, '-e', script], { encoding: 'utf8', cwd: '/', timeout: 20_000 });
  return `${run.stdout.trim()}${run.stderr.trim() === '' ? '' : ` (stderr: ${run.stderr.trim()})`}`;
}

const mode = async (path: string): Promise<string> => ((await stat(path)).mode & 0o777).toString(8);

t.test('default: owner-only tree; nobody reaches no socket', { skip: !isRoot || !hasSetpriv ? 'needs root and setpriv' : false }, async (t) => {
  // The test's base directory is opened up so that only the runtime tree's own modes stand between
  // another user and the sockets.
  const site = await makeSite(t, { baseMode: 0o755 });
  await startLaunchedVm(t, site, 'sec-a');
  const vmDir = join(site.runtime, 'sec-a');
  t.equal(await mode(site.runtime), '700', 'runtime dir 0700');
  t.equal(await mode(site.cacheSocket), '600', 'cache.sock 0600');
  t.equal(await mode(vmDir), '700', 'per-VM dir 0700');
  t.equal(await mode(join(site.runtime, 'logs')), '700', 'logs dir 0700');
  for (const file of await readdir(join(site.runtime, 'logs'))) t.equal(await mode(join(site.runtime, 'logs', file)), '600', `logs/${file} 0600`);
  t.equal(await mode(join(vmDir, 'launcher.pid')), '600', 'launcher.pid 0600');

  // Control: the probe itself works as nobody against a socket that is open to all.
  const open = createServer((socket) => socket.destroy());
  open.listen(join(site.dir, 'open.sock'));
  await once(open, 'listening');
  t.teardown(() => open.close());
  await chmod(join(site.dir, 'open.sock'), 0o666);
  t.equal(connectAs(join(site.dir, 'open.sock'), 'none'), 'connected', 'control: nobody connects to a world-open socket');

  t.equal(connectAs(site.cacheSocket, 'none'), 'EACCES', 'nobody cannot connect to the cache');
  t.equal(connectAs(join(vmDir, 'qmp.sock'), 'none'), 'EACCES', 'nobody cannot connect to the VM\'s QMP');
  t.equal(connectAs(join(vmDir, 'guest.sock'), 'none'), 'EACCES', 'nobody cannot connect to the VM\'s guest chardev');
});

t.test(`group = "${GROUP}": 0750/0660 for the cache, VM dirs stay owner-only`, { skip: !isRoot || !hasSetpriv ? 'needs root and setpriv' : false }, async (t) => {
  const site = await makeSite(t, { baseMode: 0o755, extraConfig: `group = "${GROUP}"\n` });
  await startLaunchedVm(t, site, 'sec-g');
  const vmDir = join(site.runtime, 'sec-g');
  t.equal(await mode(site.runtime), '750', 'runtime dir 0750');
  t.equal((await stat(site.runtime)).gid, GROUP_ID, `runtime dir group ${GROUP}`);
  t.equal(await mode(site.cacheSocket), '660', 'cache.sock 0660');
  t.equal((await stat(site.cacheSocket)).gid, GROUP_ID, `cache.sock group ${GROUP}`);
  t.equal(await mode(vmDir), '700', 'per-VM dir still 0700');
  t.equal(await mode(join(site.runtime, 'logs')), '700', 'logs dir still 0700');

  t.equal(connectAs(site.cacheSocket, GROUP_ID), 'connected', 'a group member reaches the cache');
  t.equal(connectAs(join(vmDir, 'qmp.sock'), GROUP_ID), 'EACCES', 'a group member cannot reach a VM\'s QMP');
  t.equal(connectAs(join(vmDir, 'guest.sock'), GROUP_ID), 'EACCES', 'a group member cannot reach a VM\'s guest chardev');
  t.equal(connectAs(site.cacheSocket, 'none'), 'EACCES', 'nobody outside the group cannot reach the cache');
});
