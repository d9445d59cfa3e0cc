// The typed queries against a real QEMU: these pin down what QEMU actually answers.

import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import t from 'tap';
import { QmpClient } from '../../../sidecar/qmp/client.js';
import { QmpProtocolError } from '../../../sidecar/qmp/errors.js';
import { formatQemuVersion, queryCpusFast, queryName, queryStatus, queryUuid, queryVersion, type QmpExecutor } from '../../../sidecar/qmp/queries.js';
import { connectWithRetry, QEMU_BINARY, startQemu } from '../../fixtures/qmp/qemu.js';

const UUID = '5c1d0f6e-8a7b-4c3d-9e2f-0a1b2c3d4e5f';

t.test('identity and vCPU threads of a named VM', async (t) => {
  const qemu = await startQemu(t, ['-name', 'vm1,debug-threads=on', '-uuid', UUID.toUpperCase(), '-smp', '2']);
  const client = new QmpClient();
  t.teardown(() => client.close());
  await connectWithRetry(client, qemu);

  t.equal(await queryName(client), 'vm1');
  t.equal(await queryUuid(client), UUID, 'lower-cased');

  const { stdout } = await promisify(execFile)(QEMU_BINARY, ['--version']);
  const binaryVersion = /version (\d+\.\d+\.\d+)/.exec(stdout)?.[1];
  t.ok(binaryVersion, 'qemu --version parsed');
  t.equal(await queryVersion(client), `QEMU ${binaryVersion}`);
  t.equal(formatQemuVersion(client.qemuVersion!), `QEMU ${binaryVersion}`, 'greeting agrees with query-version');

  t.same(await queryStatus(client), { running: false, status: 'prelaunch' }, '-S leaves the VM in prelaunch');

  const cpus = await queryCpusFast(client);
  t.same(cpus.map((cpu) => cpu.cpuIndex), [0, 1]);
  t.equal(new Set(cpus.map((cpu) => cpu.threadId)).size, 2, 'one thread per vCPU');
  for (const cpu of cpus) {
    t.not(cpu.threadId, qemu.pid, 'a vCPU thread is not the main thread');
    t.ok((await stat(`/proc/${qemu.pid}/task/${cpu.threadId}`)).isDirectory(), `tid ${cpu.threadId} is a task of QEMU`);
    // debug-threads=on names vCPU threads "CPU <n>/TCG": proof these are the vCPU threads.
    t.equal((await readFile(`/proc/${qemu.pid}/task/${cpu.threadId}/comm`, 'utf8')).trim(), `CPU ${cpu.cpuIndex}/TCG`);
    t.match(cpu.qomPath, /^\/machine\//);
  }
});

t.test('a VM without -name or -uuid', async (t) => {
  const qemu = await startQemu(t, []);
  const client = new QmpClient();
  t.teardown(() => client.close());
  await connectWithRetry(client, qemu);
  t.same(await client.execute('query-name'), {}, 'QEMU answers an empty object');
  t.equal(await queryName(client), undefined);
  t.same(await client.execute('query-uuid'), { UUID: '00000000-0000-0000-0000-000000000000' }, 'QEMU answers the nil UUID');
  t.equal(await queryUuid(client), undefined);
});

t.test('replies of the wrong shape are protocol errors, not silently accepted', async (t) => {
  const answering = (value: unknown): QmpExecutor => ({ execute: async <T>() => value as T });
  await t.rejects(queryName(answering({ name: 7 })), QmpProtocolError);
  await t.rejects(queryName(answering([])), QmpProtocolError);
  await t.rejects(queryUuid(answering({ UUID: 'not-a-uuid' })), QmpProtocolError);
  await t.rejects(queryVersion(answering({ qemu: { major: 7, minor: 2 } })), QmpProtocolError);
  await t.rejects(queryStatus(answering({ status: 'running' })), QmpProtocolError);
  await t.rejects(queryCpusFast(answering({})), QmpProtocolError);
  await t.rejects(queryCpusFast(answering([{ 'cpu-index': 0, 'qom-path': '/machine/x' }])), QmpProtocolError, 'thread-id missing');
  t.same(await queryCpusFast(answering([])), []);
});
