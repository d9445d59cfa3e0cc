#!/usr/bin/env node
// hostinfo-ctl: the administrator's entry point to a running hostinfod (its control socket).

import { join } from 'node:path';
import { closeInheritedFds } from '../common/inherited-fds.js';
import { CONTROL_SOCKET } from '../common/runtime-tree.js';
import { HOSTINFO_VERSION } from '../common/version.js';
import { ControlError, controlRequest } from '../daemon/control-client.js';
import { renderMetrics } from '../daemon/metrics/prometheus-text.js';
import { loadHostConfig, type ConfigEnvironment, type HostConfig } from '../policies/host-config.js';
import { checkFiles, checkJson, checkText } from './check.js';
import { EXIT_FAILED, EXIT_NO_DAEMON, EXIT_OK, EXIT_PERMISSION, EXIT_USAGE, USAGE, parseCtlArgs, type Command, type Location } from './cli.js';
import { libvirtHookAction, libvirtHookReadsXml, LIBVIRT_QEMU_RUN_DIR } from './hooks/libvirt.js';
import type { HookAction } from './hooks/actions.js';
import { proxmoxHookAction } from './hooks/proxmox.js';
import { MAX_XML_BYTES } from './hooks/xml-tree.js';
import { explainText, explainVm } from './explain.js';
import { findVm, statusTable, vmDetails } from './status-view.js';
import { reloadReport } from './reload-view.js';

/** Prints to stdout; the status of a verb that got its answer. */
const print = (text: string): number => (process.stdout.write(text), EXIT_OK);
const err = (text: string): void => void process.stderr.write(`hostinfo-ctl: ${text}\n`);
const asJson = (value: unknown): string => `${JSON.stringify(value)}\n`;

const environment = (): ConfigEnvironment => ({ env: process.env, uid: process.geteuid?.() ?? 0, cwd: process.cwd() });

interface Target {
  readonly config: HostConfig;
  readonly socket: string;
}

async function targetOf(location: Location): Promise<Target> {
  const config = await loadHostConfig(location, environment());
  return { config, socket: join(config.runtimeDir, CONTROL_SOCKET) };
}

async function socketOf(location: Location): Promise<string> {
  return (await targetOf(location)).socket;
}

/** Why the socket could not be used, as an exit status and one line. */
function failure(error: unknown, { socket, config }: Target): number {
  const code = (error as { code?: unknown }).code;
  if (code === 'ENOENT' || code === 'ECONNREFUSED') {
    err(`no hostinfod answers on ${socket} (${code}); start it (hostinfod, or systemctl start hostinfod), or point --config/--runtime-dir at the one you run`);
    return EXIT_NO_DAEMON;
  }
  if (code === 'EACCES' || code === 'EPERM') {
    const uid = process.geteuid?.();
    err(config.adminGroup === undefined
      ? `permission denied on ${socket}: the control socket is for the daemon's user (uid ${uid} is not it); run this as that user, e.g. with sudo (admin_group in ${config.file ?? 'hostinfo.toml'} opens it to a group)`
      : `permission denied on ${socket}: the control socket is for the daemon's user and members of group ${config.adminGroup} (uid ${uid} is neither, or joined the group after logging in); run this as one of them, e.g. with sudo`);
    return EXIT_PERMISSION;
  }
  err(error instanceof ControlError ? `${error.message} (${error.code})` : (error as Error).message);
  return EXIT_FAILED;
}

async function run(command: Command, { socket, config }: Target): Promise<number> {
  switch (command.verb) {
    case 'status': {
      const status = await controlRequest(socket, { type: 'status' });
      const now = Date.now();
      if (command.vm === undefined) return print(command.json ? asJson(status) : statusTable(status, now));
      const vm = findVm(status, command.vm);
      if (typeof vm !== 'string') return print(command.json ? asJson(vm) : vmDetails(vm, now));
      err(vm);
      return EXIT_FAILED;
    }
    case 'explain': {
      const vm = findVm(await controlRequest(socket, { type: 'status' }), command.vm);
      if (typeof vm === 'string') {
        err(vm);
        return EXIT_FAILED;
      }
      const explanation = await explainVm(config, vm);
      return print(command.json ? asJson(explanation) : explainText(explanation));
    }
    case 'metrics':
      return print(renderMetrics(await controlRequest(socket, { type: 'status' }), Date.now()));
    case 'reload': {
      const reply = await controlRequest(socket, { type: 'reload' });
      return print(command.json ? asJson(reply) : reloadReport(reply));
    }
    case 'attach': {
      const reply = await controlRequest(socket, { type: 'attach', vm: command.spec });
      return print(command.json ? asJson(reply) : `${reply.already ? 'already attached' : 'attached'}: ${reply.id}\n`);
    }
    case 'detach': {
      const reply = await controlRequest(socket, { type: 'detach', vm: command.vm });
      return print(command.json ? asJson(reply) : `detached: ${reply.id}\n`);
    }
    case 'query': {
      const reply = await controlRequest(socket, { type: 'query', vm: command.vm, line: command.line });
      return print(command.json ? asJson(reply) : `${reply.reply}\n`);
    }
    default:
      return EXIT_USAGE;
  }
}

/**
 * The domain XML libvirt writes on stdin, up to just over MAX_XML_BYTES (the XML reader refuses
 * anything longer). Read as a stream: a non-blocking stdin then waits instead of spinning.
 */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    total += chunk.length;
    if (total > MAX_XML_BYTES) break;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A hook never fails the manager's operation: every outcome is a line on stderr and status 0. */
async function runHook(command: Extract<Command, { verb: 'hook' }>, location: Location): Promise<number> {
  const label = `hook ${command.manager} ${command.args.slice(0, 2).join(' ')}`;
  try {
    const xml = command.manager === 'libvirt' && libvirtHookReadsXml(command.args) ? await readStdin() : '';
    const action: HookAction = command.manager === 'libvirt'
      ? libvirtHookAction(command.args, () => xml, join(command.root, LIBVIRT_QEMU_RUN_DIR))
      : proxmoxHookAction(command.args, command.serial, command.root);
    if (action.kind === 'none') {
      if (action.note !== undefined) err(`${label}: ${action.note}`);
      return EXIT_OK;
    }
    const socket = await socketOf(location);
    if (action.kind === 'detach') {
      const reply = await controlRequest(socket, { type: 'detach', vm: action.vm }).catch((error: unknown) => error as Error);
      // A VM that was never attached (no hostinfo port) or already cleaned up is no news.
      if (reply instanceof Error && (reply as ControlError).code !== 'NO_SUCH_VM') err(`${label}: detach: ${reply.message}`);
      return EXIT_OK;
    }
    for (const note of action.notes) err(`${label}: ${note}`);
    for (const spec of action.specs) {
      const reply = await controlRequest(socket, { type: 'attach', vm: spec });
      const vhostmd = spec.vhostmdSocket === undefined ? '' : `, vhostmd on ${spec.vhostmdSocket}`;
      err(`${label}: ${reply.already ? 'already attached' : 'attached'} as ${reply.id} (${spec.guestDevice} on ${spec.guestSocket}${vhostmd})`);
    }
  } catch (error) {
    err(`${label}: not attached: ${(error as Error).message}`);
  }
  return EXIT_OK;
}

async function main(): Promise<number> {
  closeInheritedFds([]);
  const parsed = parseCtlArgs(process.argv.slice(2));
  if (!parsed.ok) {
    err(`${parsed.message}\nTry hostinfo-ctl --help.`);
    return EXIT_USAGE;
  }
  const { command, location } = parsed;
  if (command.verb === 'help') return print(USAGE);
  if (command.verb === 'version') return print(`hostinfo-ctl ${HOSTINFO_VERSION}\n`);
  if (command.verb === 'hook') return runHook(command, location);
  if (command.verb === 'check') {
    const report = await checkFiles(location, environment(), command.files);
    process.stdout.write(command.json ? asJson(checkJson(report)) : checkText(report));
    return report.errors.length === 0 ? EXIT_OK : EXIT_FAILED;
  }
  let target: Target;
  try {
    target = await targetOf(location);
  } catch (error) {
    err((error as Error).message);
    return EXIT_FAILED;
  }
  try {
    return await run(command, target);
  } catch (error) {
    return failure(error, target);
  }
}

main().then((status) => { process.exitCode = status; }, (error: unknown) => {
  err((error as Error).stack ?? String(error));
  process.exitCode = EXIT_FAILED;
});
