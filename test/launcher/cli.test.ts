import t from 'tap';
import { parseLauncherFlags, USAGE } from '../../launcher/cli.js';

t.test('launcher options before --, QEMU arguments after it, unchanged', async (t) => {
  t.same(parseLauncherFlags(['--qemu', '/q', '--config=/c.toml', '--policy-dir', 'p', '--runtime-dir', '/r', '--transport', 'virtio-serial', '--', '-name', 'x', '--', '-nographic']), {
    kind: 'run',
    flags: { qemu: '/q', configPath: '/c.toml', policyDir: 'p', runtimeDir: '/r', transport: 'virtio-serial', quiet: false, qemuArgs: ['-name', 'x', '--', '-nographic'] },
  });
  t.same(parseLauncherFlags(['--', '-version']), {
    kind: 'run',
    flags: { qemu: undefined, configPath: undefined, policyDir: undefined, runtimeDir: undefined, transport: 'isa-serial', quiet: false, qemuArgs: ['-version'] },
  });
  t.same(parseLauncherFlags(['--', '--help']), { kind: 'run', flags: { qemu: undefined, configPath: undefined, policyDir: undefined, runtimeDir: undefined, transport: 'isa-serial', quiet: false, qemuArgs: ['--help'] } }, "QEMU's --help is QEMU's");
});

t.test('help and version of its own', async (t) => {
  t.same(parseLauncherFlags(['--help', '--', 'x']), { kind: 'help' });
  t.same(parseLauncherFlags(['-h']), { kind: 'help' });
  t.same(parseLauncherFlags(['--version']), { kind: 'version' });
});

t.test('mistakes are errors that say what to do', async (t) => {
  t.same(parseLauncherFlags(['-nographic', '-m', '1G']), { kind: 'error', message: 'unknown option "-nographic"; QEMU\'s arguments go after --, as in: hostinfo-qemu -- -nographic -m 1G' });
  t.same(parseLauncherFlags([]), { kind: 'error', message: 'no QEMU arguments: hostinfo-qemu [options] -- <qemu args>' });
  t.same(parseLauncherFlags(['--qemu']), { kind: 'error', message: '--qemu needs a value' });
  t.same(parseLauncherFlags(['--qemu', '--', 'x']), { kind: 'error', message: '--qemu needs a value' });
  t.same(parseLauncherFlags(['--transport', 'pci', '--', 'x']), { kind: 'error', message: '--transport expects isa-serial or virtio-serial, received "pci"' });
});

t.test('--quiet: a flag of its own, documented', async (t) => {
  const quiet = parseLauncherFlags(['--quiet', '--transport', 'virtio-serial', '--', '-nodefaults']);
  t.match(quiet, { kind: 'run', flags: { quiet: true, transport: 'virtio-serial', qemuArgs: ['-nodefaults'] } });
  t.match(parseLauncherFlags(['--', '--quiet']), { kind: 'run', flags: { quiet: false, qemuArgs: ['--quiet'] } }, "after -- it is QEMU's");
  t.same(parseLauncherFlags(['--quiet=yes', '--', 'x']), { kind: 'error', message: '--quiet takes no value' });
  t.match(USAGE, /--quiet\s+do not print the guest port line/);
  t.match(USAGE, /\[--quiet\]/);
});
