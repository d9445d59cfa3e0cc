// The QEMUs the version-sensitive tests run on (issue 16): the system's (Debian 12: 7.2, or
// $QEMU_SYSTEM_X86_64) and 10.0 from bookworm-backports, which .ci/qemu-10 (run by .ci/setup)
// unpacks beside it with a wrapper script in ${HOSTINFO_QEMU10_CACHE:-~/.cache/hostinfo-qemu/qemu-10}.
// Each test file that runs on both makes one subtest per QEMU with forEachQemu; the launcher gets
// the binary as a user would name it, `--qemu PATH`. A QEMU 10 that was never set up here is a
// skipped subtest saying so (CI cannot get there: .ci/setup fails without it); one that is set up
// but does not answer `-version` fails.

import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { probeQemuVersion } from '../../launcher/qemu-version-probe.js';
import { formatQemuVersion, type QemuVersion } from '../../launcher/qemu-versions.js';
import { QEMU_BINARY } from '../fixtures/qmp/qemu.js';

export const QEMU10_CACHE = process.env['HOSTINFO_QEMU10_CACHE'] ?? join(homedir(), '.cache', 'hostinfo-qemu', 'qemu-10');
export const QEMU10_BINARY = join(QEMU10_CACHE, 'qemu-system-x86_64');

export interface QemuUnderTest {
  /** `QEMU 7.2.22`: also what QMP query-version makes of it (the guest's `hypervisor`). */
  readonly label: string;
  /** A path or a name on PATH, as `--qemu` takes it. */
  readonly binary: string;
  readonly version: QemuVersion;
  /** `--qemu <binary>`, for the launcher's flags. */
  readonly launcherArgs: readonly string[];
}

export type QemuLeg = { readonly kind: 'ready'; readonly qemu: QemuUnderTest } | { readonly kind: 'skip'; readonly label: string; readonly reason: string };

async function underTest(binary: string): Promise<QemuUnderTest> {
  const version = await probeQemuVersion(binary, 30_000);
  if (version === undefined) throw new Error(`${binary} -version did not tell its version`);
  return { label: `QEMU ${formatQemuVersion(version)}`, binary, version, launcherArgs: ['--qemu', binary] };
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The system's QEMU, then QEMU 10 (or why it is skipped). */
export async function qemuLegs(): Promise<QemuLeg[]> {
  const legs: QemuLeg[] = [{ kind: 'ready', qemu: await underTest(QEMU_BINARY) }];
  if (executable(QEMU10_BINARY)) legs.push({ kind: 'ready', qemu: await underTest(QEMU10_BINARY) });
  else legs.push({ kind: 'skip', label: 'QEMU 10.0', reason: `QEMU 10.0 is not set up here: bash .ci/qemu-10 (which .ci/setup runs) unpacks it into ${QEMU10_CACHE}` });
  return legs;
}

/** One subtest per QEMU, named by its version; a QEMU not set up here is a skipped one. */
export function forEachQemu(t: Test, legs: readonly QemuLeg[], body: (t: Test, qemu: QemuUnderTest) => Promise<void>): void {
  for (const leg of legs) {
    if (leg.kind === 'skip') t.test(leg.label, { skip: leg.reason }, async () => {});
    else t.test(leg.qemu.label, async (t) => body(t, leg.qemu));
  }
}
