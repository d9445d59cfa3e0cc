import t, { type Test } from 'tap';
import { ConfigError } from '../../policies/config-error.js';
import { DEFAULT_ALLOWED_ITEMS } from '../../policies/items.js';
import { parseVmPolicy } from '../../policies/vm-policy.js';

const FILE = '/etc/hostinfo/policies/web01.toml';

t.test('defaults: disabled, the default item list, once per second', async (t) => {
  t.same(parseVmPolicy('', FILE), { file: FILE, enabled: false, items: DEFAULT_ALLOWED_ITEMS, limit: { intervalMs: 1000, burst: 1 } });
});

t.test('allow, deny, interval and burst', async (t) => {
  const policy = parseVmPolicy([
    'enabled = true',
    'allow = ["hostname", "loadavg", "physcpus", "loadavg"]',
    'deny = ["loadavg"]',
    'interval = 0.25',
    'burst = 4',
  ].join('\n'), FILE);
  t.same(policy, { file: FILE, enabled: true, items: ['physcpus', 'hostname'], limit: { intervalMs: 250, burst: 4 } });
});

t.test('deny alone trims the default list; sensitive items need allow', async (t) => {
  const policy = parseVmPolicy('enabled = true\ndeny = ["vcpudelay", "hostname"]', FILE);
  t.same(policy.items, DEFAULT_ALLOWED_ITEMS.filter((item) => item !== 'vcpudelay'));
  t.same(parseVmPolicy('allow = []', FILE).items, [], 'an empty allow list serves no items');
});

t.test('an integer interval is accepted', async (t) => {
  t.equal(parseVmPolicy('interval = 2', FILE).limit.intervalMs, 2000);
});

function rejects(t: Test, text: string, expected: Record<string, unknown>, message: string): void {
  try {
    parseVmPolicy(text, FILE);
    t.fail(`accepted: ${text}`);
  } catch (error) {
    t.type(error, ConfigError);
    t.match(error, { file: FILE, ...expected }, message);
  }
}

t.test('every validation error names file, line, key, expected and received', async (t) => {
  rejects(t, 'enabled = true\nallowed = ["physcpus"]', { code: 'CONFIG_UNKNOWN_KEY', line: 2, key: 'allowed', received: '"allowed"', message: /web01\.toml:2: key "allowed": unknown key: expected one of enabled, allow, deny, interval, burst: received "allowed"/ }, 'typo in a key');
  rejects(t, 'enabled = "yes"', { code: 'CONFIG_TYPE', line: 1, key: 'enabled', expected: 'a boolean (true or false)', received: 'string "yes"' }, 'enabled as string');
  rejects(t, 'allow = "physcpus"', { code: 'CONFIG_TYPE', key: 'allow', expected: 'an array of strings', received: 'string "physcpus"' }, 'allow not an array');
  rejects(t, '\nallow = ["physcpus", 3]', { code: 'CONFIG_TYPE', line: 2, key: 'allow[1]', expected: 'a string', received: 'integer 3' }, 'non-string element');
  rejects(t, 'allow = ["physcpus", "cpuspeed"]', { code: 'CONFIG_UNKNOWN_ITEM', line: 1, key: 'allow[1]', received: '"cpuspeed"', expected: /^an item name \(physcpus, physcores/ }, 'unknown item in allow');
  rejects(t, 'deny = ["PHYSCPUS"]', { code: 'CONFIG_UNKNOWN_ITEM', key: 'deny[0]', received: '"PHYSCPUS"' }, 'item names are exact');
  rejects(t, 'interval = 0', { code: 'CONFIG_RANGE', key: 'interval', expected: 'a finite number of seconds greater than 0', received: '0' }, 'zero interval');
  rejects(t, 'interval = -1.5', { code: 'CONFIG_RANGE', key: 'interval', received: '-1.5' }, 'negative interval');
  rejects(t, 'interval = inf', { code: 'CONFIG_RANGE', key: 'interval', received: 'Infinity' }, 'infinite interval');
  rejects(t, 'interval = nan', { code: 'CONFIG_RANGE', key: 'interval', received: 'NaN' }, 'NaN interval');
  rejects(t, 'interval = "1s"', { code: 'CONFIG_TYPE', key: 'interval', expected: 'a number of seconds', received: 'string "1s"' }, 'interval as string');
  rejects(t, 'burst = 0', { code: 'CONFIG_RANGE', key: 'burst', expected: 'an integer >= 1', received: '0' }, 'burst 0');
  rejects(t, 'burst = 1.5', { code: 'CONFIG_TYPE', key: 'burst', expected: 'an integer >= 1', received: 'float 1.5' }, 'fractional burst');
  rejects(t, 'burst = 1e300', { code: 'CONFIG_RANGE', key: 'burst', received: '1e+300' }, 'absurd burst');
  rejects(t, '[limits]\nburst = 2', { code: 'CONFIG_UNKNOWN_KEY', line: 1, key: 'limits' }, 'unknown table');
});

t.test('syntax errors carry the parser\'s line', async (t) => {
  rejects(t, 'enabled = true\nallow = ["physcpus",\n', { code: 'CONFIG_SYNTAX', line: 3, message: /^\/etc\/hostinfo\/policies\/web01\.toml:3: invalid TOML/ }, 'unclosed array');
  rejects(t, 'enabled = true\nenabled = false', { code: 'CONFIG_SYNTAX', line: 2 }, 'duplicate key');
});

t.test('oversize files are refused before parsing', async (t) => {
  rejects(t, `# ${'x'.repeat(70_000)}\n`, { code: 'CONFIG_RANGE', expected: 'at most 65536 bytes' }, 'big comment');
});
