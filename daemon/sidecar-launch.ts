// Starting one sidecar: which user it runs as, how it reaches its VM's sockets, and the socket
// pair it talks to the daemon through. The process that parses guest bytes never runs as root:
// for a root-owned VM it runs as the configured sidecar user with the VM's two sockets already
// connected (it could not open them itself, and needs no file at all); for a VM another user
// registered it runs as that user and connects by path, with exactly that user's reach. An
// attached VM's sockets are wherever its manager put them, and QMP is optional there.

import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALLOW_INSPECTOR_ENV } from '../common/inspector-signal.js';
import { GUEST_SOCKET, LOGS_DIR, QMP_SOCKET, VHOSTMD_SOCKET, openLogNoFollow } from '../common/runtime-tree.js';
import type { VmRecord } from '../common/vm-record.js';
import { findAccount, type Account } from './passwd.js';
import { ownerAccount, runAs, type RunAccount } from './run-as.js';
import { unsafeSocketPath } from './socket-path.js';
import { connectWhenListening, type VmDirOwner } from './vm-dir.js';

/** tsc's entry point of the sidecar. */
export const SIDECAR_MAIN = fileURLToPath(new URL('../sidecar/main.js', import.meta.url));
/** The same program bundled into one CommonJS file by `npm run build` (tools/bundle.mjs): less memory per VM. */
export const SIDECAR_BUNDLE = fileURLToPath(new URL('../bundle/sidecar/main.js', import.meta.url));

/**
 * The sidecar to spawn: the bundle, unless it is missing or older than tsc's output (only `tsc`
 * was run since), which then runs as it is: slower to load and larger, never stale. Looked at
 * for every start, so a package replaced under a running daemon is picked up as it is.
 */
export function sidecarMain(bundle = SIDECAR_BUNDLE, compiled = SIDECAR_MAIN): string {
  const mtime = (path: string): number | undefined => statSync(path, { throwIfNoEntry: false })?.mtimeMs;
  const bundled = mtime(bundle);
  return bundled !== undefined && bundled >= (mtime(compiled) ?? 0) ? bundle : compiled;
}
/** Sidecar fds: 3 the daemon channel, 4 QMP, 5 the guest chardev, 6 the vhostmd chardev (fd mode only). */
export const CHANNEL_FD = 3;
const QMP_FD = 4;
const GUEST_FD = 5;
const VHOSTMD_FD = 6;

/** Who a sidecar runs as (see run-as.ts). */
export type SidecarAccount = RunAccount;

/** Who the sidecar of a VM whose directory `owner` owns runs as, or why it cannot run. */
export function sidecarAccount(owner: VmDirOwner, daemonUid: number, sidecarUser: string, lookup: (name: string) => Account | undefined = findAccount): SidecarAccount | string {
  if (daemonUid !== 0) {
    return owner.uid === daemonUid ? { kind: 'as-daemon' } : `the directory belongs to uid ${owner.uid}; a daemon not running as root serves only its own user's VMs`;
  }
  if (owner.uid !== 0) return ownerAccount(owner);
  const account = lookup(sidecarUser);
  if (account === undefined) return `sidecar_user "${sidecarUser}" does not exist (create it: useradd --system --no-create-home --shell /usr/sbin/nologin ${sidecarUser}), and sidecars never run as root`;
  if (account.uid === 0) return `sidecar_user "${sidecarUser}" is root; sidecars never run as root`;
  return { kind: 'account', uid: account.uid, gid: account.gid, groups: 'clear' };
}

/** Where a VM's sockets are, and who connects to them. */
export interface SidecarReach {
  readonly guestSocket: string;
  /** Undefined: an attached VM without a QMP socket to spare. */
  readonly qmpSocket: string | undefined;
  /** The vhostmd port's chardev; undefined: the VM has none. */
  readonly vhostmdSocket?: string | undefined;
  /** The daemon connects and hands the fds over (the sidecar's user could not reach them). */
  readonly connectForIt: boolean;
  /** The sockets are outside the VM's directory (attached): checked before the daemon connects. */
  readonly outside: boolean;
}

/** A launched VM's sockets are in its directory; an attached one's where its record says. */
export function reachOf(dir: string, record: VmRecord, connectForIt: boolean): SidecarReach {
  if (record.attached === undefined) {
    const vhostmd = record.vhostmd === true ? { vhostmdSocket: join(dir, VHOSTMD_SOCKET) } : {};
    return { guestSocket: join(dir, GUEST_SOCKET), qmpSocket: join(dir, QMP_SOCKET), ...vhostmd, connectForIt, outside: false };
  }
  return { ...record.attached, connectForIt, outside: true };
}

export interface SidecarLaunch {
  readonly runtimeDir: string;
  readonly id: string;
  readonly reach: SidecarReach;
  readonly qemuPid: number;
  readonly account: SidecarAccount;
  /** Whose sockets the daemon may connect to outside the VM's directory (root, and itself). */
  readonly trustedUids: readonly number[];
  readonly alive: () => boolean;
}

export interface LaunchedSidecar {
  readonly child: ChildProcess;
  /** The daemon's end of the channel. */
  readonly channel: Socket;
}

export async function launchSidecar(launch: SidecarLaunch): Promise<LaunchedSidecar> {
  const { reach } = launch;
  const sockets = reach.connectForIt ? await connectForSidecar(launch) : undefined;
  const log = openLogNoFollow(join(launch.runtimeDir, LOGS_DIR, `${launch.id}.sidecar.log`));
  try {
    const main = sidecarMain();
    const inspector = process.env[ALLOW_INSPECTOR_ENV] === '1' ? ['--allow-inspector'] : [];
    const sidecar = [process.execPath, main, '--channel-fd', String(CHANNEL_FD), ...reachFlags(reach, sockets !== undefined), '--qemu-pid', String(launch.qemuPid), ...inspector];
    const [command, prefix] = runAs(launch.account);
    // fd 4 stays closed in the sidecar when there is no QMP socket.
    const passed: StdioOptions = sockets === undefined ? [] : [sockets.qmp ?? 'ignore', sockets.guest, ...(sockets.vhostmd === undefined ? [] : [sockets.vhostmd])];
    const child = spawn(command, [...prefix, ...sidecar], {
      stdio: ['ignore', log, log, 'pipe', ...passed],
      // Nothing of the daemon's environment is the sidecar's business.
      env: {},
      cwd: '/',
    });
    child.on('error', () => {});
    const channel = child.stdio[CHANNEL_FD] as Socket | null;
    if (channel === null || child.pid === undefined) {
      channel?.destroy();
      throw new Error(`cannot start ${main}`);
    }
    return { child, channel };
  } finally {
    closeSync(log);
    // The sidecar has its own copies; QEMU must see the connection end when the sidecar does.
    sockets?.qmp?.destroy();
    sockets?.guest.destroy();
    sockets?.vhostmd?.destroy();
  }
}

function reachFlags(reach: SidecarReach, byFd: boolean): string[] {
  const qmp = reach.qmpSocket === undefined ? [] : byFd ? ['--qmp-fd', String(QMP_FD)] : ['--qmp', reach.qmpSocket];
  const vhostmd = reach.vhostmdSocket === undefined ? [] : byFd ? ['--vhostmd-fd', String(VHOSTMD_FD)] : ['--vhostmd', reach.vhostmdSocket];
  return [...qmp, ...(byFd ? ['--guest-fd', String(GUEST_FD)] : ['--guest', reach.guestSocket]), ...vhostmd];
}

type DaemonSockets = { qmp: Socket | undefined; guest: Socket; vhostmd: Socket | undefined };

/** The daemon's own connections for a sidecar that could not open them, checked first when outside the VM's directory. */
async function connectForSidecar(launch: SidecarLaunch): Promise<DaemonSockets> {
  const { reach } = launch;
  const paths = [reach.qmpSocket, reach.guestSocket, reach.vhostmdSocket].filter((path): path is string => path !== undefined);
  for (const path of reach.outside ? paths : []) {
    const unsafe = unsafeSocketPath(path, launch.trustedUids);
    if (unsafe !== undefined) throw new Error(`not connecting to ${path}: ${unsafe}`);
  }
  const optional = (path: string | undefined): Promise<Socket | undefined> => (path === undefined ? Promise.resolve(undefined) : connectWhenListening(path, launch.alive));
  const [qmp, guest, vhostmd] = await Promise.allSettled([optional(reach.qmpSocket), connectWhenListening(reach.guestSocket, launch.alive), optional(reach.vhostmdSocket)]);
  if (qmp.status === 'fulfilled' && guest.status === 'fulfilled' && vhostmd.status === 'fulfilled') return { qmp: qmp.value, guest: guest.value, vhostmd: vhostmd.value };
  // Some connected while another failed: QEMU must not keep a client nobody reads.
  for (const settled of [qmp, guest, vhostmd]) if (settled.status === 'fulfilled') settled.value?.destroy();
  throw ([qmp, guest, vhostmd].find((settled) => settled.status === 'rejected') as PromiseRejectedResult).reason as Error;
}
