// vCPU threads by name, for a VM without a QMP socket: against a fake /proc (temp dir of
// <pid>/task/<tid>/comm files) for the orderings and names, then against a real QEMU with
// debug-threads=on, where the answer must be the thread ids QMP's query-cpus-fast gives.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { QmpClient } from '../../sidecar/qmp/client.js';
import { queryCpusFast } from '../../sidecar/qmp/queries.js';
import { VCPU_THREAD_NAME, vcpuThreadsByName } from '../../sidecar/vcpu-threads.js';
import { connectWithRetry, startQemu } from '../fixtures/qmp/qemu.js';

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

/** A fake proc root with one process `pid` whose threads have these comm texts (as the kernel writes them: a newline at the end). */
function procRoot(tap: Tap, pid: number, threads: Record<number, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'hostinfo-proc-'));
  tap.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const [tid, comm] of Object.entries(threads)) {
    mkdirSync(join(root, String(pid), 'task', tid), { recursive: true });
    writeFileSync(join(root, String(pid), 'task', tid, 'comm'), `${comm}\n`);
  }
  mkdirSync(join(root, String(pid), 'task'), { recursive: true });
  return root;
}

t.test('sorted by vCPU index, not by thread id', async (t) => {
  const root = procRoot(t, 900, {
    900: 'qemu-system-x86', 901: 'call_rcu', 905: 'CPU 2/KVM', 906: 'CPU 0/KVM', 907: 'CPU 10/KVM', 908: 'CPU 1/KVM', 920: 'worker',
  });
  t.same(await vcpuThreadsByName(900, root), [906, 908, 905, 907], 'index 0, 1, 2, 10: numeric, not text order');
});

t.test('only "CPU <index>/<accelerator>" names count', async (t) => {
  const names = ['qemu-system-x86', 'worker', 'CPU x/KVM', 'CPU /KVM', 'CPU 0/kvm', 'CPU 0/', 'CPU 0', 'ALL CPUs/TCG', 'xCPU 0/KVM', 'CPU 0/KVM2', 'CPU -1/KVM', 'vnc_worker', 'IO mon_iothread'];
  const threads = Object.fromEntries(names.map((name, i) => [1000 + i, name]));
  const root = procRoot(t, 999, { ...threads, 1100: 'CPU 0/TCG', 1101: 'CPU 1/HVF' });
  t.same(await vcpuThreadsByName(999, root), [1100, 1101], 'every accelerator\'s, nothing else');
  for (const name of names) t.notOk(VCPU_THREAD_NAME.test(name), `not a vCPU: ${JSON.stringify(name)}`);
});

t.test('what is not there gives no threads', async (t) => {
  const root = procRoot(t, 500, { 501: 'qemu-system-x86' });
  t.same(await vcpuThreadsByName(500, root), [], 'threads not named (no debug-threads=on)');
  t.same(await vcpuThreadsByName(12345, root), [], 'no such process');
  t.same(await vcpuThreadsByName(500, join(root, 'missing')), [], 'no proc root at all');
  mkdirSync(join(root, '600', 'task', '601'), { recursive: true });
  mkdirSync(join(root, '600', 'task', 'not-a-tid', 'comm'), { recursive: true });
  mkdirSync(join(root, '600', 'task', '602'), { recursive: true });
  writeFileSync(join(root, '600', 'task', '602', 'comm'), 'CPU 0/KVM\n');
  t.same(await vcpuThreadsByName(600, root), [602], 'a thread without comm (it ended meanwhile) and a non-numeric entry are skipped');
});

t.test('a real QEMU with debug-threads=on', async (t) => {
  const qemu = await startQemu(t, ['-name', 'x,debug-threads=on', '-smp', '2']);
  const client = new QmpClient();
  t.teardown(() => client.close());
  await connectWithRetry(client, qemu);
  const expected = (await queryCpusFast(client)).sort((a, b) => a.cpuIndex - b.cpuIndex).map((cpu) => cpu.threadId);
  t.equal(expected.length, 2, 'QMP: two vCPUs');
  // QMP answers once the machine is built, vCPU threads included; poll anyway, with a deadline.
  let found: number[] = [];
  const deadline = Date.now() + 10_000;
  while (found.length < 2 && Date.now() < deadline) {
    found = await vcpuThreadsByName(qemu.pid);
    if (found.length < 2) await new Promise((resolve) => setTimeout(resolve, 25));
  }
  t.same(found, expected, 'the thread ids query-cpus-fast gives, in vCPU index order');

  const plain = await startQemu(t, ['-name', 'y', '-smp', '2']);
  const plainClient = new QmpClient();
  t.teardown(() => plainClient.close());
  await connectWithRetry(plainClient, plain);
  t.equal((await queryCpusFast(plainClient)).length, 2, 'sanity: the vCPU threads exist');
  t.same(await vcpuThreadsByName(plain.pid), [], 'without debug-threads=on they are not named, and none is guessed');
});
