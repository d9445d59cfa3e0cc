// Running a program as another user, the one way the daemon does it: through setpriv, which execs
// the program (same pid) with no way back to privilege: no_new_privs (a setuid binary gains
// nothing), and when root starts it, the target uid and gid, its groups, and empty inheritable and
// bounding capability sets. Node's own spawn({uid, gid}) would drop every supplementary group and
// keep the bounding set.

import { findAccountByUid } from './passwd.js';
import { systemTool } from './system-tools.js';

/**
 * `groups`: 'clear' for the sidecar user (no group of root's survives); 'user' for a VM's own
 * user, who may have reached the runtime directory through a supplementary group (libvirt-qemu
 * through the configured `group`): it keeps exactly that user's groups, from /etc/group.
 */
export type RunAccount =
  | { readonly kind: 'as-daemon' }
  | { readonly kind: 'account'; readonly uid: number; readonly gid: number; readonly groups: 'clear' | 'user' };

/** A VM directory owner's own account: its primary group and groups when /etc/passwd knows it. */
export function ownerAccount(owner: { readonly uid: number; readonly gid: number }): RunAccount {
  const account = findAccountByUid(owner.uid);
  return { kind: 'account', uid: owner.uid, gid: account?.gid ?? owner.gid, groups: account === undefined ? 'clear' : 'user' };
}

/** setpriv and its arguments up to `--`: append the program and its arguments. */
export function runAs(account: RunAccount): [command: string, args: string[]] {
  const privileges = account.kind === 'as-daemon'
    ? ['--no-new-privs']
    : ['--reuid', String(account.uid), '--regid', String(account.gid), account.groups === 'clear' ? '--clear-groups' : '--init-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs'];
  return [systemTool('setpriv'), [...privileges, '--']];
}
