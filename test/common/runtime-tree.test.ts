// The runtime tree's access control on real directories: modes as created, and every way a tree
// someone else owns or could have planted is refused, by the daemon (prepare) and the launcher (check).

import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LOGS_DIR, VMS_DIR, checkRuntimeTree, controlSocketMode, openLogNoFollow, prepareRuntimeTree } from '../../common/runtime-tree.js';

const isRoot = process.geteuid?.() === 0;
const ROOT_ONLY = { skip: isRoot ? false : 'needs root to chown' };
const NOBODY = 65534;
const USER = 1000;
const NO_GROUP = { gid: undefined };

const mode = (path: string): number => statSync(path).mode & 0o7777;
const owner = (path: string): [number, number] => [statSync(path).uid, statSync(path).gid];

function base(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'hostinfo-tree-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A prepared tree, as the daemon leaves it. */
function tree(t: { teardown(fn: () => unknown): void }): { run: string; vms: string; logs: string } {
  const run = join(base(t), 'run');
  prepareRuntimeTree(run, NO_GROUP);
  return { run, vms: join(run, VMS_DIR), logs: join(run, LOGS_DIR) };
}

const chownTree = (run: string, uid: number, gid = uid): void => {
  for (const path of [run, join(run, VMS_DIR), join(run, LOGS_DIR)]) chownSync(path, uid, gid);
};

const UNSAFE = { code: 'RUNTIME_DIR_UNSAFE' };

t.test('prepare creates the tree owner-only, missing parents included', async (t) => {
  const run = join(base(t), 'a', 'b', 'run');
  prepareRuntimeTree(run, NO_GROUP);
  t.same([mode(run), mode(join(run, VMS_DIR)), mode(join(run, LOGS_DIR))], [0o700, 0o700, 0o700]);
  t.same(owner(run)[0], process.geteuid?.());
  prepareRuntimeTree(run, NO_GROUP);
  t.pass('preparing it again is fine');
  chmodSync(run, 0o755);
  prepareRuntimeTree(run, NO_GROUP);
  t.equal(mode(run), 0o700, 'a mode that lets others read is narrowed back');
});

t.test('with a group: 0750 and a sticky 1770 vms/ of that group; logs/ stays private', ROOT_ONLY, async (t) => {
  const run = join(base(t), 'run');
  prepareRuntimeTree(run, { gid: NOBODY });
  t.same([mode(run), owner(run)[1]], [0o750, NOBODY]);
  t.same([mode(join(run, VMS_DIR)), owner(join(run, VMS_DIR))[1]], [0o1770, NOBODY]);
  t.equal(mode(join(run, LOGS_DIR)), 0o700);
  prepareRuntimeTree(run, { gid: NOBODY });
  t.pass('the group\'s sticky vms/ is accepted on the next start');
  t.throws(() => prepareRuntimeTree(run, NO_GROUP), UNSAFE, 'without the group, a group-writable vms/ is refused, not taken over');
});

t.test('with admin_group: the runtime directory lets admins reach the socket, vms/ and logs/ stay as they were', ROOT_ONLY, async (t) => {
  const ADMINS = 4;
  t.same([controlSocketMode({ gid: undefined }), controlSocketMode({ gid: NOBODY, adminGid: ADMINS })], [0o600, 0o660]);
  const alone = join(base(t), 'run');
  prepareRuntimeTree(alone, { gid: undefined, adminGid: ADMINS });
  t.same([mode(alone), owner(alone)[1]], [0o750, ADMINS], 'admin_group alone: 0750 of it');
  t.same([mode(join(alone, VMS_DIR)), mode(join(alone, LOGS_DIR))], [0o700, 0o700]);
  const both = join(base(t), 'run');
  prepareRuntimeTree(both, { gid: NOBODY, adminGid: ADMINS });
  t.same([mode(both), owner(both)[1]], [0o751, NOBODY], 'both, different: group\'s, and others may search it only');
  t.same([mode(join(both, VMS_DIR)), owner(join(both, VMS_DIR))[1], mode(join(both, LOGS_DIR))], [0o1770, NOBODY, 0o700]);
  t.equal(checkRuntimeTree(both, USER), 0, 'a launcher of the group still accepts the tree');
  const same = join(base(t), 'run');
  prepareRuntimeTree(same, { gid: NOBODY, adminGid: NOBODY });
  t.same([mode(same), owner(same)[1]], [0o750, NOBODY], 'the same group for both: as with group alone');
  prepareRuntimeTree(both, { gid: NOBODY });
  t.equal(mode(both), 0o750, 'admin_group dropped: the search bit for others goes again');
});

t.test('a tree another uid owns is refused, whole or in part', ROOT_ONLY, async (t) => {
  for (const part of ['', VMS_DIR, LOGS_DIR]) {
    const { run } = tree(t);
    chownSync(join(run, part), NOBODY, NOBODY);
    t.throws(() => prepareRuntimeTree(run, NO_GROUP), UNSAFE, `${part || 'the runtime directory'} owned by nobody`);
    t.same(owner(join(run, part)), [NOBODY, NOBODY], 'and left as it was');
  }
});

t.test('a symlink in place of vms/ or logs/ is refused and its target untouched', async (t) => {
  for (const part of [VMS_DIR, LOGS_DIR]) {
    const { run } = tree(t);
    const target = join(base(t), 'elsewhere');
    mkdirSync(target, { mode: 0o755 });
    chmodSync(target, 0o755);
    rmSync(join(run, part), { recursive: true });
    symlinkSync(target, join(run, part));
    t.throws(() => prepareRuntimeTree(run, NO_GROUP), UNSAFE, part);
    t.equal(mode(target), 0o755, `${part}: the target keeps its mode`);
  }
  const dir = base(t);
  mkdirSync(join(dir, 'real'));
  symlinkSync(join(dir, 'real'), join(dir, 'run'));
  t.throws(() => prepareRuntimeTree(join(dir, 'run'), NO_GROUP), UNSAFE, 'the runtime directory itself');
  writeFileSync(join(dir, 'file'), '');
  t.throws(() => prepareRuntimeTree(join(dir, 'file'), NO_GROUP), UNSAFE, 'a file');
});

t.test('a runtime directory others could write to is refused, not taken over', async (t) => {
  for (const [part, bad] of [['', 0o777], ['', 0o770], ['', 0o1777], [VMS_DIR, 0o777], [VMS_DIR, 0o1770], [LOGS_DIR, 0o757]] as const) {
    const { run } = tree(t);
    chmodSync(join(run, part), bad);
    t.throws(() => prepareRuntimeTree(run, NO_GROUP), UNSAFE, `${part || 'runtime dir'} ${bad.toString(8)}`);
    t.equal(mode(join(run, part)), bad, 'its mode is left for the administrator to look at');
  }
});

t.test('check accepts the caller\'s own tree and root\'s', ROOT_ONLY, async (t) => {
  const { run } = tree(t);
  t.equal(checkRuntimeTree(run, 0), 0, 'root\'s tree, for root');
  t.equal(checkRuntimeTree(run, USER), 0, 'root\'s tree, for a user (a root daemon serving its group)');
  chownTree(run, USER);
  t.equal(checkRuntimeTree(run, USER), USER, 'the user\'s own tree');
  t.throws(() => checkRuntimeTree(run, 0), UNSAFE, 'root does not use a user\'s tree');
  t.throws(() => checkRuntimeTree(run, USER + 1), UNSAFE, 'nor does another user');
});

t.test('check refuses anything else', ROOT_ONLY, async (t) => {
  const refuse = (what: string, setup: (run: string, vms: string) => void, uid = USER): void => {
    const { run, vms } = tree(t);
    setup(run, vms);
    t.throws(() => checkRuntimeTree(run, uid), UNSAFE, what);
  };
  refuse('owned by nobody', (run) => chownTree(run, NOBODY));
  refuse('vms/ owned by another uid than the tree', (_run, vms) => chownSync(vms, NOBODY, NOBODY));
  refuse('a world-writable runtime dir', (run) => chmodSync(run, 0o777));
  refuse('a group-writable runtime dir', (run) => chmodSync(run, 0o770));
  refuse('a world-writable vms/', (_run, vms) => chmodSync(vms, 0o1777));
  refuse('a group-writable vms/ without the sticky bit', (_run, vms) => chmodSync(vms, 0o770));
  refuse('a sticky group vms/ of another group than the tree\'s', (run, vms) => {
    chownSync(run, 0, 0);
    chownSync(vms, 0, NOBODY);
    chmodSync(vms, 0o1770);
  });
  refuse('vms/ a symlink', (run, vms) => {
    rmSync(vms, { recursive: true });
    mkdirSync(join(run, 'real'));
    symlinkSync(join(run, 'real'), vms);
  });
  const { run, vms } = tree(t);
  chownSync(run, 0, NOBODY);
  chmodSync(run, 0o750);
  chownSync(vms, 0, NOBODY);
  chmodSync(vms, 0o1770);
  t.equal(checkRuntimeTree(run, USER), 0, 'a sticky vms/ of the tree\'s own group is accepted');
  t.throws(() => checkRuntimeTree(join(run, 'nothing'), USER), { code: 'RUNTIME_DIR_MISSING' });
});

t.test('logs are opened owner-only, appending, never through a link or into a special file', async (t) => {
  const dir = base(t);
  const log = join(dir, 'a.log');
  for (const line of ['one\n', 'two\n']) {
    const fd = openLogNoFollow(log);
    writeSync(fd, line);
    closeSync(fd);
  }
  t.equal(readFileSync(log, 'utf8'), 'one\ntwo\n');
  t.equal(mode(log), 0o600);

  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious');
  symlinkSync(victim, join(dir, 'link.log'));
  t.throws(() => openLogNoFollow(join(dir, 'link.log')), { code: 'ELOOP' }, 'a symlink');
  linkSync(victim, join(dir, 'hard.log'));
  t.throws(() => openLogNoFollow(join(dir, 'hard.log')), UNSAFE, 'a hard link (nlink 2)');
  t.equal(readFileSync(victim, 'utf8'), 'precious', 'the linked file is untouched');

  execFileSync('mkfifo', [join(dir, 'fifo.log')]);
  const started = performance.now();
  t.throws(() => openLogNoFollow(join(dir, 'fifo.log')), { code: /^(ENXIO|RUNTIME_DIR_UNSAFE)$/ }, 'a FIFO');
  t.ok(performance.now() - started < 1000, 'without blocking on it');
  mkdirSync(join(dir, 'dir.log'));
  t.throws(() => openLogNoFollow(join(dir, 'dir.log')), { code: 'EISDIR' }, 'a directory');
});
