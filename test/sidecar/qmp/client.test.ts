// Faults real QEMU won't produce on demand, injected by a fake QMP server.

import { once } from 'node:events';
import t from 'tap';
import { QmpClient, type QmpState } from '../../../sidecar/qmp/client.js';
import { MAX_QMP_MESSAGE_BYTES } from '../../../sidecar/qmp/framing.js';
import { QmpCommandError, QmpConnectError, QmpError, QmpStateError, type QmpErrorCode } from '../../../sidecar/qmp/errors.js';
import type { QmpEvent } from '../../../sidecar/qmp/messages.js';
import { GREETING, startFakeServer, type FakeCommand, type FakeConnection } from '../../fixtures/qmp/fake-server.js';

const codeOf = async (promise: Promise<unknown>): Promise<QmpErrorCode | 'resolved' | 'foreign'> =>
  promise.then(
    () => 'resolved' as const,
    (error: unknown) => (error instanceof QmpError ? error.code : 'foreign'),
  );

/** A client with its state walk recorded; always closed at the end. */
function newClient(t: { teardown(fn: () => unknown): void }, options = {}): { client: QmpClient; states: QmpState[] } {
  const client = new QmpClient(options);
  const states: QmpState[] = [];
  client.on('state', (state) => states.push(state));
  t.teardown(() => client.close());
  return { client, states };
}

/** Answers qmp_capabilities; hands every other command to `handle`. */
const negotiating = (handle: (command: FakeCommand, connection: FakeConnection) => void) => (command: FakeCommand, connection: FakeConnection): void => {
  if (command.execute === 'qmp_capabilities') connection.reply(command);
  else handle(command, connection);
};

t.test('happy path: states, version, replies by id, events', async (t) => {
  const server = await startFakeServer(t, {
    onCommand: negotiating((command, connection) => {
      if (command.execute === 'echo') connection.reply(command, command.arguments);
      if (command.execute === 'fail') connection.send({ id: command.id, error: { class: 'DeviceNotFound', desc: 'no such device' } });
    }),
  });
  const { client, states } = newClient(t);
  const greeting = await client.connect(server.path);
  t.same(states, ['connecting', 'negotiating', 'running']);
  t.same(client.qemuVersion, { major: 7, minor: 2, micro: 0 });
  t.same(greeting.capabilities, ['oob']);
  const connection = await server.nextConnection();
  t.same(connection.commands, [{ execute: 'qmp_capabilities', id: connection.commands[0]?.id }], 'no capabilities enabled');

  const [a, b] = await Promise.all([client.execute('echo', { n: 1 }), client.execute('echo', { n: 2 })]);
  t.same([a, b], [{ n: 1 }, { n: 2 }]);
  const ids = connection.commands.map((c) => c.id);
  t.equal(new Set(ids).size, ids.length, 'every command has a unique id');

  const error = await client.execute('fail').catch((e: unknown) => e);
  t.ok(error instanceof QmpCommandError);
  t.match(error, { code: 'QMP_COMMAND', command: 'fail', errorClass: 'DeviceNotFound', desc: 'no such device' });

  const event = once(client, 'event') as Promise<[QmpEvent]>;
  connection.send({ event: 'STOP', timestamp: { seconds: 10, microseconds: 20 } });
  t.same((await event)[0], { kind: 'event', event: 'STOP', data: undefined, timestamp: { seconds: 10, microseconds: 20 } });
});

t.test('replies with unknown ids are dropped', async (t) => {
  const server = await startFakeServer(t, {
    onCommand: negotiating((command, connection) => {
      connection.send({ return: 'stray', id: 'hq-999999' });
      connection.send({ return: 'numeric', id: 42 });
      connection.send({ error: { class: 'GenericError', desc: 'not yours' }, id: { nested: true } });
      connection.reply(command, 'mine');
    }),
  });
  const { client } = newClient(t);
  await client.connect(server.path);
  t.equal(await client.execute('anything'), 'mine');
  t.equal(client.state, 'running');
});

t.test('a reply without any id is a protocol error (the server could not parse a request)', async (t) => {
  const server = await startFakeServer(t, {
    onCommand: negotiating((_command, connection) => connection.send({ error: { class: 'GenericError', desc: 'JSON parse error' } })),
  });
  const { client } = newClient(t);
  await client.connect(server.path);
  const disconnected = once(client, 'disconnected') as Promise<[QmpError]>;
  t.equal(await codeOf(client.execute('x')), 'QMP_DISCONNECTED');
  t.equal((await disconnected)[0].code, 'QMP_PROTOCOL');
});

t.test('bad greetings', async (t) => {
  const cases: Array<[string, unknown, QmpErrorCode]> = [
    ['not JSON', 'hello, I am not QEMU\r\n', 'QMP_PROTOCOL'],
    ['JSON but not an object', '["QMP"]\n', 'QMP_PROTOCOL'],
    ['missing QMP key', { hello: {} }, 'QMP_GREETING'],
    ['no version triple', { QMP: { version: { qemu: {} }, capabilities: [] } }, 'QMP_GREETING'],
    ['no capabilities', { QMP: { version: GREETING.QMP.version } }, 'QMP_GREETING'],
    ['a reply instead of a greeting', { return: {} }, 'QMP_GREETING'],
  ];
  for (const [what, greeting, code] of cases) {
    const server = await startFakeServer(t, { greeting });
    const { client, states } = newClient(t);
    t.equal(await codeOf(client.connect(server.path)), code, what);
    t.equal(client.state, 'idle', `${what}: idle once connect rejects`);
    t.same(states, ['connecting', 'negotiating', 'disconnecting', 'idle']);
    const connection = await server.nextConnection();
    await connection.closed; // the client hung up rather than lingering
    t.same(connection.commands, [], `${what}: nothing was sent`);
  }
});

t.test('server closes before greeting or during negotiation', async (t) => {
  const early = await startFakeServer(t, { greeting: null });
  void early.nextConnection().then((c) => c.socket.end());
  t.equal(await codeOf(newClient(t).client.connect(early.path)), 'QMP_GREETING');

  const mid = await startFakeServer(t, { onCommand: (_command, connection) => connection.socket.end() });
  t.equal(await codeOf(newClient(t).client.connect(mid.path)), 'QMP_NEGOTIATION');

  const refused = await startFakeServer(t, {
    onCommand: (command, connection) => connection.send({ id: command.id, error: { class: 'CommandNotFound', desc: 'no' } }),
  });
  const error = await newClient(t).client.connect(refused.path).catch((e: unknown) => e);
  t.match(error, { code: 'QMP_NEGOTIATION', errorClass: 'CommandNotFound' });
});

t.test('connect failures: missing socket, timeout, abort, already connected', async (t) => {
  const { client, states } = newClient(t);
  t.equal(await codeOf(client.connect('/nonexistent/qmp.sock')), 'QMP_CONNECT');
  t.same(states, ['connecting', 'disconnecting', 'idle']);

  const silent = await startFakeServer(t, { greeting: null });
  t.equal(await codeOf(client.connect(silent.path, { timeoutMs: 100 })), 'QMP_TIMEOUT', 'no greeting');
  t.equal(client.state, 'idle');

  const hanging = await startFakeServer(t, { onCommand: () => {} });
  // Long enough that the greeting has surely been answered with qmp_capabilities on a loaded box.
  t.equal(await codeOf(client.connect(hanging.path, { timeoutMs: 1500 })), 'QMP_TIMEOUT', 'qmp_capabilities never answered');
  const connection = await hanging.nextConnection();
  await connection.closed;
  t.same(connection.commands.map((c) => c.execute), ['qmp_capabilities']);

  const controller = new AbortController();
  const aborted = client.connect(hanging.path, { signal: controller.signal, timeoutMs: Infinity });
  await hanging.nextConnection();
  controller.abort();
  t.equal(await codeOf(aborted), 'QMP_ABORTED');
  t.equal(client.state, 'idle');
  t.equal(await codeOf(client.connect(hanging.path, { signal: AbortSignal.abort() })), 'QMP_ABORTED', 'already aborted');
  t.equal(client.state, 'idle', 'never left idle');

  const good = await startFakeServer(t);
  await client.connect(good.path);
  const second = await client.connect(good.path).then(() => undefined, (error: unknown) => error);
  t.type(second, QmpStateError, 'second connect while running: a state error');
  t.notOk(second instanceof QmpConnectError, 'not a connect error, which callers retry');
  t.match(second, { code: 'QMP_STATE', state: 'running', message: 'cannot connect while running' });
  t.equal(client.state, 'running', 'the first connection is untouched');
});

t.test('close() while connecting abandons the connect', async (t) => {
  const hanging = await startFakeServer(t, { greeting: null });
  const { client } = newClient(t);
  const connecting = client.connect(hanging.path);
  await hanging.nextConnection();
  await client.close();
  t.equal(await codeOf(connecting), 'QMP_ABORTED');
  t.equal(client.state, 'idle');
});

t.test('a command that is never answered: timeout and abort, late reply dropped', async (t) => {
  const server = await startFakeServer(t, {
    onCommand: negotiating((command, connection) => {
      if (command.execute === 'ping') connection.reply(command, 'pong');
    }),
  });
  const { client } = newClient(t);
  await client.connect(server.path);
  const connection = await server.nextConnection();

  t.equal(await codeOf(client.execute('hang', undefined, { timeoutMs: 50 })), 'QMP_TIMEOUT');
  t.equal(client.pendingCount, 0);
  const controller = new AbortController();
  const aborted = client.execute('hang', undefined, { signal: controller.signal, timeoutMs: Infinity });
  controller.abort(new Error('operator gave up'));
  const error = await aborted.catch((e: unknown) => e);
  t.match(error, { code: 'QMP_ABORTED' });
  t.equal(((error as Error).cause as Error).message, 'operator gave up', 'the abort reason is kept');
  t.equal(client.pendingCount, 0);

  t.equal(await codeOf(client.execute('hang', undefined, { signal: AbortSignal.abort() })), 'QMP_ABORTED');
  // The server reads in order, so once ping is answered it has seen everything sent before it.
  t.equal(await client.execute('ping'), 'pong');
  t.same(connection.commands.map((c) => c.execute), ['qmp_capabilities', 'hang', 'hang', 'ping'], 'an already-aborted command is not sent');

  // Answer both abandoned commands now: the client must drop them and carry on.
  for (const command of connection.commands.slice(1, 3)) connection.reply(command, 'too late');
  t.equal(await client.execute('ping'), 'pong');
  t.equal(client.state, 'running');
  t.throws(() => client.execute('x', undefined, { timeoutMs: 0 }), RangeError);
});

t.test('disconnect mid-command rejects every pending command', async (t) => {
  const server = await startFakeServer(t, {
    onCommand: negotiating((_command, connection) => {
      if (connection.commands.length === 4) connection.socket.destroy();
    }),
  });
  const { client, states } = newClient(t);
  await client.connect(server.path);
  const disconnected = once(client, 'disconnected') as Promise<[QmpError]>;
  const results = await Promise.all([codeOf(client.execute('a')), codeOf(client.execute('b')), codeOf(client.execute('c'))]);
  t.same(results, ['QMP_DISCONNECTED', 'QMP_DISCONNECTED', 'QMP_DISCONNECTED']);
  t.equal((await disconnected)[0].code, 'QMP_DISCONNECTED');
  t.equal(client.state, 'idle');
  t.same(states.slice(-2), ['disconnecting', 'idle']);
  t.equal(await codeOf(client.execute('d')), 'QMP_DISCONNECTED', 'execute while idle');
});

t.test('garbage mid-session is a protocol error that ends the connection', async (t) => {
  const server = await startFakeServer(t, { onCommand: negotiating((_c, connection) => connection.send('{"return": }\r\n')) });
  const { client } = newClient(t);
  await client.connect(server.path);
  const disconnected = once(client, 'disconnected') as Promise<[QmpError]>;
  const error = await client.execute('x').catch((e: unknown) => e);
  t.match(error, { code: 'QMP_DISCONNECTED' });
  t.equal(((error as Error).cause as QmpError).code, 'QMP_PROTOCOL', 'the cause says why');
  t.equal((await disconnected)[0].code, 'QMP_PROTOCOL');
  await (await server.nextConnection()).closed;
  t.equal(client.state, 'idle');
});

t.test('an oversize line is refused before it ends, and the connection is closed', async (t) => {
  const server = await startFakeServer(t, {
    onCommand: negotiating((_command, connection) => {
      // One line of MAX + 1 bytes before any LF, then a LF that should never matter.
      const { socket } = connection;
      socket.write(`{"return": "${'x'.repeat(MAX_QMP_MESSAGE_BYTES)}`, () => socket.write('"}\n'));
    }),
  });
  const { client } = newClient(t);
  await client.connect(server.path);
  const disconnected = once(client, 'disconnected') as Promise<[QmpError]>;
  t.equal(await codeOf(client.execute('big')), 'QMP_DISCONNECTED');
  const [reason] = await disconnected;
  t.equal(reason.code, 'QMP_OVERSIZE');
  t.ok(reason instanceof QmpError && reason.code === 'QMP_OVERSIZE');
  await (await server.nextConnection()).closed;
  t.equal(client.state, 'idle');
});

t.test('a smaller configured bound applies', async (t) => {
  const server = await startFakeServer(t, { onCommand: negotiating((command, connection) => connection.reply(command, 'y'.repeat(200))) });
  const { client } = newClient(t, { maxMessageBytes: 128 });
  await client.connect(server.path);
  const disconnected = once(client, 'disconnected') as Promise<[QmpError]>;
  t.equal(await codeOf(client.execute('x')), 'QMP_DISCONNECTED');
  t.equal((await disconnected)[0].code, 'QMP_OVERSIZE');
});

t.test('close() while running rejects pending commands and allows reconnecting', async (t) => {
  const server = await startFakeServer(t, { onCommand: negotiating(() => {}) });
  const { client, states } = newClient(t);
  await client.close(); // idle: nothing to do
  t.same(states, []);
  await client.connect(server.path);
  const pending = codeOf(client.execute('never'));
  const disconnected = once(client, 'disconnected') as Promise<[QmpError]>;
  await client.close();
  t.equal(client.state, 'idle');
  t.equal(await pending, 'QMP_DISCONNECTED');
  t.equal((await disconnected)[0].code, 'QMP_DISCONNECTED');
  await client.connect(server.path);
  t.equal(client.state, 'running', 'the same client connects again');
  t.same(states, ['connecting', 'negotiating', 'running', 'disconnecting', 'idle', 'connecting', 'negotiating', 'running']);
});

t.test('connect() while connecting is a state error and leaves that connect alone', async (t) => {
  const hanging = await startFakeServer(t, { greeting: null });
  const { client } = newClient(t);
  const first = client.connect(hanging.path, { timeoutMs: Infinity });
  await hanging.nextConnection();
  t.equal(await codeOf(client.connect(hanging.path)), 'QMP_STATE');
  t.match(client.state, /^(connecting|negotiating)$/, 'still connecting');
  t.equal(hanging.connections.length, 1, 'no second socket');
  await client.close();
  t.equal(await codeOf(first), 'QMP_ABORTED');
});
