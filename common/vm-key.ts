// How an administrator names a VM (hostinfo-ctl's VM operand, the control protocol's `vm`): its id
// (its directory under vms/) or its QEMU pid first, else its name or uuid. A name or uuid two VMs
// share (both QEMUs of a VM live-migrating on one host) names neither: acting on one of them
// could be acting on the wrong one. hostinfod decides over its keepers, hostinfo-ctl over a status.

export interface VmKeyFacts {
  readonly id: string;
  /** QEMU pids the VM is known by (its registered one and the one it may have daemonized into). */
  readonly pids: readonly number[];
  readonly name: string | undefined;
  readonly uuid: string | undefined;
}

export type VmKeyMatch<T> =
  | { readonly kind: 'found'; readonly vm: T }
  | { readonly kind: 'none' }
  | { readonly kind: 'ambiguous'; readonly message: string };

export function matchVmKey<T>(vms: readonly T[], key: string, facts: (vm: T) => VmKeyFacts): VmKeyMatch<T> {
  const pid = /^\d+$/.test(key) ? Number(key) : undefined;
  const exact = vms.find((vm) => facts(vm).id === key) ?? (pid === undefined ? undefined : vms.find((vm) => facts(vm).pids.includes(pid)));
  if (exact !== undefined) return { kind: 'found', vm: exact };
  const named = vms.filter((vm) => facts(vm).name === key || facts(vm).uuid === key);
  const [only, ...others] = named;
  if (only === undefined) return { kind: 'none' };
  if (others.length === 0) return { kind: 'found', vm: only };
  const listed = named.map((vm) => `${facts(vm).id}, QEMU pid ${facts(vm).pids[0] ?? '?'}`).join('; ');
  return { kind: 'ambiguous', message: `${JSON.stringify(key)} names ${named.length} VMs (${listed}): name one by its id or QEMU pid` };
}
