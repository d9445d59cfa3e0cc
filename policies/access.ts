// The one decision that gates everything a guest can see: served only when the host switch AND
// the VM's own policy say enabled. Whatever the reason for "no", the guest hears the same 403;
// the reason is for the administrator's log.

import type { PolicyLookup } from './policy-lookup.js';
import type { VmPolicy } from './vm-policy.js';

export type Access =
  | { readonly served: true; readonly policy: VmPolicy }
  | { readonly served: false; readonly reason: string };

export function decideAccess(host: { readonly enabled: boolean; readonly file: string | undefined }, lookup: PolicyLookup): Access {
  if (!host.enabled) {
    return { served: false, reason: host.file === undefined ? 'no host config file: hostinfo is off' : `host switch is off (enabled is not true in ${host.file})` };
  }
  switch (lookup.kind) {
    case 'none':
      return { served: false, reason: `no policy for this VM (looked for ${lookup.searched.join(', ')})` };
    case 'invalid':
      return { served: false, reason: `invalid policy, failing closed: ${lookup.error.message}` };
    case 'found':
      return lookup.policy.enabled
        ? { served: true, policy: lookup.policy }
        : { served: false, reason: `policy ${lookup.policy.file} does not set enabled = true` };
  }
}
