import t from 'tap';
import { ConfigError } from '../../policies/config-error.js';
import { decideAccess } from '../../policies/access.js';
import type { VmPolicy } from '../../policies/vm-policy.js';

const policy = (enabled: boolean): VmPolicy => ({ file: '/p/web01.toml', enabled, items: ['physcpus'], limit: { intervalMs: 1000, burst: 1 } });
const HOST_ON = { enabled: true, file: '/etc/hostinfo/hostinfo.toml' };

t.test('served only when the host switch and the policy both say enabled', async (t) => {
  t.same(decideAccess(HOST_ON, { kind: 'found', policy: policy(true) }), { served: true, policy: policy(true) });
  t.same(decideAccess({ ...HOST_ON, enabled: false }, { kind: 'found', policy: policy(true) }), { served: false, reason: 'host switch is off (enabled is not true in /etc/hostinfo/hostinfo.toml)' });
  t.same(decideAccess({ enabled: false, file: undefined }, { kind: 'found', policy: policy(true) }), { served: false, reason: 'no host config file: hostinfo is off' });
  t.same(decideAccess(HOST_ON, { kind: 'found', policy: policy(false) }), { served: false, reason: 'policy /p/web01.toml does not set enabled = true' });
  t.same(decideAccess(HOST_ON, { kind: 'none', searched: ['/p/web01.toml', '/p/default.toml'] }), { served: false, reason: 'no policy for this VM (looked for /p/web01.toml, /p/default.toml)' });
  const error = new ConfigError('CONFIG_TYPE', { file: '/p/web01.toml', line: 1, key: 'enabled', expected: 'a boolean', received: 'string "yes"' });
  t.same(decideAccess(HOST_ON, { kind: 'invalid', error }), { served: false, reason: 'invalid policy, failing closed: /p/web01.toml:1: key "enabled": expected a boolean: received string "yes"' });
});
