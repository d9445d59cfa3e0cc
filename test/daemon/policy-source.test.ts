import { once } from 'node:events';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Access } from '../../policies/access.js';
import type { HostConfig } from '../../policies/host-config.js';
import { PolicySource } from '../../daemon/policy-source.js';

function hostConfig(policyDir: string, enabled = true): HostConfig {
  return {
    file: '/h.toml', enabled, policyDir, runtimeDir: '/run/x', group: undefined, cache: { intervalSeconds: 1, maxAgeSeconds: 5 },
    sidecarUser: 'hostinfo', guest: { linesPerSecond: 100, bytesPerSecond: 16384 }, metrics: { textfile: undefined },
  };
}

async function setup(t: { teardown: (fn: () => void) => void }, enabled = true) {
  const policyDir = await mkdtemp(join(tmpdir(), 'hostinfo-reload-'));
  const config = { value: hostConfig(policyDir, enabled) };
  const source = new PolicySource({ name: 'web01' }, async () => config.value);
  t.teardown(() => source.close());
  const nextChange = (): Promise<Access> => (once(source, 'change') as Promise<[Access]>).then(([access]) => access);
  return { policyDir, config, source, nextChange };
}

const items = (access: Access): readonly string[] | string => (access.served ? access.policy.items : access.reason);

t.test('picks up edits, new files and removals in the policy directory', async (t) => {
  const { policyDir, source, nextChange } = await setup(t);
  t.match(await source.reload(), { served: false, reason: /^no policy for this VM/ });

  let change = nextChange();
  await writeFile(join(policyDir, 'default.toml'), 'enabled = true\nallow = ["physcpus"]\n');
  t.same(items(await change), ['physcpus'], 'a new default.toml applies');

  change = nextChange();
  await writeFile(join(policyDir, 'web01.toml.tmp'), 'enabled = true\nallow = ["loadavg", "hostname"]\n');
  await rename(join(policyDir, 'web01.toml.tmp'), join(policyDir, 'web01.toml'));
  t.same(items(await change), ['loadavg', 'hostname'], 'an atomically renamed <name>.toml takes precedence');

  change = nextChange();
  await writeFile(join(policyDir, 'web01.toml'), 'enabled = false\n');
  t.match(await change, { served: false, reason: /does not set enabled = true/ }, 'enable -> disable');

  change = nextChange();
  await rm(join(policyDir, 'web01.toml'));
  t.same(items(await change), ['physcpus'], 'back to the default');
});

t.test('garbage fails closed, a fixed file is served again', async (t) => {
  const { policyDir, source, nextChange } = await setup(t);
  await writeFile(join(policyDir, 'web01.toml'), 'enabled = true\n');
  t.equal((await source.reload()).served, true);
  let change = nextChange();
  await writeFile(join(policyDir, 'web01.toml'), '\x00\x01 not toml [[[');
  t.match(await change, { served: false, reason: /^invalid policy, failing closed: .*web01\.toml/ });
  change = nextChange();
  await writeFile(join(policyDir, 'web01.toml'), 'enabled = true\n');
  t.equal((await change).served, true);
});

t.test('an explicit reload applies a host switch change', async (t) => {
  const { policyDir, config, source } = await setup(t);
  await writeFile(join(policyDir, 'default.toml'), 'enabled = true\n');
  t.equal((await source.reload()).served, true);
  config.value = { ...config.value, enabled: false };
  t.match(await source.reload(), { served: false, reason: /^host switch is off/ });
});

t.test('a config that cannot be loaded fails closed', async (t) => {
  const source = new PolicySource({ name: 'x' }, async () => { throw new Error('/h.toml: boom'); });
  t.teardown(() => source.close());
  t.same(await source.reload(), { served: false, reason: 'cannot load configuration, failing closed: /h.toml: boom' });
});

t.test('a policy directory that appears later is watched from the next reload on', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'hostinfo-reload-'));
  const policyDir = join(base, 'later');
  const source = new PolicySource({ name: 'web01' }, async () => hostConfig(policyDir));
  t.teardown(() => source.close());
  const unwatched = once(source, 'unwatched');
  await source.reload();
  await unwatched;
  await mkdir(policyDir);
  await source.reload();
  const change = once(source, 'change') as Promise<[Access]>;
  await writeFile(join(policyDir, 'web01.toml'), 'enabled = true\n');
  t.equal((await change)[0].served, true);
});
