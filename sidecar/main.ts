#!/usr/bin/env node
// hostinfo-sidecar: flags, host config, logging and signals around Sidecar.

import { resolve } from 'node:path';
import { pino } from 'pino';
import { loadHostConfig } from '../policies/host-config.js';
import { parseSidecarFlags, USAGE } from './cli.js';
import { Sidecar } from './sidecar.js';
import { HOSTINFO_VERSION } from './version.js';

const EXIT_ERROR = 1;
const EXIT_USAGE = 2;

async function main(): Promise<void> {
  const parsed = parseSidecarFlags(process.argv.slice(2));
  if (parsed.kind === 'help') return void process.stdout.write(USAGE);
  if (parsed.kind === 'version') return void process.stdout.write(`hostinfo-sidecar ${HOSTINFO_VERSION}\n`);
  if (parsed.kind === 'error') {
    process.stderr.write(`hostinfo-sidecar: ${parsed.message}\nTry hostinfo-sidecar --help.\n`);
    process.exitCode = EXIT_USAGE;
    return;
  }
  const { flags } = parsed;
  const log = pino({ base: { name: 'hostinfo-sidecar', pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  const environment = { env: process.env, uid: process.geteuid?.() ?? 0, cwd: process.cwd() };
  const sidecar = new Sidecar({
    // Absolute paths: QEMU's pid is found by matching the QMP socket's path in /proc/net/unix.
    qmpPath: resolve(flags.qmpPath),
    guestPath: resolve(flags.guestPath),
    cachePath: flags.cachePath === undefined ? undefined : resolve(flags.cachePath),
    qemuPid: flags.qemuPid,
    loadConfig: () => loadHostConfig({ configPath: flags.configPath, policyDir: flags.policyDir }, environment),
    log,
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void sidecar.stop(`signal ${signal}`));
  process.on('SIGHUP', () => {
    log.info({ event: 'signal', signal: 'SIGHUP' }, 'reloading config and policy');
    void sidecar.reload();
  });
  try {
    await sidecar.start();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    log.error({ event: 'start-failed', code, err: (error as Error).message }, 'hostinfo-sidecar did not start');
    await sidecar.stop('start failed');
    process.exit(EXIT_ERROR);
  }
  const reason = await sidecar.stopped;
  log.info({ event: 'stopped', reason });
  process.exit(0);
}

main().catch((error: unknown) => {
  process.stderr.write(`hostinfo-sidecar: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(EXIT_ERROR);
});
