// Issue 5, end to end: hostinfo-qemu is invisible as a process. QEMU's exit status passes through
// (0 after a guest power-off, 1 when QEMU refuses to start, 128+n when QEMU dies of signal n),
// signals sent to the launcher reach QEMU, and whatever the ending, the VM's runtime directory is
// removed. One real guest boot (a disabled VM: 403 to everything, then SIGTERM while it runs); the
// other cases need no guest.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { APPEND, auditOf, BOOT_MS, guestImage, type Host, Launcher, MACHINE, makeHost, repliesOf, until, vmDirExists, within } from './harness.js';

t.setTimeout(10 * 60_000);

/** What QEMU alone does on `signal`: its exit status and what it prints (the reference). */
async function plainQemuOn(dir: string, signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string }> {
  const qmp = path.join(dir, `plain-${signal}.sock`);
  const qemu = spawn('qemu-system-x86_64', ['-M', 'none', '-nodefaults', '-display', 'none', '-qmp', `unix:${qmp},server=on,wait=off`], { stdio: ['ignore', 'ignore', 'pipe'] });
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

  t.test('a disabled VM gets 403 for everything; SIGTERM to the launcher reaches QEMU, status passes through', async (t) => {
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
    const launcher = new Launcher(t, host, [], ['-name', 'e2e-disabled', ...MACHINE, '-nographic', '-kernel', path.join(guest, 'vmlinuz'), '-initrd', initrd, '-append', APPEND]);
    await launcher.output(/^GUEST-WAITING$/m, BOOT_MS);
    const r = repliesOf(launcher.console);
    for (const label of ['ping', 'help', 'physcpus']) t.equal(r.get(label), '1.0 403 hostinfo is not enabled for this VM', `${label}: 403 not enabled`, { console: JSON.stringify(launcher.stdout.slice(-1500)) });
    t.ok(vmDirExists(host, 'e2e-disabled'), 'while the VM runs its runtime directory exists');

    launcher.child.kill('SIGTERM');
    const exit = await launcher.exit(60_000);
    const reference = await plainQemuOn(host.dir, 'SIGTERM');
    t.equal(reference.code, 0, 'QEMU 7.2 alone exits 0 on SIGTERM', { stderr: reference.stderr });
    t.match(reference.stderr, /terminating on signal 15/, 'QEMU alone says it terminated on signal 15');
    t.same(exit, { code: reference.code, signal: null }, 'the launcher exits with QEMU\'s own status, as QEMU alone would', { stderr: launcher.stderr });
    t.match(launcher.stderr, new RegExp(`terminating on signal 15 from pid ${launcher.child.pid}\\b`), 'QEMU got SIGTERM from the launcher (forwarded)');
    t.notOk(vmDirExists(host, 'e2e-disabled'), 'the VM runtime directory is removed');
    t.same(auditOf(await host.sidecarLog('e2e-disabled')), [['ping', 403], ['help', 403], ['physcpus', 403]], 'audit lines for a disabled VM too');
  });

  t.test('QEMU refuses to start (no such kernel): the launcher exits 1 with QEMU\'s message', async (t) => {
    const host = await makeHost(t, guest);
    const launcher = new Launcher(t, host, [], ['-name', 'e2e-nokernel', ...MACHINE, '-nographic', '-kernel', '/nonexistent/vmlinuz', '-append', APPEND]);
    const exit = await launcher.exit(60_000);
    t.same(exit, { code: 1, signal: null }, 'exit status 1, QEMU\'s', { stderr: launcher.stderr });
    t.match(launcher.stderr, /could not (open|load) kernel.*\/nonexistent\/vmlinuz/i, 'QEMU\'s own error reaches the launcher\'s stderr');
    t.notOk(vmDirExists(host, 'e2e-nokernel'), 'the VM runtime directory is removed');
  });

  t.test('QEMU killed by SIGKILL: the launcher exits 137 (128+9)', async (t) => {
    const host = await makeHost(t, guest);
    // -S: a VM that never runs a guest instruction; nothing to boot.
    const launcher = new Launcher(t, host, [], ['-name', 'e2e-killed', '-accel', 'tcg', '-M', 'pc', '-nodefaults', '-display', 'none', '-S']);
    const qemu = await launcher.qemuPid();
    await inMainLoop(host, 'e2e-killed');
    process.kill(qemu, 'SIGKILL');
    const exit = await launcher.exit(60_000);
    t.same(exit, { code: 137, signal: null }, 'the launcher reports QEMU\'s death by signal 9 as 137', { stderr: launcher.stderr });
    t.notOk(vmDirExists(host, 'e2e-killed'), 'the VM runtime directory is removed');
  });

  for (const signal of ['SIGINT', 'SIGHUP'] as const) {
    t.test(`${signal} to the launcher is forwarded to QEMU; status as QEMU alone`, async (t) => {
      const host = await makeHost(t, guest);
      const name = `e2e-${signal.toLowerCase()}`;
      const launcher = new Launcher(t, host, [], ['-name', name, '-accel', 'tcg', '-M', 'pc', '-nodefaults', '-display', 'none', '-S']);
      await launcher.qemuPid();
      await inMainLoop(host, name);
      launcher.child.kill(signal);
      const exit = await launcher.exit(60_000);
      const reference = await plainQemuOn(host.dir, signal);
      t.same(exit, { code: reference.code, signal: null }, `exit status ${reference.code}, as QEMU alone on ${signal}`, { stderr: launcher.stderr, reference: reference.stderr });
      t.match(launcher.stderr, new RegExp(`terminating on signal \\d+ from pid ${launcher.child.pid}\\b`), `QEMU got ${signal} from the launcher`);
      t.notOk(vmDirExists(host, name), 'the VM runtime directory is removed');
    });
  }
}
