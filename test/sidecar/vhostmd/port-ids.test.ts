// Which QMP events reset the vhostmd decoder: VSERPORT_CHANGE of the vhostmd port, open or close
// (QEMU's once-a-second limit can fold a close and an open into one `open: true`), and nothing
// else. vhostmdPortIds against a real QEMU is in test/launcher/qemu-real-vhostmd.test.ts; here its
// handling of replies of the wrong shape.

import t from 'tap';
import type { QmpExecutor } from '../../../sidecar/qmp/queries.js';
import { vhostmdPortChanged, vhostmdPortIds } from '../../../sidecar/vhostmd/port-ids.js';

const IDS = ['hostinfo0-vhostmd-port'];

t.test('VSERPORT_CHANGE of the port, whichever way', async (t) => {
  t.ok(vhostmdPortChanged({ event: 'VSERPORT_CHANGE', data: { id: 'hostinfo0-vhostmd-port', open: false } }, IDS), 'closed');
  t.ok(vhostmdPortChanged({ event: 'VSERPORT_CHANGE', data: { id: 'hostinfo0-vhostmd-port', open: true } }, IDS), 'opened (or closed and opened within QEMU\'s second)');
  t.notOk(vhostmdPortChanged({ event: 'VSERPORT_CHANGE', data: { id: 'hostinfo0-port', open: false } }, IDS), 'the hostinfo port');
  t.notOk(vhostmdPortChanged({ event: 'SHUTDOWN', data: { id: 'hostinfo0-vhostmd-port' } }, IDS), 'another event');
  t.notOk(vhostmdPortChanged({ event: 'VSERPORT_CHANGE', data: undefined }, IDS), 'no data');
  t.notOk(vhostmdPortChanged({ event: 'VSERPORT_CHANGE', data: { id: 'hostinfo0-vhostmd-port' } }, []), 'no port ids known (the lookup failed)');
});

t.test('vhostmdPortIds: only virtserialports, only by name, a non-list is none', async (t) => {
  const qmp = (children: unknown, names: Record<string, unknown>): QmpExecutor => ({
    execute: async <T>(command: string, args?: Record<string, unknown>): Promise<T> => {
      if (command === 'qom-list') return children as T;
      return names[String(args?.['path']).split('/').at(-1) ?? ''] as T;
    },
  });
  const children = [
    { name: 'a', type: 'child<virtserialport>' }, { name: 'b', type: 'child<virtserialport>' },
    { name: 'c', type: 'child<virtconsole>' }, { name: 'type', type: 'string' }, 'junk', { name: 5, type: 'child<virtserialport>' },
  ];
  t.same(await vhostmdPortIds(qmp(children, { a: 'org.hostinfo.0', b: 'org.github.vhostmd.1', c: 'org.github.vhostmd.1' })), ['b']);
  t.same(await vhostmdPortIds(qmp({ not: 'a list' }, {})), []);
});
