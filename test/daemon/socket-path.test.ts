// unsafeSocketPath against real directories, symlinks and sockets: as root, under a root-owned
// 0755 directory of the test's own, with `nobody` as the untrusted user (its files made with
// chown/lchown). Trusted: root only, as for the root daemon.

import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, lchownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { unsafeSocketPath } from '../../daemon/socket-path.js';

const isRoot = process.geteuid?.() === 0;
const NOBODY = Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim());
const TRUSTED = [0];

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

/** A root-owned 0755 directory in /tmp (root's, sticky: trusted on the way). */
function base(tap: Tap): string {
  const dir = mkdtempSync('/tmp/hostinfo-socket-path-');
  chmodSync(dir, 0o755);
  tap.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function dir(path: string, mode = 0o755, uid = 0): string {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode); // after mkdir: the umask does not apply
  chownSync(path, uid, uid === 0 ? 0 : NOBODY);
  return path;
}

async function socket(tap: Tap, path: string, uid = 0): Promise<string> {
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
  tap.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  if (uid !== 0) chownSync(path, uid, NOBODY);
  return path;
}

function link(target: string, path: string, uid = 0): string {
  symlinkSync(target, path);
  if (uid !== 0) lchownSync(path, uid, NOBODY);
  return path;
}

t.test('unsafeSocketPath', { skip: isRoot ? false : 'needs root (chown to nobody)' }, async (t) => {
  t.ok(Number.isInteger(NOBODY) && NOBODY > 0, `nobody is uid ${NOBODY}`);

  t.test('a socket of a trusted user in trusted directories is safe', async (t) => {
    const root = base(t);
    const path = await socket(t, join(dir(join(root, 'a/b')), 'q.sock'));
    t.equal(unsafeSocketPath(path, TRUSTED), undefined);
    t.equal(unsafeSocketPath(`${root}/a/./b/../b/q.sock`, TRUSTED), undefined, '. and .. components of trusted directories');
  });

  t.test('a directory others may change, on the way', async (t) => {
    const root = base(t);
    const groupWritable = await socket(t, join(dir(join(root, 'gw'), 0o775), 'q.sock'));
    t.match(unsafeSocketPath(groupWritable, TRUSTED), new RegExp(`^${root}/gw \\(owner uid 0, mode 775\\) may be changed by an untrusted user$`), 'group-writable without the sticky bit');
    const worldWritable = await socket(t, join(dir(join(root, 'ww/deeper'), 0o755), 'q.sock'));
    dir(join(root, 'ww'), 0o757);
    t.match(unsafeSocketPath(worldWritable, TRUSTED), /ww \(owner uid 0, mode 757\) may be changed/, 'world-writable without the sticky bit, above the last directory');
    const owned = await socket(t, join(dir(join(root, 'nobodys'), 0o755, NOBODY), 'q.sock'));
    t.match(unsafeSocketPath(owned, TRUSTED), new RegExp(`nobodys \\(owner uid ${NOBODY}, mode 755\\) may be changed`), 'a 0755 directory of an untrusted user');
    t.equal(unsafeSocketPath(owned, [0, NOBODY]), undefined, 'unless its owner is trusted');
    t.match(unsafeSocketPath(`${root}/nobodys/../a.sock`, TRUSTED), /nobodys .* may be changed/, 'even when .. leaves it again');
  });

  t.test('a sticky world-writable directory with trusted entries is safe', async (t) => {
    const root = base(t);
    const sticky = dir(join(root, 'tmp'), 0o1777);
    t.equal(unsafeSocketPath(await socket(t, join(sticky, 'q.sock')), TRUSTED), undefined, 'a root socket in it');
    t.equal(unsafeSocketPath(await socket(t, join(dir(join(sticky, 'sub')), 'q.sock')), TRUSTED), undefined, 'a root directory in it');
    const theirs = dir(join(sticky, 'theirs'), 0o755, NOBODY);
    t.match(unsafeSocketPath(await socket(t, join(theirs, 'q.sock')), TRUSTED), new RegExp(`theirs \\(owner uid ${NOBODY}, mode 755\\) may be changed`), 'but not an untrusted user\'s directory in it');
  });

  t.test('symbolic links', async (t) => {
    const root = base(t);
    const run = dir(join(root, 'run'));
    const target = await socket(t, join(run, 'q.sock'));
    dir(join(root, 'var'));
    link('../run', join(root, 'var/run'));
    t.equal(unsafeSocketPath(join(root, 'var/run/q.sock'), TRUSTED), undefined, 'a trusted relative link to a directory (/var/run -> ../run)');
    link(run, join(root, 'abs-run'));
    t.equal(unsafeSocketPath(join(root, 'abs-run/q.sock'), TRUSTED), undefined, 'a trusted absolute link');
    link(target, join(root, 'q-link.sock'));
    t.equal(unsafeSocketPath(join(root, 'q-link.sock'), TRUSTED), undefined, 'a trusted link as the last component');
    link('var/run', join(root, 'chain'));
    t.equal(unsafeSocketPath(join(root, 'chain/q.sock'), TRUSTED), undefined, 'a link to a link');

    const sticky = dir(join(root, 'tmp'), 0o1777);
    link(target, join(sticky, 'planted.sock'), NOBODY);
    t.match(unsafeSocketPath(join(sticky, 'planted.sock'), TRUSTED), new RegExp(`planted\\.sock \\(owner uid ${NOBODY}, mode 777\\) is a symbolic link of an untrusted user$`), 'an untrusted user\'s link in a sticky directory');
    link(run, join(sticky, 'planted-dir'), NOBODY);
    t.match(unsafeSocketPath(join(sticky, 'planted-dir/q.sock'), TRUSTED), /planted-dir .* is a symbolic link of an untrusted user/, 'also on the way');

    const untrusted = dir(join(root, 'untrusted'), 0o755, NOBODY);
    const theirSocket = await socket(t, join(untrusted, 'q.sock'));
    link(theirSocket, join(root, 'into-untrusted.sock'));
    t.match(unsafeSocketPath(join(root, 'into-untrusted.sock'), TRUSTED), new RegExp(`untrusted \\(owner uid ${NOBODY}, mode 755\\) may be changed`), 'a trusted link is followed, and where it leads is checked too');
    link('../../run/q.sock', join(dir(join(root, 'x/y')), 'up.sock'));
    t.equal(unsafeSocketPath(join(root, 'x/y/up.sock'), TRUSTED), undefined, 'a relative target with .. is resolved from the link\'s directory');
  });

  t.test('a symlink loop', async (t) => {
    const root = base(t);
    link('loop-b', join(root, 'loop-a'));
    link('loop-a', join(root, 'loop-b'));
    t.equal(unsafeSocketPath(join(root, 'loop-a/q.sock'), TRUSTED), `${join(root, 'loop-a/q.sock')}: too many symbolic links`);
    link('self', join(root, 'self'));
    t.equal(unsafeSocketPath(join(root, 'self'), TRUSTED), `${join(root, 'self')}: too many symbolic links`);
    // 40 links in a row resolve, as the kernel allows; one more is a loop.
    const run = dir(join(root, 'run'));
    await socket(t, join(run, 'q.sock'));
    link('run', join(root, 'l0'));
    for (let i = 1; i < 41; i += 1) link(`l${i - 1}`, join(root, `l${i}`));
    t.equal(unsafeSocketPath(join(root, 'l39/q.sock'), TRUSTED), undefined, '40 links');
    t.match(unsafeSocketPath(join(root, 'l40/q.sock'), TRUSTED), /too many symbolic links$/, '41 links');
  });

  t.test('the end must be a trusted user\'s socket', async (t) => {
    const root = base(t);
    writeFileSync(join(root, 'file'), '');
    t.equal(unsafeSocketPath(join(root, 'file'), TRUSTED), `${join(root, 'file')} is not a socket`, 'a regular file');
    dir(join(root, 'd'));
    t.equal(unsafeSocketPath(join(root, 'd'), TRUSTED), `${join(root, 'd')} is not a socket`, 'a directory');
    t.equal(unsafeSocketPath(join(root, 'file/q.sock'), TRUSTED), `${join(root, 'file')} is not a directory`, 'a file on the way');
    t.equal(unsafeSocketPath(join(root, 'missing/q.sock'), TRUSTED), `${join(root, 'missing')}: ENOENT`, 'a missing directory');
    t.equal(unsafeSocketPath(join(root, 'missing.sock'), TRUSTED), `${join(root, 'missing.sock')}: ENOENT`, 'a missing socket');
    const theirs = await socket(t, join(root, 'theirs.sock'), NOBODY);
    t.match(unsafeSocketPath(theirs, TRUSTED), new RegExp(`^${theirs} \\(owner uid ${NOBODY}, mode [0-7]+\\) belongs to an untrusted user$`));
    t.equal(unsafeSocketPath('/', TRUSTED), '/ names a directory, not a socket');
  });

  t.test('a relative path', async (t) => {
    for (const path of ['q.sock', './q.sock', '../run/q.sock', '']) t.equal(unsafeSocketPath(path, TRUSTED), `${path} is not an absolute path`, JSON.stringify(path));
  });
});
