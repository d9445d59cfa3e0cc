import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { findQemu } from '../../launcher/qemu-binary.js';

async function binDir(names: readonly string[], mode = 0o755): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-bin-'));
  for (const name of names) {
    await writeFile(join(dir, name), '#!/bin/sh\n');
    await chmod(join(dir, name), mode);
  }
  return dir;
}

t.test('--qemu, then HOSTINFO_QEMU, then qemu-kvm, /usr/libexec/qemu-kvm, qemu-system-x86_64 on PATH', async (t) => {
  const both = await binDir(['qemu-kvm', 'qemu-system-x86_64']);
  const debian = await binDir(['qemu-system-x86_64']);
  t.same(findQemu(undefined, { PATH: both }), { found: true, path: join(both, 'qemu-kvm') });
  t.same(findQemu(undefined, { PATH: `/nonexistent:${debian}` }), { found: true, path: join(debian, 'qemu-system-x86_64') });
  t.same(findQemu(undefined, { PATH: debian, HOSTINFO_QEMU: 'qemu-kvm' }), { found: false, tried: ['qemu-kvm'] }, 'an explicit choice is not second-guessed');
  t.same(findQemu(join(debian, 'qemu-system-x86_64'), { PATH: '' }), { found: true, path: join(debian, 'qemu-system-x86_64') });
  t.same(findQemu('qemu-kvm', { PATH: both, HOSTINFO_QEMU: 'qemu-system-x86_64' }), { found: true, path: join(both, 'qemu-kvm') }, 'the flag beats the environment');
});

t.test('not executable, a directory, or a relative PATH entry do not count', async (t) => {
  const plain = await binDir(['qemu-system-x86_64'], 0o644);
  t.same(findQemu(undefined, { PATH: `${plain}:relative/dir` }).found, false);
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-bin-'));
  await mkdir(join(dir, 'qemu-kvm'));
  t.same(findQemu(undefined, { PATH: dir }), { found: false, tried: ['qemu-kvm', '/usr/libexec/qemu-kvm', 'qemu-system-x86_64'] });
});
