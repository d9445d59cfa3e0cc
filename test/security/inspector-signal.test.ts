// SIGUSR1 makes Node open its inspector on 127.0.0.1:9229, where any local user can run code in
// the process. hostinfod (root) and its sidecars take the signal, log it and go on; only
// HOSTINFO_ALLOW_INSPECTOR=1 in hostinfod's environment (bench/fleet-profile.ts) gives it back.

import { readFileSync } from 'node:fs';
import t from 'tap';
import { makeSite, stageVm, startDaemon, waitForSidecar, waitForSidecarLine } from '../helpers/served-vm.js';

const INSPECTOR = /Debugger listening on ws:\/\//;

t.test('SIGUSR1 opens no inspector in hostinfod or a sidecar', async (t) => {
  const site = await makeSite(t);
  const daemon = await startDaemon(t, site);
  const vm = await stageVm(t, site, 'usr1');
  const { sidecar } = await waitForSidecar(site, 'usr1');
  const daemonPid = daemon.child.pid ?? -1;

  const mark = daemon.lines.length;
  process.kill(daemonPid, 'SIGUSR1');
  t.match(await daemon.waitFor((line) => line['event'] === 'signal' && line['signal'] === 'SIGUSR1', mark), { level: 40, msg: /inspector to every local user/ }, 'hostinfod logs it');
  process.kill(sidecar.pid, 'SIGUSR1');
  t.match(await waitForSidecarLine(site, 'usr1', (line) => line['event'] === 'signal' && line['signal'] === 'SIGUSR1'), { level: 40 }, 'the sidecar logs it');

  // Both go on: the guest is answered, and neither printed Node's "Debugger listening" line.
  t.match(await vm.guest.ask('PING "after"'), '1.0 200 after');
  t.notMatch(daemon.stderr, INSPECTOR, 'no inspector in hostinfod');
  t.notMatch(readFileSync(site.sidecarLog('usr1'), 'utf8'), INSPECTOR, 'no inspector in the sidecar');
  t.notMatch(readFileSync('/proc/net/tcp', 'utf8'), /^\s*\d+: 0100007F:2415 00000000:0000 0A /m, 'nothing listens on 127.0.0.1:9229');
});
