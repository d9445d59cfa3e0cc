import t from 'tap';
import { QmpClient } from '../../../sidecar/qmp/client.js';
import { listeningInodes, qemuPidFromSocket } from '../../../sidecar/qmp/pid.js';
import { queryCpusFast } from '../../../sidecar/qmp/queries.js';
import { startFakeServer } from '../../fixtures/qmp/fake-server.js';
import { connectWithRetry, startQemu } from '../../fixtures/qmp/qemu.js';

t.test('finds the real QEMU behind its QMP socket', async (t) => {
  const qemu = await startQemu(t, []);
  const client = new QmpClient();
  t.teardown(() => client.close());
  await connectWithRetry(client, qemu);
  const threadIds = (await queryCpusFast(client)).map((cpu) => cpu.threadId);
  t.equal(await qemuPidFromSocket(qemu.socketPath), qemu.pid);
  t.equal(await qemuPidFromSocket(qemu.socketPath, { threadIds }), qemu.pid, 'owns the vCPU threads');
  t.equal(await qemuPidFromSocket(qemu.socketPath, { threadIds: [process.pid] }), undefined, 'a tid it does not own');
});

t.test('the listener held by this very process is found too; unknown paths are not', async (t) => {
  const server = await startFakeServer(t);
  t.equal(await qemuPidFromSocket(server.path), process.pid);
  t.equal(await qemuPidFromSocket(`${server.path}.missing`), undefined);
});

t.test('/proc/net/unix parsing', async (t) => {
  const table = [
    'Num       RefCount Protocol Flags    Type St Inode Path',
    '0000000000000000: 00000002 00000000 00010000 0001 01 16258 /run/vm/qmp.sock',
    '0000000000000000: 00000003 00000000 00000000 0001 03 16300 /run/vm/qmp.sock', // accepted connection
    '0000000000000000: 00000002 00000000 00010000 0001 01 17000 /run/vm/with space.sock',
    '0000000000000000: 00000002 00000000 00000000 0002 01 17001',
    '0000000000000000: 00000002 00000000 00010000 0001 01 17002 @abstract',
  ].join('\n');
  t.same(listeningInodes(table, '/run/vm/qmp.sock'), ['16258'], 'only the listener, not its accepted sockets');
  t.same(listeningInodes(table, '/run/vm/with space.sock'), ['17000']);
  t.same(listeningInodes(table, '/run/vm/other.sock'), []);
  const rebound = `${table}\n0000000000000000: 00000002 00000000 00010000 0001 01 18000 /run/vm/qmp.sock`;
  t.same(listeningInodes(rebound, '/run/vm/qmp.sock'), ['16258', '18000'], 'both reported, so the caller refuses to guess');
});
