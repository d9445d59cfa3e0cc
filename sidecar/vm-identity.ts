// Who the VM is, as the sidecar learns it: over QMP (name, uuid, QEMU's version, vCPU threads),
// or, for an attached VM without a QMP socket to spare, from what hostinfod registered and the
// vCPU threads QEMU named (-name ...,debug-threads=on).

import { performance } from 'node:perf_hooks';
import type { AccessMessage } from '../daemon/messages.js';
import { retryEvery } from '../common/backoff.js';
import { QmpConnectError, queryCpusFast, queryName, queryUuid, queryVersion, type QmpClient, type QmpConnectedSocket, type QmpExecutor } from './qmp/index.js';
import { vcpuThreadsByName } from './vcpu-threads.js';

export const QMP_CONNECT_TIMEOUT_MS = 10_000;
const QMP_RETRY_MS = 50;

export interface VmIdentityFacts {
  readonly name: string | undefined;
  readonly uuid: string | undefined;
  /** QEMU's version from QMP; undefined without QMP (the hypervisor item answers 503). */
  readonly hypervisor: string | undefined;
  readonly vcpuThreads: readonly number[];
}

/**
 * QEMU creates its QMP socket a moment after it starts: a path is retried until it answers.
 * False: `stopped()` became true meanwhile, and no connection is left open.
 * The deadline bounds real waiting (timers), so it is on the real monotonic clock, not on an
 * injected one.
 */
export async function connectQmp(qmp: QmpClient, target: string | QmpConnectedSocket, stopped: () => boolean): Promise<boolean> {
  const deadline = performance.now() + QMP_CONNECT_TIMEOUT_MS;
  try {
    await retryEvery(QMP_RETRY_MS, async () => {
      // Checked before every attempt: a connection opened after stop() would outlive it.
      if (stopped()) throw new Error('stopped');
      await qmp.connect(target, { timeoutMs: Math.max(1, Math.ceil(deadline - performance.now())) });
    }, (error) =>
      // Only "the socket could not be opened" is worth another try: QEMU may not listen yet.
      // A QmpStateError (connect while not idle) is a bug here, and retrying would hide it.
      !stopped() && typeof target === 'string' && error instanceof QmpConnectError && performance.now() < deadline);
    return true;
  } catch (error) {
    if (stopped()) return false;
    throw error;
  }
}

export async function identityOverQmp(qmp: QmpExecutor): Promise<VmIdentityFacts> {
  const [name, uuid, hypervisor, cpus] = await Promise.all([queryName(qmp), queryUuid(qmp), queryVersion(qmp), queryCpusFast(qmp)]);
  return { name, uuid, hypervisor, vcpuThreads: cpus.map((cpu) => cpu.threadId) };
}

/** An attached VM without QMP: what hostinfod registered, and the vCPU threads QEMU named. */
export async function identityWithoutQmp(access: AccessMessage): Promise<VmIdentityFacts> {
  return { name: access.vm.name, uuid: access.vm.uuid, hypervisor: undefined, vcpuThreads: await vcpuThreadsByName(access.vm.pid) };
}
