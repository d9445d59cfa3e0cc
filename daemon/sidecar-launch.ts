// Starting one sidecar: which user it runs as, how it reaches its VM's sockets, and the socket
// pair it talks to the daemon through. The process that parses guest bytes never runs as root:
// for a root-owned VM it runs as the configured sidecar user with the VM's two sockets already
// connected (it could not open them itself, and needs no file at all); for a VM another user
// registered it runs as that user and connects by path, with exactly that user's reach.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GUEST_SOCKET, LOGS_DIR, QMP_SOCKET, openLogNoFollow } from '../common/runtime-tree.js';
import { findAccount, type Account } from './passwd.js';
import { ownerAccount, runAs, type RunAccount } from './run-as.js';
import { connectWhenListening, type VmDirOwner } from './vm-dir.js';

export const SIDECAR_MAIN = fileURLToPath(new URL('../sidecar/main.js', import.meta.url));
/** Sidecar fds: 3 the daemon channel, 4 QMP, 5 the guest chardev (fd mode only). */
export const CHANNEL_FD = 3;
const QMP_FD = 4;
const GUEST_FD = 5;

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

export interface SidecarLaunch {
  readonly runtimeDir: string;
  readonly id: string;
  readonly dir: string;
  readonly qemuPid: number;
  readonly account: SidecarAccount;
  /** True when the daemon can open the VM's sockets itself (it owns the directory). */
  readonly connectForIt: boolean;
  readonly alive: () => boolean;
}

export interface LaunchedSidecar {
  readonly child: ChildProcess;
  /** The daemon's end of the channel. */
  readonly channel: Socket;
}

export async function launchSidecar(launch: SidecarLaunch): Promise<LaunchedSidecar> {
  const qmpPath = join(launch.dir, QMP_SOCKET);
  const guestPath = join(launch.dir, GUEST_SOCKET);
  const sockets = launch.connectForIt
    ? await Promise.all([connectWhenListening(qmpPath, launch.alive), connectWhenListening(guestPath, launch.alive)])
    : undefined;
  const log = openLogNoFollow(join(launch.runtimeDir, LOGS_DIR, `${launch.id}.sidecar.log`));
  try {
    const reach = sockets === undefined ? ['--qmp', qmpPath, '--guest', guestPath] : ['--qmp-fd', String(QMP_FD), '--guest-fd', String(GUEST_FD)];
    const sidecar = [process.execPath, SIDECAR_MAIN, '--channel-fd', String(CHANNEL_FD), ...reach, '--qemu-pid', String(launch.qemuPid)];
    const [command, prefix] = runAs(launch.account);
    const child = spawn(command, [...prefix, ...sidecar], {
      stdio: ['ignore', log, log, 'pipe', ...(sockets ?? [])],
      // Nothing of the daemon's environment is the sidecar's business.
      env: {},
      cwd: '/',
    });
    child.on('error', () => {});
    const channel = child.stdio[CHANNEL_FD] as Socket | null;
    if (channel === null || child.pid === undefined) {
      channel?.destroy();
      throw new Error(`cannot start ${SIDECAR_MAIN}`);
    }
    return { child, channel };
  } finally {
    closeSync(log);
    // The sidecar has its own copies; QEMU must see the connection end when the sidecar does.
    for (const socket of sockets ?? []) socket.destroy();
  }
}
