// query-memory-size-summary and query-balloon against a real QEMU (-m 256 -smp 2), without and
// with a virtio-balloon device, and the per-VM meter reading that QEMU from the real /proc.

import t from 'tap';
import { QmpClient } from '../../../sidecar/qmp/client.js';
import { QmpCommandError, QmpProtocolError } from '../../../sidecar/qmp/errors.js';
import { queryBalloon, queryCpusFast, queryMemorySizeSummary, type QmpExecutor } from '../../../sidecar/qmp/queries.js';
import { vmMeters } from '../../../sidecar/vm-meters.js';
import { connectWithRetry, startQemu } from '../../fixtures/qmp/qemu.js';

const MIB_256 = 256 * 1024 * 1024;

async function qemuWith(t: { teardown(fn: () => unknown): void }, extra: readonly string[]) {
  const qemu = await startQemu(t, ['-m', '256', '-smp', '2', ...extra]);
  const client = new QmpClient();
  t.teardown(() => client.close());
  await connectWithRetry(client, qemu);
  return { qemu, client };
}

t.test('without a balloon device', async (t) => {
  const { qemu, client } = await qemuWith(t, []);
  t.same(await client.execute('query-memory-size-summary'), { 'base-memory': MIB_256, 'plugged-memory': 0 }, 'what QEMU answers');
  t.same(await queryMemorySizeSummary(client), { baseBytes: MIB_256, pluggedBytes: 0 });
  const raw = await client.execute('query-balloon').catch((error: unknown) => error);
  t.ok(raw instanceof QmpCommandError && raw.errorClass === 'DeviceNotActive', `query-balloon fails with DeviceNotActive: ${String(raw)}`);
  t.equal(await queryBalloon(client), undefined, 'which is "no balloon"');

  const threads = (await queryCpusFast(client)).map((cpu) => cpu.threadId);
  let clock = 0;
  const tick = vmMeters({ pid: () => qemu.pid, vcpuThreads: threads, qmp: client, monotonic: () => clock });
  const facts = await tick();
  t.same(facts?.memory, { value: { total: 262144, balloon: null }, measuredAt: 0 }, 'vmmem: total=262144 balloon=none');
  const cpuTime = facts?.cpuTime;
  t.ok(cpuTime !== undefined && 'value' in cpuTime && cpuTime.value > 0, `vmcputime from QEMU's real /proc stat: ${JSON.stringify(cpuTime)}`);
  t.ok(facts?.cpuLimit !== undefined && 'value' in facts.cpuLimit, `cpulimit read from this host's cgroups: ${JSON.stringify(facts?.cpuLimit)}`);
  clock = 1;
  const second = await tick();
  t.ok(second?.vcpuUsage !== undefined && 'value' in second.vcpuUsage && second.vcpuUsage.value === 0, `a paused (-S) VM's vCPUs ran 0%: ${JSON.stringify(second?.vcpuUsage)}`);
});

t.test('with -device virtio-balloon', async (t) => {
  const { client } = await qemuWith(t, ['-device', 'virtio-balloon']);
  t.same(await client.execute('query-balloon'), { actual: MIB_256 }, 'what QEMU answers: nothing ballooned yet');
  t.equal(await queryBalloon(client), MIB_256);
  t.same(await queryMemorySizeSummary(client), { baseBytes: MIB_256, pluggedBytes: 0 });
});

t.test('replies of the wrong shape are protocol errors; other failures pass through', async (t) => {
  const answering = (value: unknown): QmpExecutor => ({ execute: async <T>() => value as T });
  await t.rejects(queryMemorySizeSummary(answering({ 'plugged-memory': 0 })), QmpProtocolError);
  await t.rejects(queryMemorySizeSummary(answering({ 'base-memory': -1 })), QmpProtocolError);
  await t.rejects(queryMemorySizeSummary(answering({ 'base-memory': 1, 'plugged-memory': 'x' })), QmpProtocolError);
  t.same(await queryMemorySizeSummary(answering({ 'base-memory': 1 })), { baseBytes: 1, pluggedBytes: 0 }, 'plugged-memory is optional');
  await t.rejects(queryBalloon(answering({ actual: 1.5 })), QmpProtocolError);
  const failing = (errorClass: string): QmpExecutor => ({ execute: async () => { throw new QmpCommandError('query-balloon', errorClass, 'x'); } });
  t.equal(await queryBalloon(failing('KvmMissingCap')), undefined, 'KVM cannot drive it: no balloon either');
  await t.rejects(queryBalloon(failing('GenericError')), QmpCommandError, 'any other error is an error');
});
