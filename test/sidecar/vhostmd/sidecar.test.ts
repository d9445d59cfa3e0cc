// The sidecar with a vhostmd port, in process: both chardevs by path (the mode of a VM its own user
// registered, --guest and --vhostmd), a stand-in daemon sending the decision and a sample. The two
// ports take from one token bucket, the vhostmd port answers over it with the cached document, and
// the counters the daemon receives say 200 and 429 for both.

import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { WebSocketServer, type WebSocket } from 'ws';
import { DaemonChannel } from '../../../sidecar/daemon-channel.js';
import { GUEST_RECONNECT, pathConnector } from '../../../sidecar/guest-port.js';
import { Sidecar, type SidecarLog } from '../../../sidecar/sidecar.js';
import { accessMessage, socketPair } from '../../daemon/server-setup.js';
import { tempDir, withTimeout } from '../../daemon/helpers.js';
import { GuestEnd } from '../../helpers/guest-end.js';
import { metricValues } from './xmllint.js';

const SILENT: SidecarLog = { info: () => {}, warn: () => {}, error: () => {} };

/** Reads reply lines until the blank line that ends a vhostmd reply. */
async function vhostmdReply(end: GuestEnd): Promise<string> {
  let reply = '';
  while (!reply.endsWith('\n\n')) reply += await end.readLine();
  return reply;
}

t.test('two ports, one bucket: the document, the line reply, then 429s on both', async (t) => {
  const dir = tempDir(t);
  const guest = await GuestEnd.listen(t, join(dir, 'guest.sock'));
  const vhostmd = await GuestEnd.listen(t, join(dir, 'vhostmd.sock'));
  const [daemonEnd, sidecarEnd] = await socketPair(t);
  const http = createHttpServer();
  const wss = new WebSocketServer({ server: http });
  const counters: Array<Record<string, unknown>> = [];
  const connected = once(wss, 'connection') as Promise<[WebSocket]>;
  http.emit('connection', daemonEnd);
  t.teardown(() => void wss.close());
  // The channel opens the WebSocket: made before the daemon's end can see a connection.
  const channel = new DaemonChannel(sidecarEnd);
  const [ws] = await withTimeout(connected, 'the sidecar\'s channel');
  ws.on('message', (data) => {
    const message = JSON.parse(String(data)) as Record<string, unknown>;
    if (message['type'] === 'counters') counters.push(message);
  });
  // Two tokens, then one a minute: the third request on either port is over the limit.
  ws.send(JSON.stringify({ ...accessMessage(['physcpus', 'vcpus', 'vmcputime']), limit: { intervalMs: 60_000, burst: 2 } }));
  ws.send(JSON.stringify({ v: 2, type: 'sample', seq: 1, takenAt: Date.now(), values: { physcpus: 16 } }));

  const sidecar = new Sidecar({
    channel,
    qmp: undefined,
    guest: { connect: pathConnector(guest.path), reconnect: GUEST_RECONNECT },
    vhostmd: { connect: pathConnector(vhostmd.path), reconnect: GUEST_RECONNECT },
    qemuPid: undefined,
    log: SILENT,
  });
  t.teardown(() => sidecar.stop('test over'));
  await withTimeout(sidecar.start(), 'start()');
  await guest.connected();
  await vhostmd.connected();
  await withTimeout((async () => { while (channel.latest === undefined) await once(channel, 'sample'); })(), 'the sample');

  vhostmd.write('GET /metrics/XML\n\n');
  const document = await vhostmdReply(vhostmd);
  t.equal(metricValues(document).get('host:NumberOfPhysicalCPUs'), '16', 'the document, from the sample');
  t.equal(await guest.ask('physcpus'), '1.0 200 16', 'the line port takes the second token');
  vhostmd.write('GET /metrics/XML\r\n\r\n');
  t.equal(await vhostmdReply(vhostmd), document, 'over the limit: the same document at once');
  t.match(await guest.ask('physcpus'), /^1\.0 429 /, 'and the line port is over it too');
  vhostmd.write('GET /metrics\n\n');
  t.equal(await vhostmdReply(vhostmd), 'INVALID REQUEST\n\n');

  await withTimeout((async () => { while ((counters.at(-1)?.['requests'] ?? 0) !== 5) await once(ws, 'message'); })(), 'the counters report');
  t.match(counters.at(-1), { requests: 5, ok: 2, rateLimited: 2, errors: 1 }, 'counted as the audit says: 200, 200, 429, 429, 400');
});
