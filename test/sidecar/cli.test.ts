// hostinfo-sidecar's flags: the two ways to reach a VM (fds handed over, or paths), now each with
// an optional vhostmd port, and the mixtures that are refused.

import t from 'tap';
import { parseSidecarFlags } from '../../sidecar/cli.js';

const run = (argv: readonly string[]) => {
  const parsed = parseSidecarFlags(argv);
  return parsed.kind === 'run' ? parsed.flags : parsed;
};

t.test('fd mode: guest, QMP and vhostmd descriptors', async (t) => {
  t.same(run(['--channel-fd', '3', '--qmp-fd', '4', '--guest-fd', '5']), { channelFd: 3, reach: { kind: 'fd', qmpFd: 4, guestFd: 5, vhostmdFd: undefined }, qemuPid: undefined, allowInspector: false });
  t.same(run(['--channel-fd', '3', '--qmp-fd', '4', '--guest-fd', '5', '--vhostmd-fd', '6', '--qemu-pid', '77']), { channelFd: 3, reach: { kind: 'fd', qmpFd: 4, guestFd: 5, vhostmdFd: 6 }, qemuPid: 77, allowInspector: false });
  t.same(run(['--channel-fd', '3', '--guest-fd', '5', '--vhostmd-fd', '2']), { kind: 'error', message: '--vhostmd-fd expects an integer of at least 3, received "2"' });
});

t.test('path mode: guest, QMP and vhostmd sockets', async (t) => {
  t.same(run(['--channel-fd', '3', '--guest', '/r/g.sock', '--qmp', '/r/q.sock']), { channelFd: 3, reach: { kind: 'path', qmpPath: '/r/q.sock', guestPath: '/r/g.sock', vhostmdPath: undefined }, qemuPid: undefined, allowInspector: false });
  t.same(run(['--channel-fd', '3', '--guest', '/r/g.sock', '--vhostmd', '/r/vhostmd.sock']), { channelFd: 3, reach: { kind: 'path', qmpPath: undefined, guestPath: '/r/g.sock', vhostmdPath: '/r/vhostmd.sock' }, qemuPid: undefined, allowInspector: false });
});

t.test('mixtures and gaps are refused', async (t) => {
  const refused = /^give either --guest-fd/;
  t.match(run(['--channel-fd', '3', '--guest-fd', '5', '--vhostmd', '/r/v.sock']), { kind: 'error', message: refused }, 'fd guest, path vhostmd');
  t.match(run(['--channel-fd', '3', '--guest', '/r/g.sock', '--vhostmd-fd', '6']), { kind: 'error', message: refused }, 'path guest, fd vhostmd');
  t.match(run(['--channel-fd', '3', '--vhostmd', '/r/v.sock']), { kind: 'error', message: refused }, 'vhostmd without a guest port');
  t.match(run(['--channel-fd', '3', '--guest', '/r/g.sock', '--vhostmd', '']), { kind: 'error', message: refused }, 'an empty path');
  t.match(run(['--guest-fd', '5']), { kind: 'error', message: /--channel-fd is required/ });
});

t.test('--allow-inspector: only when asked for', async (t) => {
  t.match(run(['--channel-fd', '3', '--guest-fd', '5', '--allow-inspector']), { allowInspector: true });
  t.match(run(['--channel-fd', '3', '--guest-fd', '5']), { allowInspector: false });
});
