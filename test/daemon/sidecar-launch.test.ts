// Where a sidecar finds its VM's sockets (reachOf): a launched VM's in its directory, the vhostmd
// one only when its record says it has that port; an attached VM's where its record names them.
// The fds and flags that carry them are exercised by the daemon and e2e tests (fd 6, --vhostmd).

import t from 'tap';
import type { VmRecord } from '../../common/vm-record.js';
import { reachOf } from '../../daemon/sidecar-launch.js';

const RECORD: VmRecord = { v: 1, pid: 4242, startTime: '1', name: 'web1', uuid: undefined, transport: 'isa-serial', guestDevice: '/dev/ttyS1', pidfile: undefined };

t.test('a launched VM: sockets in its directory, vhostmd.sock only with the marker', async (t) => {
  t.same(reachOf('/run/hi/vms/web1', RECORD, true), { guestSocket: '/run/hi/vms/web1/guest.sock', qmpSocket: '/run/hi/vms/web1/qmp.sock', connectForIt: true, outside: false });
  t.same(reachOf('/run/hi/vms/web1', { ...RECORD, vhostmd: true }, false), {
    guestSocket: '/run/hi/vms/web1/guest.sock', qmpSocket: '/run/hi/vms/web1/qmp.sock', vhostmdSocket: '/run/hi/vms/web1/vhostmd.sock', connectForIt: false, outside: false,
  });
});

t.test('an attached VM: where its record says, the vhostmd socket included', async (t) => {
  const attached: VmRecord = { ...RECORD, vhostmd: true, attached: { guestSocket: '/run/l/g', qmpSocket: undefined, vhostmdSocket: '/run/l/org.github.vhostmd.1' } };
  t.same(reachOf('/run/hi/vms/web1', attached, true), { guestSocket: '/run/l/g', qmpSocket: undefined, vhostmdSocket: '/run/l/org.github.vhostmd.1', connectForIt: true, outside: true });
  t.notOk('vhostmdSocket' in reachOf('/d', { ...RECORD, attached: { guestSocket: '/run/l/g', qmpSocket: undefined } }, true), 'none without one');
});
