// Issues 5 and 9, end to end: hostinfo-qemu is invisible as a process, because the process started
// becomes QEMU. Its exit status is QEMU's own (0 after a guest power-off or a handled SIGTERM, 1
// when QEMU refuses to start, a death by signal n that a shell reports as 128+n), signals sent to
// the pid started are QEMU's to handle, with no layer forwarding them, and whatever the ending the
// daemon removes the VM's runtime directory. One real guest boot (a disabled VM: 403 to
// everything, then SIGTERM while it runs); the other cases need no guest. All of it on each QEMU
// of test/helpers/qemu-versions.ts (7.2 and 10.0), each held against itself alone.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { APPEND, auditOf, BOOT_MS, guestImage, type Host, isQemu, Launcher, MACHINE, makeHost, repliesOf, until, vmDirExists, vmDirRemoved, within } from './harness.js';
import { forEachQemu, qemuLegs, type QemuUnderTest } from '../helpers/qemu-versions.js';

t.setTimeout(10 * 60_000);

/** What QEMU alone does on `signal`: its exit status and what it prints (the reference). */
async function plainQemuOn(under: QemuUnderTest, dir: string, signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string }> {
  const qmp = path.join(dir, `plain-${signal}.sock`);
  const qemu = spawn(under.binary, ['-M', 'none', '-nodefaults', '-display', 'none', '-qmp', `unix:${qmp},server=on,wait=off`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  qemu.stderr.setEncoding('latin1').on('data', (s: string) => (stderr += s));
  const exited = once(qemu, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  try {
    // QEMU installs its SIGINT/SIGHUP/SIGTERM handlers late in its start-up (a signal before
    // that kills it outright), and its QMP greeting may come from the monitor's own thread before
    // that: wait for the reply to a command, which the main loop dispatches.
    await until(() => existsSync(qmp), 30_000, () => `plain QEMU's QMP socket ${qmp}`);
    const client = connect(qmp);
    client.on('error', () => {});
    let received = '';
    client.setEncoding('utf8').on('data', (s: string) => (received += s));
    client.write('{"execute":"qmp_capabilities"}\n');
    await until(() => received.includes('"return"'), 30_000, () => `plain QEMU's reply to qmp_capabilities (got ${received})`);
    client.destroy();
    qemu.kill(signal);
    const [code] = await within(exited, 30_000, () => `plain QEMU to exit on ${signal}`);
    return { code, stderr };
  } finally {
    if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL');
  }
}

/**
 * Waits until the VM's sidecar has identified it over QMP: QEMU is then in its main loop, with
 * its signal handlers installed (as a user's Ctrl-C would find it).
 */
async function inMainLoop(host: Host, vm: string): Promise<void> {
  const identified = (): boolean => {
    try {
      return readFileSync(path.join(host.runtimeDir, 'logs', `${vm}.sidecar.log`), 'utf8').includes('"event":"identity"');
    } catch {
      return false;
    }
  };
  await until(identified, 30_000, () => `the sidecar of ${vm} to identify the VM over QMP`);
}

const image = await guestImage();
if (image.kind === 'skip') {
  t.plan(0, image.reason);
} else {
  const guest = image.dir;

  forEachQemu(t, await qemuLegs(), async (t, qemu) => {
    t.test('a disabled VM gets 403 for everything; SIGTERM to the pid started is QEMU\'s, and so is the status', async (t) => {
      const host = await makeHost(t, guest);
      await host.policy('e2e-disabled', 'enabled = false\n');
      const initrd = await host.initrd([
        '#!/bin/sh',
        'exec 3<>/dev/ttyS1',
        'ask() { echo "$2" >&3; r=$(head -n1 <&3); echo "R $1 [$r]"; }',
        `ask ping 'PING "x"'`,
        'ask help HELP',
        'ask physcpus physcpus',
        'echo GUEST-WAITING',
        'exec sleep 600',
        '',
      ].join('\n'));
      const launcher = new Launcher(t, host, qemu.launcherArgs, ['-name', 'e2e-disabled', ...MACHINE, '-nographic', '-kernel', path.join(guest, 'vmlinuz'), '-initrd', initrd, '-append', APPEND]);
      await launcher.output(/^GUEST-WAITING$/m, BOOT_MS);
      const r = repliesOf(launcher.console);
      for (const label of ['ping', 'help', 'physcpus']) t.equal(r.get(label), '1.0 403 hostinfo is not enabled for this VM', `${label}: 403 not enabled`, { console: JSON.stringify(launcher.stdout.slice(-1500)) });
      t.ok(vmDirExists(host, 'e2e-disabled'), 'while the VM runs its runtime directory exists');
      t.ok(isQemu(launcher.child.pid ?? -1), 'the pid started is QEMU');

      launcher.child.kill('SIGTERM');
      const exit = await launcher.exit(60_000);
      const reference = await plainQemuOn(qemu, host.dir, 'SIGTERM');
      t.equal(reference.code, 0, `${qemu.label} alone exits 0 on SIGTERM`, { stderr: reference.stderr });
      t.match(reference.stderr, /terminating on signal 15/, 'QEMU alone says it terminated on signal 15');
      t.same(exit, { code: reference.code, signal: null }, 'hostinfo-qemu exits with QEMU\'s own status, as QEMU alone would', { stderr: launcher.stderr });
      t.match(launcher.stderr, new RegExp(`terminating on signal 15 from pid ${process.pid}\\b`), 'QEMU got SIGTERM straight from the sender (this test), nothing in between');
      t.ok(await vmDirRemoved(host, 'e2e-disabled'), 'the VM runtime directory is removed');
      t.same(auditOf(await host.sidecarLog('e2e-disabled')), [['ping', 403], ['help', 403], ['physcpus', 403]], 'audit lines for a disabled VM too');
    });

    t.test('QEMU refuses to start (no such kernel): exit 1 with QEMU\'s message', async (t) => {
      const host = await makeHost(t, guest);
      const launcher = new Launcher(t, host, qemu.launcherArgs, ['-name', 'e2e-nokernel', ...MACHINE, '-nographic', '-kernel', '/nonexistent/vmlinuz', '-append', APPEND]);
      const exit = await launcher.exit(60_000);
      t.same(exit, { code: 1, signal: null }, 'exit status 1, QEMU\'s', { stderr: launcher.stderr });
      t.match(launcher.stderr, /could not (open|load) kernel.*\/nonexistent\/vmlinuz/i, 'QEMU\'s own error on the caller\'s stderr');
      t.ok(await vmDirRemoved(host, 'e2e-nokernel'), 'the VM runtime directory is removed');
    });

    t.test('QEMU killed by SIGKILL: the caller sees QEMU die of it; a shell says 137 (128+9)', async (t) => {
      const host = await makeHost(t, guest);
      // -S: a VM that never runs a guest instruction; nothing to boot.
      const args = ['-name', 'e2e-killed', '-accel', 'tcg', '-M', 'pc', '-nodefaults', '-display', 'none', '-S'];
      const direct = new Launcher(t, host, qemu.launcherArgs, args);
      await direct.qemuPid();
      await inMainLoop(host, 'e2e-killed');
      direct.child.kill('SIGKILL');
      t.same(await direct.exit(60_000), { code: null, signal: 'SIGKILL' }, 'the process started died of SIGKILL itself: it was QEMU', { stderr: direct.stderr });
      t.ok(await vmDirRemoved(host, 'e2e-killed'), 'the VM runtime directory is removed');

      const inShell = new Launcher(t, host, qemu.launcherArgs, ['-name', 'e2e-killed-sh', ...args.slice(2)], { shell: true });
      const qemuPid = await inShell.qemuPid();
      await inMainLoop(host, 'e2e-killed-sh');
      process.kill(qemuPid, 'SIGKILL');
      t.same(await inShell.exit(60_000), { code: 137, signal: null }, '`hostinfo-qemu ...; exit $?` in a shell: 137', { stderr: inShell.stderr });
      t.ok(await vmDirRemoved(host, 'e2e-killed-sh'), 'the VM runtime directory is removed');
    });

    for (const signal of ['SIGINT', 'SIGHUP'] as const) {
      t.test(`${signal} to the pid started is QEMU's to handle; status as QEMU alone`, async (t) => {
        const host = await makeHost(t, guest);
        const name = `e2e-${signal.toLowerCase()}`;
        const launcher = new Launcher(t, host, qemu.launcherArgs, ['-name', name, '-accel', 'tcg', '-M', 'pc', '-nodefaults', '-display', 'none', '-S']);
        t.equal(await launcher.qemuPid(), launcher.child.pid, 'the pid started is QEMU');
        await inMainLoop(host, name);
        launcher.child.kill(signal);
        const exit = await launcher.exit(60_000);
        const reference = await plainQemuOn(qemu, host.dir, signal);
        t.same(exit, { code: reference.code, signal: null }, `exit status ${reference.code}, as QEMU alone on ${signal}`, { stderr: launcher.stderr, reference: reference.stderr });
        t.match(launcher.stderr, new RegExp(`terminating on signal \\d+ from pid ${process.pid}\\b`), `QEMU got ${signal} straight from this test`);
        t.ok(await vmDirRemoved(host, name), 'the VM runtime directory is removed');
      });
    }
  });
}
