// User name → uid and primary gid from /etc/passwd (node has no getpwnam), for the account that
// sidecars of root-owned VMs run as, and the primary group of a VM's owner.

import { readFileSync } from 'node:fs';

export const PASSWD_FILE = '/etc/passwd';
const MAX_PASSWD_FILE_BYTES = 4 * 1024 * 1024;

export interface Account {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

function accounts(file: string): Account[] {
  let text = '';
  try {
    const bytes = readFileSync(file);
    if (bytes.length <= MAX_PASSWD_FILE_BYTES) text = bytes.toString('utf8');
  } catch {
    return [];
  }
  const found: Account[] = [];
  for (const line of text.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === undefined || !/^\d+$/.test(uid ?? '') || !/^\d+$/.test(gid ?? '')) continue;
    found.push({ name, uid: Number(uid), gid: Number(gid) });
  }
  return found;
}

/** The first line naming the user wins, as in getpwnam. */
export function findAccount(name: string, file = PASSWD_FILE): Account | undefined {
  return accounts(file).find((account) => account.name === name);
}

export function findAccountByUid(uid: number, file = PASSWD_FILE): Account | undefined {
  return accounts(file).find((account) => account.uid === uid);
}
