// The shipped examples are documentation an administrator copies: they must parse and mean
// what their comments say.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { loadHostConfig } from '../policies/host-config.js';
import { ITEM_NAMES } from '../policies/items.js';
import { findVmPolicy } from '../policies/policy-lookup.js';

const examples = new URL('../../examples/', import.meta.url).pathname;
const policies = `${examples}policies`;

t.test('the sample host config is valid, enabled, and points at the sample policies', async (t) => {
  const config = await loadHostConfig({ configPath: `${examples}hostinfo.toml` }, { env: {}, uid: 0, cwd: '/' });
  t.equal(config.enabled, true);
  t.equal(config.policyDir, policies.replace(/\/$/, ''));
  t.same(config.cache, { intervalSeconds: 1, maxAgeSeconds: 5 });
  t.same(config.guest, { linesPerSecond: 100, bytesPerSecond: 16384 }, 'the guest budget shown is the default');
  t.equal(config.sidecarUser, 'hostinfo');
});

t.test('default.toml denies', async (t) => {
  t.match(await findVmPolicy(policies, { name: 'any-vm' }), { kind: 'found', policy: { enabled: false } });
});

t.test('generous.toml serves every item, sensitive ones included', async (t) => {
  t.match(await findVmPolicy(policies, { name: 'generous' }), { kind: 'found', policy: { enabled: true, items: ITEM_NAMES, limit: { burst: 10, intervalMs: 200 } } });
});

t.test('minimal.toml serves two items every 5 s', async (t) => {
  t.match(await findVmPolicy(policies, { name: 'minimal' }), { kind: 'found', policy: { enabled: true, items: ['physcpus', 'loadavg'], limit: { burst: 1, intervalMs: 5000 } } });
});

t.test('HOSTINFO_VERSION matches package.json', async (t) => {
  const { HOSTINFO_VERSION } = await import('../common/version.js');
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  t.equal(HOSTINFO_VERSION, pkg.version);
});
