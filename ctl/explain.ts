// hostinfo-ctl explain VM: the daemon's status names the VM (its registered name and uuid); the
// decision is then made again here, from the files the daemon reads, with the daemon's own code
// (findVmPolicy with a reader that notes each file it tries, decideAccess), and set beside the
// daemon's current one. They differ when the files changed since the daemon last read them.

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { AccessSummary } from '../daemon/control-messages.js';
import type { VmStatus } from '../daemon/messages.js';
import { decideAccess, type Access } from '../policies/access.js';
import type { HostConfig } from '../policies/host-config.js';
import { findVmPolicy, policyCandidates, safeNameStem, safeUuidStem, type PolicyLookup, type VmIdentity } from '../policies/policy-lookup.js';
import { describe as describeAccess } from './reload-view.js';

export type CandidateReason = 'uuid' | 'name' | 'default';

export interface Candidate {
  readonly file: string;
  /** Which part of the VM's identity named it. */
  readonly why: CandidateReason;
  /** Whether the lookup tried it (it stops at the first file that exists). */
  readonly read: boolean;
  /** null: not tried and could not be looked at either. */
  readonly exists: boolean | null;
  /** The read's error code when it failed otherwise than ENOENT (the VM then fails closed). */
  readonly error: string | null;
}

export interface Explanation {
  readonly vm: { readonly id: string; readonly name: string; readonly uuid: string; readonly pid: number };
  readonly config: string | null;
  readonly hostSwitch: boolean;
  readonly policyDir: string;
  readonly candidates: readonly Candidate[];
  /** Why a part of the identity named no file (no uuid, a name unsafe as a file name). */
  readonly skipped: readonly string[];
  readonly lookup: PolicyLookup['kind'];
  /** The policy that applies (found), with its own settings whether or not the VM is served. */
  readonly policy: { readonly file: string; readonly why: CandidateReason; readonly enabled: boolean; readonly items: readonly string[]; readonly intervalSeconds: number; readonly burst: number } | null;
  /** The invalid or unreadable policy's ConfigError line. */
  readonly error: string | null;
  /** What the files decide now. */
  readonly decision: AccessSummary;
  /** What the daemon decided when it last read them (its status). */
  readonly daemon: AccessSummary;
  readonly agrees: boolean;
  /**
   * `port`: the VM has vhostmd's port, answered under the same policy (null: the daemon is older
   * than that port and does not say); `enabled`: hostinfo.toml's [vhostmd] enabled, what VMs the
   * launcher starts from now on get.
   */
  readonly vhostmd: { readonly port: boolean | null; readonly enabled: boolean };
}

const summaryOf = (access: Access): AccessSummary =>
  access.served
    ? { served: true, reason: null, file: access.policy.file, items: access.policy.items, limit: access.policy.limit }
    : { served: false, reason: access.reason, file: null, items: [], limit: null };

const daemonSummary = (vm: VmStatus): AccessSummary => ({ served: vm.served, reason: vm.reason, file: vm.file, items: vm.items, limit: vm.limit });

/**
 * The identity the daemon looks policies up by: the registered name and uuid. A daemon older than
 * the `registered` field only reports them filled in (a missing name as the uuid or directory id,
 * a missing uuid as a nil-uuid form no uuid file matches): for those, the filled-in ones.
 */
export function identityOf(vm: VmStatus): VmIdentity {
  if (vm.registered === undefined) return { name: vm.vm.name, uuid: vm.vm.uuid };
  return { name: vm.registered.name ?? undefined, uuid: vm.registered.uuid ?? undefined };
}

export async function explainVm(config: HostConfig, vm: VmStatus): Promise<Explanation> {
  const identity = identityOf(vm);
  const tried = new Map<string, { exists: boolean; error: string | null }>();
  const lookup = await findVmPolicy(config.policyDir, identity, async (file) => {
    try {
      const text = await readFile(file, 'utf8');
      tried.set(file, { exists: true, error: null });
      return text;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      tried.set(file, { exists: code !== 'ENOENT', error: code === 'ENOENT' ? null : code });
      throw error;
    }
  });
  const uuidStem = safeUuidStem(identity.uuid);
  const nameStem = safeNameStem(identity.name);
  const stems: readonly (readonly [CandidateReason, string | undefined])[] = [['uuid', uuidStem], ['name', nameStem], ['default', 'default']];
  const whyOf = (file: string): CandidateReason => stems.find(([, stem]) => stem !== undefined && join(config.policyDir, `${stem}.toml`) === file)?.[0] ?? 'default';
  const candidates: Candidate[] = [];
  for (const file of policyCandidates(config.policyDir, identity)) {
    const seen = tried.get(file);
    // Past the file that applies the lookup reads nothing; whether those exist is still worth saying.
    const exists = seen?.exists ?? (await stat(file).then(() => true, (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? false : null)));
    candidates.push({ file, why: whyOf(file), read: seen !== undefined, exists, error: seen?.error ?? null });
  }
  const skipped: string[] = [];
  const noUuid = identity.uuid === undefined || /^0{8}-0{4}-0{4}-0{4}-0{12}(-|$)/.test(identity.uuid);
  if (uuidStem === undefined) skipped.push(noUuid ? 'uuid: none given (QEMU\'s -uuid), no <uuid>.toml' : `uuid ${JSON.stringify(identity.uuid)} is not a uuid: no <uuid>.toml`);
  if (nameStem === undefined) skipped.push(identity.name === undefined ? 'name: none given (QEMU\'s -name), no <name>.toml' : `name ${JSON.stringify(identity.name)} is not a safe file name (letters, digits, _ . + -, no leading dot, at most 128): no <name>.toml`);
  const decision = summaryOf(decideAccess(config, lookup));
  const daemon = daemonSummary(vm);
  return {
    vm: { id: vm.id, ...vm.vm },
    config: config.file ?? null,
    hostSwitch: config.enabled,
    policyDir: config.policyDir,
    candidates,
    skipped,
    lookup: lookup.kind,
    policy: lookup.kind === 'found'
      ? { file: lookup.policy.file, why: whyOf(lookup.policy.file), enabled: lookup.policy.enabled, items: lookup.policy.items, intervalSeconds: lookup.policy.limit.intervalMs / 1000, burst: lookup.policy.limit.burst }
      : null,
    error: lookup.kind === 'invalid' ? lookup.error.message : null,
    decision,
    daemon,
    agrees: JSON.stringify(decision) === JSON.stringify(daemon),
    vhostmd: { port: vm.vhostmd ?? null, enabled: config.vhostmd?.enabled === true },
  };
}

const WHY: Record<CandidateReason, string> = { uuid: 'the VM\'s uuid', name: 'the VM\'s name', default: 'the fallback for every VM' };

function candidateState(candidate: Candidate, applying: string | undefined): string {
  if (candidate.error !== null) return `unreadable (${candidate.error}): the VM fails closed, no fallback`;
  if (candidate.read) return candidate.exists ? (candidate.file === applying ? 'exists: applies' : 'exists') : 'missing';
  const first = applying === undefined ? 'an earlier file' : applying;
  return `not read (${first} comes first)${candidate.exists === true ? ', exists' : candidate.exists === false ? ', missing' : ''}`;
}

function vhostmdText({ port, enabled }: Explanation['vhostmd']): string {
  const config = `[vhostmd] enabled = ${String(enabled)} in hostinfo.toml`;
  if (port === true) return 'on: port org.github.vhostmd.1, answered under the policy above (same items, same token bucket)';
  if (port === null) return `unknown (the daemon does not say; ${config})`;
  return `off: this VM has no vhostmd port (${enabled ? `${config}, but the VM was started before that or attached without --vhostmd-socket` : config})`;
}

export function explainText(explanation: Explanation): string {
  const { vm, policy } = explanation;
  const applying = explanation.candidates.find((candidate) => candidate.read && candidate.exists)?.file;
  const fields: [string, string][] = [
    ['vm', `${vm.id} (name ${vm.name}, uuid ${vm.uuid}, QEMU pid ${vm.pid})`],
    ['host switch', explanation.config === null ? 'off (no host config file)' : `${explanation.hostSwitch ? 'on' : 'off'} (enabled${explanation.hostSwitch ? ' = true' : ' is not true'} in ${explanation.config})`],
    ['policy dir', explanation.policyDir],
  ];
  const width = 13;
  const line = ([key, value]: [string, string]): string => `${`${key}:`.padEnd(width)}${value}`;
  const lines = fields.map(line);
  lines.push('looked at:');
  const fileWidth = Math.max(...explanation.candidates.map((candidate) => candidate.file.length));
  explanation.candidates.forEach((candidate, index) => {
    lines.push(`  ${index + 1}. ${candidate.file.padEnd(fileWidth)}  ${candidate.why.padEnd(7)}  ${candidateState(candidate, applying)}`);
  });
  for (const note of explanation.skipped) lines.push(`  (${note})`);
  if (policy !== null) {
    lines.push(line(['policy', `${policy.file}: ${WHY[policy.why]}${policy.why === 'default' ? '' : `, ${policy.why === 'uuid' ? vm.uuid : vm.name}`}`]));
    lines.push(line(['enabled', policy.enabled ? 'true' : 'false (the policy does not serve the VM)']));
    lines.push(line(['items', policy.items.length === 0 ? '(none)' : policy.items.join(' ')]));
    lines.push(line(['interval', `${policy.intervalSeconds}s`]));
    lines.push(line(['burst', String(policy.burst)]));
  } else {
    lines.push(line(['policy', explanation.lookup === 'none' ? 'none of these exists: the VM is not served' : `invalid: ${explanation.error ?? '?'}`]));
  }
  lines.push(line(['files say', describeAccess(explanation.decision)]));
  lines.push(line(['daemon says', describeAccess(explanation.daemon)]));
  // An admin_group member may be refused a policy the daemon's user reads: that is this command's view, not the VM's.
  for (const candidate of explanation.candidates) {
    if (candidate.error === 'EACCES' || candidate.error === 'EPERM') lines.push(`note: this user may not read ${candidate.file} (${candidate.error}); run explain as the daemon's user to see what it reads`);
  }
  if (!explanation.agrees) {
    lines.push('note: the daemon decided otherwise than the files say now: they changed since it read them (it re-reads the policy directory by itself within moments; hostinfo-ctl reload applies them now), or the daemon runs with another config or HOSTINFO_POLICY_DIR than this command');
  }
  lines.push(line(['vhostmd', vhostmdText(explanation.vhostmd)]));
  return `${lines.join('\n')}\n`;
}
