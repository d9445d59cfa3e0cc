// Which policy file applies to a VM: <uuid>.toml, else <name>.toml, else default.toml. The VM's
// name and UUID come from QEMU, which takes them from whoever started the VM, so they are checked
// against a strict file-name shape before they ever reach a path.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from './config-error.js';
import { parseVmPolicy, type VmPolicy } from './vm-policy.js';

export interface VmIdentity {
  readonly name?: string | undefined;
  readonly uuid?: string | undefined;
}

export type PolicyLookup =
  | { readonly kind: 'found'; readonly policy: VmPolicy }
  | { readonly kind: 'none'; readonly searched: readonly string[] }
  | { readonly kind: 'invalid'; readonly error: ConfigError };

const UUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// No separators, no leading dot (hidden files, "." and ".."), bounded well under NAME_MAX.
const NAME_SHAPE = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$/;

/** QEMU's all-zero UUID means "none was given": it must not select a policy. */
const NIL_UUID = '00000000-0000-0000-0000-000000000000';

export function safeUuidStem(uuid: string | undefined): string | undefined {
  const lower = uuid?.toLowerCase();
  return lower !== undefined && UUID_SHAPE.test(lower) && lower !== NIL_UUID ? lower : undefined;
}

export function safeNameStem(name: string | undefined): string | undefined {
  return name !== undefined && NAME_SHAPE.test(name) ? name : undefined;
}

/** The files to try, most specific first. */
export function policyCandidates(policyDir: string, identity: VmIdentity): string[] {
  const stems = [safeUuidStem(identity.uuid), safeNameStem(identity.name), 'default'];
  return [...new Set(stems.filter((stem): stem is string => stem !== undefined))].map((stem) => join(policyDir, `${stem}.toml`));
}

type ReadText = (file: string) => Promise<string>;
const readUtf8: ReadText = (file) => readFile(file, 'utf8');

/**
 * Finds and parses the VM's policy. Only a missing file moves on to the next candidate: an
 * unreadable or invalid one is an error, so a broken specific policy never silently falls back to
 * a more generous default.
 */
export async function findVmPolicy(policyDir: string, identity: VmIdentity, read: ReadText = readUtf8): Promise<PolicyLookup> {
  const searched = policyCandidates(policyDir, identity);
  for (const file of searched) {
    let text: string;
    try {
      text = await read(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      return { kind: 'invalid', error: new ConfigError('CONFIG_READ', { file, expected: 'a readable file', received: code ?? String(error) }, 'cannot read policy') };
    }
    try {
      return { kind: 'found', policy: parseVmPolicy(text, file) };
    } catch (error) {
      if (error instanceof ConfigError) return { kind: 'invalid', error };
      throw error;
    }
  }
  return { kind: 'none', searched };
}
