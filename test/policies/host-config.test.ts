import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError } from '../../policies/config-error.js';
import { DEFAULT_POLICY_DIR, loadHostConfig, parseHostConfig, type ConfigEnvironment } from '../../policies/host-config.js';

const ROOT: ConfigEnvironment = { env: {}, uid: 0, cwd: '/' };
const USER: ConfigEnvironment = { env: { XDG_RUNTIME_DIR: '/run/user/1000' }, uid: 1000, cwd: '/home/u' };

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  return 'nothing thrown';
}

async function configFile(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-config-'));
  const file = join(dir, 'hostinfo.toml');
  await writeFile(file, text);
  return file;
}

t.test('without any config file everything is off, with the documented paths', async (t) => {
  const missing = { env: { HOSTINFO_CONFIG: '' }, uid: 0, cwd: '/' };
  // The default path is /etc/hostinfo/hostinfo.toml; on a test machine it does not exist.
  t.same(await loadHostConfig({}, missing), {
    file: undefined, enabled: false, policyDir: DEFAULT_POLICY_DIR, runtimeDir: '/run/hostinfo', group: undefined, adminGroup: undefined,
    cache: { intervalSeconds: 1, maxAgeSeconds: 5 }, sidecarUser: 'hostinfo', guest: { linesPerSecond: 100, bytesPerSecond: 16384 },
    metrics: { textfile: undefined }, vhostmd: { enabled: false },
  });
  t.equal((await loadHostConfig({}, { ...USER, env: { XDG_RUNTIME_DIR: '/run/user/1000' } })).runtimeDir, '/run/user/1000/hostinfo');
});

t.test('a config file sets everything; relative paths are relative to the file', async (t) => {
  const file = await configFile('enabled = true\npolicy_dir = "policies"\nruntime_dir = "/tmp/rt"\ngroup = "kvm"\nadmin_group = "hostinfo-admin"\nsidecar_user = "hi-sidecar"\n[cache]\ninterval = 0.5\nmax_age = 2\n[guest]\nlines_per_second = 7\nbytes_per_second = 4096\n[metrics]\ntextfile = "textfile/hostinfo.prom"\n');
  t.same(await loadHostConfig({ configPath: file }, USER), {
    file, enabled: true, policyDir: join(file, '..', 'policies'), runtimeDir: '/tmp/rt', group: 'kvm', adminGroup: 'hostinfo-admin',
    cache: { intervalSeconds: 0.5, maxAgeSeconds: 2 }, sidecarUser: 'hi-sidecar', guest: { linesPerSecond: 7, bytesPerSecond: 4096 },
    metrics: { textfile: join(file, '..', 'textfile', 'hostinfo.prom') }, vhostmd: { enabled: false },
  });
});

t.test('precedence: file, then HOSTINFO_* environment, then command-line overrides', async (t) => {
  const file = await configFile('enabled = true\npolicy_dir = "/from/file"\nruntime_dir = "/rt/file"\n');
  const env: ConfigEnvironment = { env: { HOSTINFO_CONFIG: file, HOSTINFO_POLICY_DIR: 'env-policies', HOSTINFO_RUNTIME_DIR: '/rt/env' }, uid: 0, cwd: '/work' };
  const fromEnv = await loadHostConfig({}, env);
  t.equal(fromEnv.file, file, 'HOSTINFO_CONFIG names the file');
  t.equal(fromEnv.policyDir, '/work/env-policies', 'relative env paths are relative to the cwd');
  t.equal(fromEnv.runtimeDir, '/rt/env');
  const fromFlags = await loadHostConfig({ policyDir: '/flag/p', runtimeDir: '/flag/rt' }, env);
  t.same([fromFlags.policyDir, fromFlags.runtimeDir], ['/flag/p', '/flag/rt']);
});

t.test('a non-root user without XDG_RUNTIME_DIR must say where sockets go', async (t) => {
  const bare: ConfigEnvironment = { env: {}, uid: 1000, cwd: '/' };
  await t.rejects(loadHostConfig({ configPath: await configFile('enabled = true\n') }, bare), { code: 'CONFIG_RANGE', key: 'XDG_RUNTIME_DIR', received: 'unset' });
  t.equal((await loadHostConfig({ configPath: await configFile('runtime_dir = "/x"\n') }, bare)).runtimeDir, '/x');
  t.equal((await loadHostConfig({ runtimeDir: '/y', configPath: await configFile('') }, bare)).runtimeDir, '/y');
});

t.test('a config file named explicitly must exist', async (t) => {
  await t.rejects(loadHostConfig({ configPath: '/nonexistent/hostinfo.toml' }, ROOT), {
    code: 'CONFIG_READ', file: '/nonexistent/hostinfo.toml', received: 'ENOENT',
    message: '/nonexistent/hostinfo.toml: cannot read config: expected a readable file: received ENOENT',
  });
  await t.rejects(loadHostConfig({}, { ...ROOT, env: { HOSTINFO_CONFIG: '/nonexistent/h.toml' } }), { code: 'CONFIG_READ' });
  await t.rejects(loadHostConfig({ configPath: '/' }, ROOT), { code: 'CONFIG_READ', received: 'EISDIR' });
});

t.test('validation errors name file, line, key, expected and received', async (t) => {
  const cases: [string, Record<string, unknown>][] = [
    ['enable = true', { code: 'CONFIG_UNKNOWN_KEY', line: 1, key: 'enable' }],
    ['enabled = 1', { code: 'CONFIG_TYPE', key: 'enabled', received: 'integer 1' }],
    ['policy_dir = ""', { code: 'CONFIG_RANGE', key: 'policy_dir', expected: 'a non-empty string' }],
    ['runtime_dir = ["/run"]', { code: 'CONFIG_TYPE', key: 'runtime_dir', received: 'array ["/run"]' }],
    ['cache = 1', { code: 'CONFIG_TYPE', key: 'cache', expected: 'a table' }],
    ['[cache]\nintervall = 1', { code: 'CONFIG_UNKNOWN_KEY', line: 2, key: 'cache.intervall' }],
    ['\n[cache]\ninterval = 0', { code: 'CONFIG_RANGE', line: 3, key: 'cache.interval', received: '0' }],
    ['[cache]\ninterval = 2\nmax_age = 1', { code: 'CONFIG_RANGE', line: 3, key: 'cache.max_age', expected: 'at least cache.interval (2)', received: '1' }],
    ['[cache]\nmax_age = 0.5', { code: 'CONFIG_RANGE', key: 'cache.max_age', expected: 'at least cache.interval (1)' }],
    ['enabled = true\n[cache', { code: 'CONFIG_SYNTAX', line: 2 }],
    ['sidecar_user = ""', { code: 'CONFIG_RANGE', key: 'sidecar_user', expected: 'a non-empty string' }],
    ['sidecar_user = 0', { code: 'CONFIG_TYPE', key: 'sidecar_user' }],
    ['admin_group = ""', { code: 'CONFIG_RANGE', line: 1, key: 'admin_group', expected: 'a non-empty string' }],
    ['\nadmin_group = 4', { code: 'CONFIG_TYPE', line: 2, key: 'admin_group', expected: 'a string', received: 'integer 4' }],
    ['admin_groups = "adm"', { code: 'CONFIG_UNKNOWN_KEY', key: 'admin_groups', expected: /\badmin_group\b/ }],
    ['[guest]\nlines = 5', { code: 'CONFIG_UNKNOWN_KEY', line: 2, key: 'guest.lines' }],
    ['[guest]\nlines_per_second = 0', { code: 'CONFIG_RANGE', line: 2, key: 'guest.lines_per_second', received: '0' }],
    ['[guest]\nlines_per_second = 1.5', { code: 'CONFIG_TYPE', key: 'guest.lines_per_second' }],
    ['[guest]\nbytes_per_second = 255', { code: 'CONFIG_RANGE', key: 'guest.bytes_per_second', received: '255' }],
    ['metrics = "/x.prom"', { code: 'CONFIG_TYPE', key: 'metrics', expected: 'a table' }],
    ['vhostmd = true', { code: 'CONFIG_TYPE', line: 1, key: 'vhostmd', expected: 'a table', received: 'boolean true' }],
    ['[vhostmd]\nenable = true', { code: 'CONFIG_UNKNOWN_KEY', line: 2, key: 'vhostmd.enable', expected: 'one of enabled' }],
    ['\n[vhostmd]\nenabled = "yes"', { code: 'CONFIG_TYPE', line: 3, key: 'vhostmd.enabled', expected: 'a boolean (true or false)', received: 'string "yes"' }],
    ['[metrics]\nfile = "/x.prom"', { code: 'CONFIG_UNKNOWN_KEY', line: 2, key: 'metrics.file', expected: 'one of textfile' }],
    ['[metrics]\ntextfile = 1', { code: 'CONFIG_TYPE', line: 2, key: 'metrics.textfile', expected: 'a string' }],
    ['[metrics]\ntextfile = ""', { code: 'CONFIG_RANGE', key: 'metrics.textfile', expected: 'a non-empty string' }],
    ['\n[metrics]\ntextfile = "/var/lib/prometheus/node-exporter/hostinfo.txt"', {
      code: 'CONFIG_RANGE', line: 3, key: 'metrics.textfile', expected: 'a file name ending in .prom (node_exporter reads only those)',
      received: '"/var/lib/prometheus/node-exporter/hostinfo.txt"',
      message: '/etc/hostinfo/hostinfo.toml:3: key "metrics.textfile": expected a file name ending in .prom (node_exporter reads only those): received "/var/lib/prometheus/node-exporter/hostinfo.txt"',
    }],
    ['[metrics]\ntextfile = "/var/lib/prometheus/node-exporter/.prom"', { code: 'CONFIG_RANGE', key: 'metrics.textfile', received: '"/var/lib/prometheus/node-exporter/.prom"' }],
    ['[metrics]\ntextfile = "hostinfo.prom.tmp"', { code: 'CONFIG_RANGE', key: 'metrics.textfile' }],
  ];
  for (const [text, expected] of cases) {
    t.match(thrown(() => parseHostConfig(text, '/etc/hostinfo/hostinfo.toml')), { file: '/etc/hostinfo/hostinfo.toml', ...expected }, JSON.stringify(text));
  }
});

t.test('the key line lookup finds keys in the right table only', async (t) => {
  t.match(thrown(() => parseHostConfig('interval = 3\n[cache]\n\ninterval = -1', '/h.toml')), { code: 'CONFIG_UNKNOWN_KEY', key: 'interval', line: 1 });
  t.match(thrown(() => parseHostConfig('[cache]\n  "interval" = -1', '/h.toml')), { key: 'cache.interval', line: 2 });
});

t.test('[metrics] textfile: off by default, relative to the config file, an absolute path as written', async (t) => {
  t.same(parseHostConfig('enabled = true\n', '/etc/hostinfo/hostinfo.toml').metrics, { textfile: undefined });
  t.same(parseHostConfig('[metrics]\n', '/etc/hostinfo/hostinfo.toml').metrics, { textfile: undefined }, 'an empty table is off too');
  t.same(parseHostConfig('[metrics]\ntextfile = "/var/lib/prometheus/node-exporter/hostinfo.prom"\n', '/etc/hostinfo/hostinfo.toml').metrics,
    { textfile: '/var/lib/prometheus/node-exporter/hostinfo.prom' });
  t.same(parseHostConfig('[metrics]\ntextfile = "../prom/h.prom"\n', '/etc/hostinfo/hostinfo.toml').metrics, { textfile: '/etc/prom/h.prom' });
});

t.test('admin_group: unset by default, a name as written', async (t) => {
  t.equal(parseHostConfig('enabled = true\n', '/h.toml').adminGroup, undefined);
  t.equal(parseHostConfig('admin_group = "adm"\n', '/h.toml').adminGroup, 'adm');
  t.equal(parseHostConfig('group = "kvm"\nadmin_group = "kvm"\n', '/h.toml').adminGroup, 'kvm', 'the same group as `group` is allowed');
});

t.test('[vhostmd] enabled: off by default, an empty table off too, true as written', async (t) => {
  const file = '/etc/hostinfo/hostinfo.toml';
  t.same(parseHostConfig('enabled = true\n', file).vhostmd, { enabled: false });
  t.same(parseHostConfig('[vhostmd]\n', file).vhostmd, { enabled: false });
  t.same(parseHostConfig('[vhostmd]\nenabled = false\n', file).vhostmd, { enabled: false });
  t.same(parseHostConfig('[vhostmd]\nenabled = true\n', file).vhostmd, { enabled: true });
  const loaded = await loadHostConfig({ configPath: await configFile('enabled = true\n[vhostmd]\nenabled = true\n') }, ROOT);
  t.same(loaded.vhostmd, { enabled: true }, 'through loadHostConfig');
  t.match(thrown(() => parseHostConfig('[vhostmd]\nenabled = 1\n', file)), { message: `${file}:2: key "vhostmd.enabled": expected a boolean (true or false): received integer 1` }, 'the whole message');
});
