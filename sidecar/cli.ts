// Command-line flags of hostinfo-sidecar, parsed without side effects so tests can cover them.

import { parseFlagValues } from '../common/flags.js';

export const USAGE = `Usage: hostinfo-sidecar --channel-fd N ([--qmp-fd N] --guest-fd N [--vhostmd-fd N] |
                        [--qmp PATH] --guest PATH [--vhostmd PATH]) [--qemu-pid PID] [--allow-inspector]
                        [--help] [--version]

Stands beside one QEMU VM and answers its guest's hostinfo requests. hostinfod starts it, one per
registered VM, as an unprivileged user, and is its only source of policy and host data: the
channel (a socket pair on fd N) carries this VM's access decision and host samples. It reads no
configuration file.

  --channel-fd N    the channel to hostinfod (inherited)
  --qmp-fd N        QEMU's QMP monitor, already connected by hostinfod (root-owned VMs)
  --guest-fd N      the hostinfo chardev, already connected by hostinfod
  --qmp PATH        QEMU's QMP monitor socket, to connect to (VMs of this sidecar's own user)
  --guest PATH      the hostinfo chardev socket, to connect to (reconnected whenever it drops)
                    Without a QMP socket (an attached VM whose manager holds QEMU's only one),
                    the VM's name and uuid come from hostinfod and its vCPU threads from their
                    names (QEMU's -name ...,debug-threads=on), and hypervisor answers 503.
  --vhostmd-fd N    the vhostmd port's chardev (org.github.vhostmd.1), connected by hostinfod
  --vhostmd PATH    the vhostmd port's chardev socket, to connect to; without either, the VM
                    has no vhostmd port
  --qemu-pid PID    QEMU's pid, for vcpudelay, until the daemon's access message says otherwise
  --allow-inspector let SIGUSR1 open Node's inspector on 127.0.0.1:9229, for profiling only: any
                    local user can connect to it (hostinfod passes it under
                    HOSTINFO_ALLOW_INSPECTOR=1); without it SIGUSR1 is logged and ignored
  --help, --version

Logs are JSON lines on stderr, including one audit line per guest request (rate-bounded).
Exits 0 when QEMU shuts down or closes QMP, or on SIGTERM/SIGINT; 1 on errors or when the channel
to hostinfod closes; 2 on bad flags.
`;

export type Reach =
  | { readonly kind: 'fd'; readonly qmpFd: number | undefined; readonly guestFd: number; readonly vhostmdFd: number | undefined }
  | { readonly kind: 'path'; readonly qmpPath: string | undefined; readonly guestPath: string; readonly vhostmdPath: string | undefined };

export interface SidecarFlags {
  readonly channelFd: number;
  readonly reach: Reach;
  readonly qemuPid: number | undefined;
  /** Let SIGUSR1 open Node's inspector (profiling only: hostinfod passes it under HOSTINFO_ALLOW_INSPECTOR=1). */
  readonly allowInspector: boolean;
}

export type ParsedSidecarFlags =
  | { readonly kind: 'help' }
  | { readonly kind: 'version' }
  | { readonly kind: 'run'; readonly flags: SidecarFlags }
  | { readonly kind: 'error'; readonly message: string };

function positiveInteger(name: string, text: string | undefined, minimum: number): number | string | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  return /^\d+$/.test(text) && Number.isSafeInteger(value) && value >= minimum ? value : `--${name} expects an integer of at least ${minimum}, received ${JSON.stringify(text)}`;
}

export function parseSidecarFlags(argv: readonly string[]): ParsedSidecarFlags {
  const parsed = parseFlagValues(argv, {
    'channel-fd': { type: 'string' }, 'qmp-fd': { type: 'string' }, 'guest-fd': { type: 'string' },
    qmp: { type: 'string' }, guest: { type: 'string' }, 'qemu-pid': { type: 'string' },
    'vhostmd-fd': { type: 'string' }, vhostmd: { type: 'string' },
    'allow-inspector': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' },
  });
  if (!parsed.ok) return { kind: 'error', message: parsed.message };
  const { values } = parsed;
  if (values.help === true) return { kind: 'help' };
  if (values.version === true) return { kind: 'version' };
  const channelFd = positiveInteger('channel-fd', values['channel-fd'], 3);
  const qmpFd = positiveInteger('qmp-fd', values['qmp-fd'], 3);
  const guestFd = positiveInteger('guest-fd', values['guest-fd'], 3);
  const vhostmdFd = positiveInteger('vhostmd-fd', values['vhostmd-fd'], 3);
  const qemuPid = positiveInteger('qemu-pid', values['qemu-pid'], 1);
  for (const problem of [channelFd, qmpFd, guestFd, vhostmdFd, qemuPid]) if (typeof problem === 'string') return { kind: 'error', message: problem };
  if (channelFd === undefined) return { kind: 'error', message: '--channel-fd is required: hostinfod starts the sidecar' };
  let reach: Reach;
  const byPath = values.qmp !== undefined || values.guest !== undefined || values.vhostmd !== undefined;
  if (typeof guestFd === 'number' && !byPath) reach = { kind: 'fd', qmpFd: qmpFd as number | undefined, guestFd, vhostmdFd: vhostmdFd as number | undefined };
  else if (values.guest !== undefined && values.guest !== '' && values.qmp !== '' && values.vhostmd !== '' && qmpFd === undefined && guestFd === undefined && vhostmdFd === undefined) {
    reach = { kind: 'path', qmpPath: values.qmp, guestPath: values.guest, vhostmdPath: values.vhostmd };
  } else return { kind: 'error', message: 'give either --guest-fd (and maybe --qmp-fd, --vhostmd-fd), or --guest (and maybe --qmp, --vhostmd)' };
  return { kind: 'run', flags: { channelFd: channelFd as number, reach, qemuPid: qemuPid as number | undefined, allowInspector: values['allow-inspector'] === true } };
}
