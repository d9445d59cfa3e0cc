// Probes run as another local user (setpriv, as root): what `nobody`, a group member or the
// sidecar user can reach. The probe runs in a bare environment (`env -i`): tap adds NODE_OPTIONS
// to every child it sees spawned (its process-info hook, which another user may not write).

import { spawnSync } from 'node:child_process';

export const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
export const isRoot = process.geteuid?.() === 0;
/** Why a test needing other users is skipped, or false. */
export const needsRootAndSetpriv: string | false = !isRoot || !hasSetpriv ? 'needs root and setpriv' : false;

export interface As {
  readonly user: string;
  readonly group: string;
  /** Supplementary groups: none, or one gid. */
  readonly groups: 'none' | number;
}

export const NOBODY: As = { user: 'nobody', group: 'nogroup', groups: 'none' };

/** Runs `node -e script` as `as`; its stdout, trimmed, with its stderr appended if any. */
export function runNodeAs(as: As, script: string): string {
  const groupArgs = as.groups === 'none' ? ['--clear-groups'] : [`--groups=${as.groups}`];
  const run = spawnSync('env', ['-i', 'PATH=/usr/bin:/bin', 'setpriv', `--reuid=${as.user}`, `--regid=${as.group}`, ...groupArgs, process.execPath, '-e', script], { encoding: 'utf8', cwd: '/', timeout: 20_000 });
  return `${run.stdout.trim()}${run.stderr.trim() === '' ? '' : ` (stderr: ${run.stderr.trim()})`}`;
}

/** Connects to a unix socket as `as`: 'connected' or the errno code. */
export function connectAs(path: string, as: As = NOBODY): string {
  return runNodeAs(as, `const s=require('net').connect(${JSON.stringify(path)});s.on('connect',()=>{console.log('connected');s.destroy()});s.on('error',(e)=>console.log(e.code))`);
}

/** Lists a directory as `as`: the entries joined by commas, or the errno code. */
export function listAs(path: string, as: As = NOBODY): string {
  return runNodeAs(as, `try{console.log(require('fs').readdirSync(${JSON.stringify(path)}).join(','))}catch(e){console.log(e.code)}`);
}

/** Opens a file for reading as `as`: 'opened' or the errno code. */
export function openAs(path: string, as: As = NOBODY): string {
  return runNodeAs(as, `try{require('fs').closeSync(require('fs').openSync(${JSON.stringify(path)},'r'));console.log('opened')}catch(e){console.log(e.code)}`);
}
