// Typed wrappers for the few queries the sidecar needs. Each checks the reply's shape (qapi
// schema: misc.json query-name/query-uuid/query-version, run-state.json query-status,
// machine.json query-cpus-fast, query-memory-size-summary and query-balloon) so the rest of the
// sidecar never handles raw QMP JSON.
// A reply of the wrong shape is a QmpProtocolError: it means we are not talking to the QEMU we think.

import { isCount, isPlainObject } from '../../common/json-checks.js';
import { QmpCommandError, QmpProtocolError } from './errors.js';
import type { QmpJsonObject } from './framing.js';
import type { QmpVersionTriple } from './messages.js';
import type { QmpExecuteOptions } from './client.js';

/** What the queries need of a client; QmpClient satisfies it. */
export interface QmpExecutor {
  execute<T = unknown>(command: string, args?: QmpJsonObject, options?: QmpExecuteOptions): Promise<T>;
}

export interface QmpStatus {
  /** True when vCPUs execute (QEMU's `running`), false when paused, prelaunch, shut down, ... */
  readonly running: boolean;
  /** QEMU's RunState, e.g. running, paused, prelaunch, shutdown, inmigrate, guest-panicked. */
  readonly status: string;
}

export interface QmpCpu {
  readonly cpuIndex: number;
  /** Host thread id (tid) of the vCPU thread: /proc/<qemu pid>/task/<threadId>. */
  readonly threadId: number;
  readonly qomPath: string;
}

const isObject = (value: unknown): value is QmpJsonObject => isPlainObject(value);

const shapeError = (command: string, what: string): QmpProtocolError => new QmpProtocolError(`${command} returned ${what}`);

async function queryObject(qmp: QmpExecutor, command: string, options: QmpExecuteOptions | undefined): Promise<QmpJsonObject> {
  const value = await qmp.execute(command, undefined, options);
  if (!isObject(value)) throw shapeError(command, 'a non-object');
  return value;
}

/** The VM's -name, or undefined when QEMU was started without one (QEMU then returns {}). */
export async function queryName(qmp: QmpExecutor, options?: QmpExecuteOptions): Promise<string | undefined> {
  const { name } = await queryObject(qmp, 'query-name', options);
  if (name === undefined) return undefined;
  if (typeof name !== 'string') throw shapeError('query-name', 'a non-string name');
  return name;
}

export const NIL_UUID = '00000000-0000-0000-0000-000000000000';
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a UUID other than the nil one: what -uuid can be (hostinfod's stand-in for none is not). */
export function isVmUuid(value: string | undefined): value is string {
  return value !== undefined && UUID_PATTERN.test(value) && value !== NIL_UUID;
}

/** The VM's -uuid in lower case, or undefined when none was given (QEMU reports the nil UUID). */
export async function queryUuid(qmp: QmpExecutor, options?: QmpExecuteOptions): Promise<string | undefined> {
  const { UUID: uuid } = await queryObject(qmp, 'query-uuid', options);
  if (typeof uuid !== 'string' || !UUID_PATTERN.test(uuid)) throw shapeError('query-uuid', 'no UUID string');
  const lower = uuid.toLowerCase();
  return lower === NIL_UUID ? undefined : lower;
}

/**
 * `QEMU major.minor.micro`. The package string (e.g. "Debian 1:7.2+dfsg-7+deb12u18+b3") is left
 * out on purpose: it names the host's distribution and patch level, more than a guest needs.
 */
export const formatQemuVersion = (version: QmpVersionTriple): string => `QEMU ${version.major}.${version.minor}.${version.micro}`;

export async function queryVersionTriple(qmp: QmpExecutor, options?: QmpExecuteOptions): Promise<QmpVersionTriple & { readonly package: string }> {
  const { qemu, package: pkg } = await queryObject(qmp, 'query-version', options);
  if (!isObject(qemu) || !isCount(qemu['major']) || !isCount(qemu['minor']) || !isCount(qemu['micro'])) {
    throw shapeError('query-version', 'no qemu {major, minor, micro}');
  }
  return { major: qemu['major'], minor: qemu['minor'], micro: qemu['micro'], package: typeof pkg === 'string' ? pkg : '' };
}

/** e.g. `QEMU 7.2.22`: the value the guest sees as `hypervisor`. */
export async function queryVersion(qmp: QmpExecutor, options?: QmpExecuteOptions): Promise<string> {
  return formatQemuVersion(await queryVersionTriple(qmp, options));
}

export async function queryStatus(qmp: QmpExecutor, options?: QmpExecuteOptions): Promise<QmpStatus> {
  // `singlestep` is deliberately not read: deprecated, and gone from StatusInfo in newer QEMU.
  const { running, status } = await queryObject(qmp, 'query-status', options);
  if (typeof running !== 'boolean' || typeof status !== 'string') throw shapeError('query-status', 'no running/status');
  return { running, status };
}

/** One entry per vCPU, in QEMU's order. query-cpus-fast does not interrupt the vCPUs. */
export async function queryCpusFast(qmp: QmpExecutor, options?: QmpExecuteOptions): Promise<QmpCpu[]> {
  const value = await qmp.execute('query-cpus-fast', undefined, options);
  if (!Array.isArray(value)) throw shapeError('query-cpus-fast', 'a non-array');
  return value.map((cpu: unknown) => {
    if (!isObject(cpu)) throw shapeError('query-cpus-fast', 'a non-object CPU');
    const cpuIndex = cpu['cpu-index'];
    const threadId = cpu['thread-id'];
    const qomPath = cpu['qom-path'];
    if (!isCount(cpuIndex) || !isCount(threadId) || threadId === 0 || typeof qomPath !== 'string') {
      throw shapeError('query-cpus-fast', 'a CPU without cpu-index, thread-id or qom-path');
    }
    return { cpuIndex, threadId, qomPath };
  });
}

export interface QmpMemorySize {
  /** -m, in bytes. */
  readonly baseBytes: number;
  /** Hot-pluggable memory devices present (pc-dimm, virtio-mem, ...), bytes; 0 when none or not supported. */
  readonly pluggedBytes: number;
}

/**
 * machine.json MemoryInfo (since 2.11): `base-memory` is -m, `plugged-memory` the memory of
 * hot-pluggable devices, omitted by targets built without memory hot-plug. QEMU 7.2 with -m 256
 * answers {"base-memory": 268435456, "plugged-memory": 0}.
 */
export async function queryMemorySizeSummary(qmp: QmpExecutor, options?: QmpExecuteOptions): Promise<QmpMemorySize> {
  const { 'base-memory': base, 'plugged-memory': plugged } = await queryObject(qmp, 'query-memory-size-summary', options);
  if (!isCount(base) || (plugged !== undefined && !isCount(plugged))) throw shapeError('query-memory-size-summary', 'no base-memory/plugged-memory byte counts');
  return { baseBytes: base, pluggedBytes: plugged ?? 0 };
}

/**
 * Error classes of query-balloon that mean "no working balloon": DeviceNotActive without a balloon
 * device ("No balloon device has been activated"), KvmMissingCap when KVM cannot drive it.
 */
const NO_BALLOON = new Set(['DeviceNotActive', 'KvmMissingCap']);

/**
 * machine.json BalloonInfo `actual`: the guest's RAM as the balloon leaves it (RAM less the
 * balloon), bytes; undefined when the VM has no working balloon device.
 */
export async function queryBalloon(qmp: QmpExecutor, options?: QmpExecuteOptions): Promise<number | undefined> {
  let value: unknown;
  try {
    value = await qmp.execute('query-balloon', undefined, options);
  } catch (error) {
    if (error instanceof QmpCommandError && NO_BALLOON.has(error.errorClass)) return undefined;
    throw error;
  }
  if (!isObject(value) || !isCount(value['actual'])) throw shapeError('query-balloon', 'no actual byte count');
  return value['actual'];
}
