// The version data (launcher/qemu-versions.ts) and the launcher's version lookup with its cache
// (launcher/qemu-version-probe.ts). The lookup runs a stand-in `qemu` script here, to count how
// often it is asked; qemu-versions-real.test.ts holds the data against the real QEMUs.

import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { planQemuArgs, type WrapPlan } from '../../launcher/qemu-args.js';
import { optionArity } from '../../launcher/qemu-options-table.js';
import { probeQemuVersion, qemuVersionOf, VERSION_CACHE_FILE, versionCacheDir } from '../../launcher/qemu-version-probe.js';
import { optionArityOn, parseQemuVersion, VERSIONED_OPTIONS, type QemuVersion } from '../../launcher/qemu-versions.js';

const V = (major: number, minor: number, micro = 0): QemuVersion => ({ major, minor, micro });

t.test('the version line of -version', async (t) => {
  // Verbatim first lines: Debian 12, bookworm-backports, Ubuntu 24.04, RHEL 9, a git build.
  t.same(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n'), V(7, 2, 22));
  t.same(parseQemuVersion('QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n'), V(10, 0, 2));
  t.same(parseQemuVersion('QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1.4)\n'), V(8, 2, 2));
  t.same(parseQemuVersion('QEMU emulator version 9.1.0 (qemu-kvm-9.1.0-15.el9_5.1)\n'), V(9, 1, 0));
  t.same(parseQemuVersion('QEMU emulator version 10.1.50 (v10.1.0-1234-gdeadbeef)\n'), V(10, 1, 50));
  t.equal(parseQemuVersion('qemu-system-x86_64: -version: invalid option\n'), undefined);
  t.equal(parseQemuVersion('hostinfo-qemu 0.1.0\n'), undefined, 'not a QEMU');
  t.equal(parseQemuVersion('Wrapper says: QEMU emulator version 7.2.22\n'), undefined, 'only a line of its own');
});

t.test('options by version', async (t) => {
  const arity = (name: string, version?: QemuVersion): string => optionArityOn(name, version);
  t.equal(arity('run-with', V(7, 2)), 'unknown', '7.2 has no -run-with (8.1)');
  t.equal(arity('run-with', V(8, 1)), 'value');
  t.equal(arity('perfmap', V(7, 2)), 'unknown');
  t.equal(arity('perfmap', V(8, 0)), 'flag', '-perfmap since 8.0');
  t.equal(arity('no-acpi', V(8, 2, 2)), 'flag', 'Ubuntu 24.04 still has -no-acpi');
  t.equal(arity('no-acpi', V(9, 0)), 'unknown', 'removed in 9.0');
  t.equal(arity('chroot', V(9, 0)), 'unknown');
  t.equal(arity('runas', V(9, 2)), 'value', '-runas deprecated in 9.1, still there');
  t.equal(arity('runas', V(10, 0, 2)), 'unknown', 'removed in 10.0');
  t.equal(arity('shim', V(10, 0, 2)), 'value');
  for (const name of Object.keys(VERSIONED_OPTIONS)) t.not(arity(name), 'unknown', `no version known: -${name} as any QEMU that has it reads it`);
  t.equal(arity('serial', V(10, 0)), 'value', 'an option of every version: the table');
  t.equal(arity('no-such-option', undefined), 'unknown');
});

t.test('no option changes its arity between versions: only whether it exists', async (t) => {
  for (const [name, option] of Object.entries(VERSIONED_OPTIONS)) {
    const table = optionArity(name);
    if (table !== 'unknown') t.equal(table, option.arity, `-${name}: the table and the version data agree`);
    t.ok(option.since !== undefined || option.removedIn !== undefined, `-${name}: a release it came or went with`);
    t.ok(option.source.length > 30, `-${name}: names its source`);
  }
});

t.test('the plan for each version: the unknown options differ, the port does not', async (t) => {
  const plan = (version: QemuVersion | undefined, args: string[]): WrapPlan => {
    const result = planQemuArgs(['-nodefaults', '-name', 'v', ...args], { transport: 'isa-serial', vmsDir: '/run/hi/vms', launcherPid: 1, qemuVersion: version });
    if (result.mode !== 'wrap') throw new Error(JSON.stringify(result));
    return result;
  };
  const args = ['-run-with', 'user=nobody', '-no-acpi', '-serial', 'null'];
  t.same(plan(V(10, 0, 2), args).unknownOptions, ['-no-acpi'], '10.0: -run-with is an option, -no-acpi is gone (QEMU will refuse it)');
  t.same(plan(V(7, 2, 22), args).unknownOptions, ['-run-with'], '7.2: the other way round');
  t.same(plan(undefined, args).unknownOptions, [], 'no version: both known');
  for (const version of [V(7, 2, 22), V(8, 2, 2), V(10, 0, 2), undefined]) {
    t.equal(plan(version, args).serialIndex, 1, `${JSON.stringify(version)}: the -serial on 0, ours on 1`);
  }
});

t.test('the version lookup: -version once, then the cache until the binary changes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hi-qv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const calls = join(dir, 'calls');
  const qemu = join(dir, 'qemu');
  const script = (version: string): string => `#!/bin/sh\necho x >> '${calls}'\necho 'QEMU emulator version ${version} (stand-in)'\necho 'Copyright (c) 2003-2025 Fabrice Bellard and the QEMU Project developers'\n`;
  writeFileSync(qemu, script('10.0.2'), { mode: 0o755 });
  const asked = (): number => readFileSync(calls, 'utf8').split('\n').length - 1;
  mkdirSync(join(dir, 'cache-home'));
  const cache = versionCacheDir({ XDG_CACHE_HOME: join(dir, 'cache-home') }) ?? '';
  t.equal(cache, join(dir, 'cache-home', 'hostinfo-qemu'));
  t.equal(versionCacheDir({ HOME: '/home/u' }), '/home/u/.cache/hostinfo-qemu');
  t.equal(versionCacheDir({ HOME: 'relative' }), undefined);

  t.same(await qemuVersionOf(qemu, cache), V(10, 0, 2));
  t.same(await qemuVersionOf(qemu, cache), V(10, 0, 2));
  t.equal(asked(), 1, 'asked once, then read from the cache');
  t.same(await qemuVersionOf(qemu, undefined), V(10, 0, 2));
  t.equal(asked(), 2, 'no cache directory: asked again');

  writeFileSync(qemu, script('10.1.0'));
  utimesSync(qemu, new Date(), new Date(Date.now() + 5_000));
  t.same(await qemuVersionOf(qemu, cache), V(10, 1, 0), 'a binary that changed is asked again');
  t.equal(asked(), 3);

  // A forged entry with the right key, saying 1.2: believed, it would answer 1.2 without asking.
  const file = join(cache, VERSION_CACHE_FILE);
  const forged = readFileSync(file, 'utf8').replace('"major":10,"minor":1', '"major":1,"minor":2');
  t.not(forged, readFileSync(file, 'utf8'));
  writeFileSync(file, forged);
  chmodSync(file, 0o666);
  t.same(await qemuVersionOf(qemu, cache), V(10, 1, 0), 'a cache file others may write is not believed');
  t.equal(asked(), 4);
  rmSync(file);
  const planted = join(dir, 'planted.json');
  writeFileSync(planted, forged, { mode: 0o600 });
  symlinkSync(planted, file);
  t.same(await qemuVersionOf(qemu, cache), V(10, 1, 0), 'a symlink in its place is not followed');
  t.equal(asked(), 5);
  rmSync(file);
  writeFileSync(file, '{"v":1,', { mode: 0o600 });
  t.same(await qemuVersionOf(qemu, cache), V(10, 1, 0));
  t.equal(asked(), 6, 'a torn cache file: asked again, and rewritten');
  t.same(await qemuVersionOf(qemu, cache), V(10, 1, 0));
  t.equal(asked(), 6);
});

t.test('a binary that does not say its version', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hi-qv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const silent = join(dir, 'silent');
  writeFileSync(silent, '#!/bin/sh\necho "usage: not qemu"\n', { mode: 0o755 });
  t.equal(await probeQemuVersion(silent), undefined, 'no version line');
  const slow = join(dir, 'slow');
  writeFileSync(slow, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
  const started = Date.now();
  t.equal(await probeQemuVersion(slow, 200), undefined, 'no answer in time');
  t.ok(Date.now() - started < 5_000, 'given up at the bound, not after the sleep');
  t.equal(await probeQemuVersion(join(dir, 'missing')), undefined, 'no such binary');
});
