#!/usr/bin/env node
// hostinfo-sidecar: flags, logging and signals around Sidecar. hostinfod starts it.

import { Socket } from 'node:net';
import { closeInheritedFds } from '../common/inherited-fds.js';
import { keepInspectorClosed } from '../common/inspector-signal.js';
import { HOSTINFO_VERSION } from '../common/version.js';
import { parseSidecarFlags, USAGE } from './cli.js';
import { DaemonChannel } from './daemon-channel.js';
import { fdConnector, GUEST_RECONNECT, pathConnector } from './guest-port.js';
import { lineLog } from './line-log.js';
import { Sidecar } from './sidecar.js';

const EXIT_ERROR = 1;
const EXIT_USAGE = 2;

const fdSocket = (fd: number): Socket => new Socket({ fd, readable: true, writable: true });

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
  const { reach } = flags;
  // Only the descriptors handed over on purpose stay open.
  const optionalFd = (fd: number | undefined): number[] => (fd === undefined ? [] : [fd]);
  closeInheritedFds(reach.kind === 'fd' ? [flags.channelFd, reach.guestFd, ...optionalFd(reach.qmpFd), ...optionalFd(reach.vhostmdFd)] : [flags.channelFd]);
  const log = lineLog({ base: { name: 'hostinfo-sidecar', pid: process.pid }, fd: 2 });
  const sidecar = new Sidecar({
    channel: new DaemonChannel(fdSocket(flags.channelFd)),
    qmp: reach.kind === 'path' ? reach.qmpPath : reach.qmpFd === undefined ? undefined : { socket: fdSocket(reach.qmpFd), label: `fd ${reach.qmpFd}` },
    guest: reach.kind === 'fd' ? { connect: fdConnector(reach.guestFd), reconnect: false } : { connect: pathConnector(reach.guestPath), reconnect: GUEST_RECONNECT },
    vhostmd: reach.kind === 'fd'
      ? reach.vhostmdFd === undefined ? undefined : { connect: fdConnector(reach.vhostmdFd), reconnect: false }
      : reach.vhostmdPath === undefined ? undefined : { connect: pathConnector(reach.vhostmdPath), reconnect: GUEST_RECONNECT },
    qemuPid: flags.qemuPid,
    log,
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void sidecar.stop(`signal ${signal}`));
  // SIGHUP is the daemon's: policies reach the sidecar over the channel.
  process.on('SIGHUP', () => log.info({ event: 'signal', signal: 'SIGHUP' }, 'ignored: hostinfod re-reads policies'));
  keepInspectorClosed(flags.allowInspector, () => log.warn({ event: 'signal', signal: 'SIGUSR1' }, 'ignored: it would open Node\'s inspector to every local user'));
  try {
    await sidecar.start();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    log.error({ event: 'start-failed', code, err: (error as Error).message }, 'hostinfo-sidecar did not start');
    await sidecar.stop('start failed');
    process.exit(EXIT_ERROR);
  }
  const { reason, status } = await sidecar.stopped;
  log.info({ event: 'stopped', reason, status });
  process.exit(status);
}

main().catch((error: unknown) => {
  process.stderr.write(`hostinfo-sidecar: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(EXIT_ERROR);
});
