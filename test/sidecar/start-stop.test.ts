// Sidecar.start() against stop(): whenever stop() runs during one of start()'s waits, start()
// creates nothing afterwards (no QMP connection, no guest port, no timer) and does not fail.

import { createServer as createHttpServer } from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { WebSocketServer } from 'ws';
import { DaemonChannel } from '../../sidecar/daemon-channel.js';
import { GUEST_RECONNECT, pathConnector } from '../../sidecar/guest-port.js';
import { Sidecar, type SidecarLog } from '../../sidecar/sidecar.js';
import { accessMessage, socketPair } from '../daemon/server-setup.js';
import { tempDir, withTimeout } from '../daemon/helpers.js';
import { startFakeServer } from '../fixtures/qmp/fake-server.js';
import { GuestEnd } from '../helpers/guest-end.js';
import type { Teardown } from '../helpers/logged-process.js';

const SILENT: SidecarLog = { info: () => {}, warn: () => {}, error: () => {} };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A channel to a stand-in daemon that sends the access decision, or nothing when `access` is false. */
async function channelTo(t: Teardown, access: boolean): Promise<DaemonChannel> {
  const [daemonEnd, sidecarEnd] = await socketPair(t);
  const http = createHttpServer();
  const wss = new WebSocketServer({ server: http });
  wss.on('connection', (ws) => {
    if (access) ws.send(JSON.stringify(accessMessage(['physcpus'])));
  });
  http.emit('connection', daemonEnd);
  t.teardown(() => void wss.close());
  const channel = new DaemonChannel(sidecarEnd);
  t.teardown(() => channel.close());
  return channel;
}

/** Counts connections to a unix socket path that is only listened on once `listen` is called. */
function lateListener(t: Teardown, path: string): { listen(): Promise<void>; readonly connections: number } {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections += 1;
    socket.on('error', () => {});
  });
  t.teardown(() => void server.close());
  return {
    listen: () => new Promise((resolve) => server.listen(path, () => resolve())),
    get connections() {
      return connections;
    },
  };
}

t.test('stop() while start() retries QMP: no QMP connection after it, no guest connection, no failure', async (t) => {
  const dir = tempDir(t);
  const qmpPath = join(dir, 'qmp.sock');
  const guest = await GuestEnd.listen(t, join(dir, 'guest.sock'));
  const sidecar = new Sidecar({
    channel: await channelTo(t, true),
    qmp: qmpPath,
    guest: { connect: pathConnector(guest.path), reconnect: GUEST_RECONNECT },
    qemuPid: undefined,
    log: SILENT,
  });
  const started = sidecar.start().then(() => 'resolved', (error: unknown) => `rejected: ${(error as Error).message}`);
  await sleep(120); // a few attempts, each refused: nothing listens yet
  const stopped = sidecar.stop('test stops it');
  // QEMU comes up right after: a retry that still ran would now connect.
  const qemu = lateListener(t, qmpPath);
  await qemu.listen();
  await withTimeout(stopped, 'stop()');
  t.equal(await withTimeout(started, 'start()'), 'resolved', 'start() ends quietly');
  await sleep(300);
  t.equal(qemu.connections, 0, 'no QMP connection was opened after stop()');
  t.equal(guest.connections, 0, 'no guest port was created');
  t.same(await sidecar.stopped, { reason: 'test stops it', status: 0 });
});

t.test('stop() while start() waits for the access decision: no guest port, no timer', async (t) => {
  const dir = tempDir(t);
  const guest = await GuestEnd.listen(t, join(dir, 'guest.sock'));
  const qmp = await startFakeServer(t, {
    onCommand: (command, connection) => {
      const returns: Record<string, unknown> = {
        qmp_capabilities: {}, 'query-name': { name: 'vm' }, 'query-uuid': { UUID: '00000000-0000-0000-0000-000000000000' },
        'query-version': { qemu: { major: 8, minor: 2, micro: 2 }, package: '' }, 'query-cpus-fast': [],
      };
      if (command.execute in returns) connection.reply(command, returns[command.execute]);
    },
  });
  const sidecar = new Sidecar({
    channel: await channelTo(t, false),
    qmp: qmp.path,
    guest: { connect: pathConnector(guest.path), reconnect: GUEST_RECONNECT },
    qemuPid: undefined,
    log: SILENT,
  });
  const started = sidecar.start().then(() => 'resolved', (error: unknown) => `rejected: ${(error as Error).message}`);
  const connection = await withTimeout(qmp.nextConnection(), 'the QMP connection');
  await withTimeout((async () => {
    while (!connection.commands.some((c) => c.execute === 'query-cpus-fast')) await sleep(5);
  })(), 'the identity queries');
  await sleep(50);
  await withTimeout(sidecar.stop('test stops it'), 'stop()');
  t.equal(await withTimeout(started, 'start()'), 'resolved');
  await withTimeout(connection.closed, 'the QMP connection to close');
  await sleep(200);
  t.equal(guest.connections, 0, 'no guest port was created');
  t.equal(qmp.connections.length, 1, 'no second QMP connection');
});
