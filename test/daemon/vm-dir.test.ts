// A VM directory as the daemon handles it, on real files: who owns it, reading its small files
// without following links, and removing it with the owner's rights only.

import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { encodeVmRecord } from '../../common/vm-record.js';
import { readSmallFile } from '../../common/small-file.js';
import { connectWhenListening, readVmRecord, removeVmDir, vmDirOwner } from '../../daemon/vm-dir.js';

const isRoot = process.geteuid?.() === 0;
const OWN = process.geteuid?.() ?? 0;
const NOBODY = 65534;
const RECORD = { v: 1, pid: 4242, startTime: '1', name: 'web1', uuid: undefined, transport: 'isa-serial', guestDevice: '/dev/ttyS0', pidfile: undefined } as const;

function base(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'hostinfo-vmdir-'));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('the owner of a VM directory, or why it is none', async (t) => {
  const dir = base(t);
  mkdirSync(join(dir, 'vm'), { mode: 0o700 });
  t.same(vmDirOwner(join(dir, 'vm')), { uid: OWN, gid: process.getegid?.() ?? 0 });
  symlinkSync(join(dir, 'vm'), join(dir, 'link'));
  t.equal(vmDirOwner(join(dir, 'link')), 'a symbolic link, not a directory');
  writeFileSync(join(dir, 'file'), '');
  t.equal(vmDirOwner(join(dir, 'file')), 'not a directory');
  mkdirSync(join(dir, 'open'));
  chmodSync(join(dir, 'open'), 0o777);
  t.match(vmDirOwner(join(dir, 'open')), /^mode 777: others could write into it/);
  chmodSync(join(dir, 'open'), 0o770);
  t.match(vmDirOwner(join(dir, 'open')), /^mode 770/);
  t.match(vmDirOwner(join(dir, 'missing')), /ENOENT/);
});

t.test('small files are read without following links, and only if small and regular', async (t) => {
  const dir = base(t);
  writeFileSync(join(dir, 'pid'), '1234\n');
  t.equal(readSmallFile(join(dir, 'pid'), 32), '1234\n');
  t.equal(readSmallFile(join(dir, 'absent'), 32), undefined);
  writeFileSync(join(dir, 'secret'), 'root only');
  symlinkSync(join(dir, 'secret'), join(dir, 'link'));
  t.match(readSmallFile(join(dir, 'link'), 32), { message: /link is a symbolic link/ });
  writeFileSync(join(dir, 'big'), 'x'.repeat(33));
  t.match(readSmallFile(join(dir, 'big'), 32), { message: /larger than 32 bytes/ });
  writeFileSync(join(dir, 'exact'), 'x'.repeat(32));
  t.equal(readSmallFile(join(dir, 'exact'), 32), 'x'.repeat(32));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  t.match(readSmallFile(join(dir, 'fifo'), 32), { message: /not a regular file/ }, 'a FIFO, without blocking on it');
  mkdirSync(join(dir, 'sub'));
  t.match(readSmallFile(join(dir, 'sub'), 32), { message: /not a regular file/ });
});

t.test('vm.json: parsed, refused, or absent', async (t) => {
  const dir = base(t);
  t.equal(readVmRecord(dir), undefined);
  writeFileSync(join(dir, 'vm.json'), encodeVmRecord(RECORD));
  t.same(readVmRecord(dir), { ok: true, record: RECORD });
  writeFileSync(join(dir, 'vm.json'), '{"v":1}');
  t.match(readVmRecord(dir), { ok: false, problem: /^pid/ });
  writeFileSync(join(dir, 'vm.json'), ' '.repeat(5000));
  t.match(readVmRecord(dir), { ok: false, problem: /larger than 4096 bytes/ });
  rmSync(join(dir, 'vm.json'));
  symlinkSync('/etc/passwd', join(dir, 'vm.json'));
  t.match(readVmRecord(dir), { ok: false, problem: /symbolic link/ });
});

/** A VM directory with files, and links in it to what lies outside and must survive. */
function populated(dir: string, outside: string): string {
  const vm = join(dir, 'vm');
  mkdirSync(join(vm, 'sub'), { recursive: true, mode: 0o700 });
  writeFileSync(join(vm, 'vm.json'), encodeVmRecord(RECORD));
  writeFileSync(join(vm, 'sub', 'deep'), 'x');
  writeFileSync(join(outside, 'precious'), 'keep');
  mkdirSync(join(outside, 'tree'));
  writeFileSync(join(outside, 'tree', 'file'), 'keep');
  symlinkSync(join(outside, 'precious'), join(vm, 'escape'));
  symlinkSync(join(outside, 'tree'), join(vm, 'escape-dir'));
  return vm;
}

t.test('the daemon removes its own user\'s VM directory itself, links in it not followed', async (t) => {
  const dir = base(t);
  const vm = populated(dir, dir);
  await removeVmDir(vm, { uid: OWN, gid: 0 }, OWN);
  t.notOk(existsSync(vm));
  t.equal(readFileSync(join(dir, 'precious'), 'utf8'), 'keep');
  t.equal(readFileSync(join(dir, 'tree', 'file'), 'utf8'), 'keep');
});

t.test('another user\'s VM directory is removed by rm running as that user', { skip: isRoot ? false : 'needs root' }, async (t) => {
  const dir = base(t);
  // vms/ as in group mode: sticky, so nobody may remove its own entries in it.
  const vms = join(dir, 'vms');
  mkdirSync(vms);
  chmodSync(vms, 0o1777);
  const vm = populated(vms, dir);
  execFileSync('chown', ['-hR', `${NOBODY}:${NOBODY}`, vm]);
  await removeVmDir(vm, { uid: NOBODY, gid: NOBODY }, 0);
  t.notOk(existsSync(vm), 'removed');
  t.equal(readFileSync(join(dir, 'precious'), 'utf8'), 'keep', 'the root-owned file a link pointed to is still there');
  t.equal(readFileSync(join(dir, 'tree', 'file'), 'utf8'), 'keep');

  // A root-owned directory inside, which nobody cannot empty: rm fails, so it did not run as root.
  const again = populated(vms, mkdtempSync(join(dir, 'outside-')));
  execFileSync('chown', ['-hR', `${NOBODY}:${NOBODY}`, again]);
  mkdirSync(join(again, 'rootdir'));
  writeFileSync(join(again, 'rootdir', 'root-file'), 'root');
  chownSync(join(again, 'rootdir'), 0, 0);
  chmodSync(join(again, 'rootdir'), 0o755);
  await t.rejects(removeVmDir(again, { uid: NOBODY, gid: NOBODY }, 0), /as uid 65534 exited 1/);
  t.equal(readFileSync(join(again, 'rootdir', 'root-file'), 'utf8'), 'root', 'what only root could delete is left');
});

t.test('connecting waits for QEMU to listen, and gives up when the VM is gone', async (t) => {
  const dir = base(t);
  const path = join(dir, 'qmp.sock');
  const server = createServer((socket) => socket.end());
  t.teardown(() => void server.close());
  let tries = 0;
  // QEMU starts listening only after the first attempt failed.
  const socket = await connectWhenListening(path, () => {
    if ((tries += 1) === 1) server.listen(path);
    return true;
  }, 5);
  t.ok(tries >= 1, `connected after ${tries} failed attempt(s)`);
  socket.destroy();
  await t.rejects(connectWhenListening(join(dir, 'never.sock'), () => false, 5), /never\.sock: QEMU is gone before it listened/);
});
