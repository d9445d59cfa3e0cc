// The client's lifecycle against a real QEMU: negotiation, error replies, events, and quit.

import { once } from 'node:events';
import t from 'tap';
import { QmpClient, type QmpState } from '../../../sidecar/qmp/client.js';
import { QmpCommandError, QmpError } from '../../../sidecar/qmp/errors.js';
import type { QmpEvent } from '../../../sidecar/qmp/messages.js';
import { queryStatus } from '../../../sidecar/qmp/queries.js';
import { connectWithRetry, startQemu } from '../../fixtures/qmp/qemu.js';

/** Resolves with the next event of that name; registered before the command that causes it. */
function nextEvent(client: QmpClient, name: string): Promise<QmpEvent> {
  return new Promise((resolve) => {
    const listener = (event: QmpEvent): void => {
      if (event.event !== name) return;
      client.off('event', listener);
      resolve(event);
    };
    client.on('event', listener);
  });
}

t.test('greeting, errors, STOP/RESUME, quit → SHUTDOWN → idle', async (t) => {
  const qemu = await startQemu(t, ['-name', 'vm1']);
  const client = new QmpClient();
  t.teardown(() => client.close());
  const states: QmpState[] = [];
  client.on('state', (state) => states.push(state));

  await connectWithRetry(client, qemu);
  t.equal(client.state, 'running');
  t.same(states.slice(-3), ['connecting', 'negotiating', 'running'], 'walks the state machine (retries may precede)');
  const greeting = client.greeting!;
  t.ok(Number.isInteger(greeting.version.qemu.major) && greeting.version.qemu.major >= 7);
  t.type(greeting.version.package, 'string');
  t.ok(Array.isArray(greeting.capabilities));

  const error = await client.execute('no-such-command').catch((e: unknown) => e);
  t.ok(error instanceof QmpCommandError, 'error reply rejects with QmpCommandError');
  if (error instanceof QmpCommandError) {
    t.equal(error.code, 'QMP_COMMAND');
    t.equal(error.errorClass, 'CommandNotFound');
    t.match(error.desc, /no-such-command/);
  }
  const badArgs = await client.execute('query-status', { bogus: 1 }).catch((e: unknown) => e);
  t.equal((badArgs as QmpCommandError).errorClass, 'GenericError', 'unexpected argument');
  t.equal(client.state, 'running', 'error replies leave the connection up');

  // Prelaunch → running emits RESUME; QEMU sends it before the reply to cont.
  const resumed = nextEvent(client, 'RESUME');
  t.same(await client.execute('cont'), {});
  const resume = await resumed;
  t.ok(resume.timestamp.seconds > 1_600_000_000, 'events carry a wall-clock timestamp');
  t.same(await queryStatus(client), { running: true, status: 'running' });

  const stopped = nextEvent(client, 'STOP');
  await client.execute('stop');
  await stopped;
  t.same(await queryStatus(client), { running: false, status: 'paused' });

  const shutdown = nextEvent(client, 'SHUTDOWN');
  const disconnected = once(client, 'disconnected') as Promise<[QmpError]>;
  // quit is sent alone: a command pipelined behind it can hit EPIPE once QEMU has closed, and
  // Node then discards the unread quit reply, so quit itself would reject (seen under load).
  t.same(await client.execute('quit'), {});
  // Sent while QEMU is going away: answered or not, it must settle, and only as QMP_DISCONNECTED.
  const after = client.execute('query-status').then(
    () => 'answered',
    (e: unknown) => (e instanceof QmpError ? e.code : 'other'),
  );
  const event = await shutdown;
  t.same(event.data, { guest: false, reason: 'host-qmp-quit' });
  const [reason] = await disconnected;
  t.equal(reason.code, 'QMP_DISCONNECTED', 'EOF from QEMU');
  t.ok(['answered', 'QMP_DISCONNECTED'].includes(await after), 'the pipelined command settled');
  t.equal(client.state, 'idle');
  t.equal(client.pendingCount, 0);
  t.same(states.slice(-2), ['disconnecting', 'idle']);
  t.equal(await qemu.exited, 0, 'QEMU exited cleanly');
  const late = await client.execute('query-status').catch((e: unknown) => e);
  t.equal((late as QmpError).code, 'QMP_DISCONNECTED', 'execute after the end rejects at once');
});

t.test('close() from the client side, then reconnect to the same QEMU', async (t) => {
  const qemu = await startQemu(t, []);
  const client = new QmpClient();
  t.teardown(() => client.close());
  await connectWithRetry(client, qemu);
  const disconnected = once(client, 'disconnected') as Promise<[QmpError]>;
  await client.close();
  t.equal(client.state, 'idle');
  t.equal((await disconnected)[0].code, 'QMP_DISCONNECTED');
  // QEMU accepts one QMP client at a time on this socket; it must have noticed we left.
  await client.connect(qemu.socketPath, { timeoutMs: 10_000 });
  t.same(await queryStatus(client), { running: false, status: 'prelaunch' });
  await client.close();
});
