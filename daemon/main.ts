#!/usr/bin/env node
// hostinfod: flags, host config, logging and signals around HostDaemon.

import { join } from 'node:path';
import { pino } from 'pino';
import { closeInheritedFds } from '../common/inherited-fds.js';
import { ALLOW_INSPECTOR_ENV, keepInspectorClosed } from '../common/inspector-signal.js';
import { LOGS_DIR, openLogNoFollow, prepareRuntimeTree } from '../common/runtime-tree.js';
import { HOSTINFO_VERSION } from '../common/version.js';
import { loadHostConfig } from '../policies/host-config.js';
import { USAGE, parseFlags } from './cli.js';
import { HostDaemon } from './daemon.js';
import { DaemonError } from './errors.js';
import { configGroupIds } from './group.js';

const EXIT_ERROR = 1;
const EXIT_USAGE = 2;
const EXIT_ALREADY_RUNNING = 3;

async function main(): Promise<void> {
  const parsed = parseFlags(process.argv.slice(2));
  if (parsed.kind === 'help') return void process.stdout.write(USAGE);
  if (parsed.kind === 'version') return void process.stdout.write(`hostinfod ${HOSTINFO_VERSION}\n`);
  if (parsed.kind === 'error') {
    process.stderr.write(`hostinfod: ${parsed.message}\nTry hostinfod --help.\n`);
    process.exitCode = EXIT_USAGE;
    return;
  }
  const { flags } = parsed;
  // Files the daemon creates start private; directory and socket modes are then set explicitly.
  process.umask(0o077);
  const environment = { env: process.env, uid: process.geteuid?.() ?? 0, cwd: process.cwd() };
  const loadConfig = () => loadHostConfig({ configPath: flags.configPath, runtimeDir: flags.runtimeDir }, environment);
  let log = pino({ base: { name: 'hostinfod', pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  // Handlers go in before start-up, so a signal during it still ends in a clean stop.
  let daemon: HostDaemon | undefined;
  let stopRequested = false;
  const stop = (signal: NodeJS.Signals): void => {
    log.info({ event: 'signal', signal }, 'shutting down');
    stopRequested = true;
    daemon?.stop().then(() => process.exit(0), (error: unknown) => {
      log.error({ event: 'stop-failed', err: (error as Error).message });
      process.exit(EXIT_ERROR);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  let reloadRequested = false;
  const reload = (): void => {
    reloadRequested = daemon === undefined;
    daemon?.reload().catch((error: unknown) => log.error({ event: 'reload-failed', err: (error as Error).message }));
  };
  process.on('SIGHUP', reload);
  keepInspectorClosed(process.env[ALLOW_INSPECTOR_ENV] === '1', () => log.warn({ event: 'signal', signal: 'SIGUSR1' }, `ignored: it would open Node's inspector to every local user (${ALLOW_INSPECTOR_ENV}=1 allows it, for profiling)`));
  try {
    const config = await loadConfig();
    // Both read once, at start: the runtime tree and the socket keep them until a restart.
    const { gid, adminGid } = configGroupIds(config);
    if (flags.logFile) {
      prepareRuntimeTree(config.runtimeDir, { gid, adminGid });
      log = pino({ base: { name: 'hostinfod', pid: process.pid } }, pino.destination({ fd: openLogNoFollow(join(config.runtimeDir, LOGS_DIR, 'hostinfod.log')), sync: true }));
    }
    daemon = await HostDaemon.start({
      config,
      loadConfig,
      gid,
      adminGid,
      intervalMs: (flags.intervalSeconds ?? config.cache.intervalSeconds) * 1000,
      log,
    });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    log.error({ event: 'start-failed', code, err: (error as Error).message }, 'hostinfod did not start');
    process.exit(error instanceof DaemonError && error.code === 'ALREADY_RUNNING' ? EXIT_ALREADY_RUNNING : EXIT_ERROR);
  }
  if (stopRequested) stop('SIGTERM');
  // A SIGHUP during start-up may have come before the inventory read started; read it again.
  else if (reloadRequested) reload();
}

// Whatever a caller left open (a launcher run by libvirt inherits its monitor socket and
// virtlogd's pipe) must not be held by a daemon that outlives the VM.
closeInheritedFds();
main().catch((error: unknown) => {
  process.stderr.write(`hostinfod: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(EXIT_ERROR);
});
