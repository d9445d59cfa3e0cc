import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { findGroupId, resolveGroup } from '../../daemon/group.js';
import { tempDir } from './helpers.js';

const GROUP = 'root:x:0:\nkvm:x:104:alice\nhostinfo:x:998:libvirt-qemu\nbroken:x:abc:\nhostinfo:x:5:\n';

t.test('a group name from /etc/group text', async (t) => {
  t.equal(findGroupId(GROUP, 'hostinfo'), 998, 'first entry wins');
  t.equal(findGroupId(GROUP, 'root'), 0);
  t.equal(findGroupId(GROUP, 'host'), undefined, 'no prefix matching');
  t.equal(findGroupId(GROUP, 'broken'), undefined);
});

t.test('resolveGroup reads the file and falls back to numbers', async (t) => {
  const file = join(tempDir(t), 'group');
  writeFileSync(file, GROUP);
  t.equal(resolveGroup('kvm', file), 104);
  t.equal(resolveGroup('1234', file), 1234);
  t.throws(() => resolveGroup('nosuchgroup', file), { code: 'GROUP_UNKNOWN' });
});
