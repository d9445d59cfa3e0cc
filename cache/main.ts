#!/usr/bin/env node
// hostinfo-cache: flags, host config, logging and signals around CacheDaemon.

import { dirname, join, resolve } from 'node:path';
import { pino } from 'pino';
import { loadHostConfig } from '../policies/host-config.js';
import { USAGE, parseFlags } from './cli.js';
import { CacheDaemon } from './daemon.js';
import { CacheError } from './errors.js';
import { resolveGroup } from './group.js';

const EXIT_ERROR = 1;
const EXIT_USAGE = 2;
const EXIT_ALREADY_RUNNING = 3;

async function main(): Promise<void> {
  const parsed = parseFlags(process.argv.slice(2));
  if (parsed.kind === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (parsed.kind === 'error') {
    process.stderr.write(`hostinfo-cache: ${parsed.message}\nTry hostinfo-cache --help.\n`);
    process.exitCode = EXIT_USAGE;
    return;
  }
  const log = pino({ base: { name: 'hostinfo-cache', pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  // Files the daemon creates (socket, lock) start private; the directory and socket modes are then
  // set explicitly.
  process.umask(0o077);
  // Handlers go in before start-up, so a signal during it still ends in a clean stop.
  let daemon: CacheDaemon | undefined;
  let stopRequested = false;
  const stop = (signal: NodeJS.Signals): void => {
    log.info({ event: 'signal', signal }, 'shutting down');
    stopRequested = true;
    if (daemon === undefined) return;
    daemon.stop().then(() => process.exit(0), (error: unknown) => {
      log.error({ event: 'stop-failed', err: (error as Error).message });
      process.exit(EXIT_ERROR);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  let reloadRequested = false;
  const reload = (): void => {
    reloadRequested = daemon === undefined;
    daemon?.reloadInventory().catch((error: unknown) => log.error({ event: 'inventory-failed', err: (error as Error).message }));
  };
  process.on('SIGHUP', reload);
  try {
    const config = await loadHostConfig({ configPath: parsed.flags.configPath }, { env: process.env, uid: process.geteuid?.() ?? 0, cwd: process.cwd() });
    const defaultSocket = join(config.runtimeDir, 'cache.sock');
    const socketPath = parsed.flags.socketPath === undefined ? defaultSocket : resolve(parsed.flags.socketPath);
    daemon = await CacheDaemon.start({
      socketPath,
      intervalMs: (parsed.flags.intervalSeconds ?? config.cache.intervalSeconds) * 1000,
      gid: config.group === undefined ? undefined : resolveGroup(config.group),
      ownsSocketDir: dirname(socketPath) === resolve(config.runtimeDir),
      log,
    });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    log.error({ event: 'start-failed', code, err: (error as Error).message }, 'hostinfo-cache did not start');
    process.exit(error instanceof CacheError && error.code === 'ALREADY_RUNNING' ? EXIT_ALREADY_RUNNING : EXIT_ERROR);
  }
  if (stopRequested) stop('SIGTERM');
  // A SIGHUP during start-up may have come before the inventory read started; read it again.
  else if (reloadRequested) reload();
}

main().catch((error: unknown) => {
  process.stderr.write(`hostinfo-cache: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(EXIT_ERROR);
});
