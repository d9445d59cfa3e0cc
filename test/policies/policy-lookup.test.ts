import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { findVmPolicy, policyCandidates, safeNameStem, safeUuidStem } from '../../policies/policy-lookup.js';

const UUID = '6f1d1c2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f';

async function policyDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-policies-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

t.test('candidates: uuid, then name, then default', async (t) => {
  t.same(policyCandidates('/p', { name: 'web01', uuid: UUID.toUpperCase() }), [`/p/${UUID}.toml`, '/p/web01.toml', '/p/default.toml']);
  t.same(policyCandidates('/p', {}), ['/p/default.toml']);
  t.same(policyCandidates('/p', { name: 'default' }), ['/p/default.toml'], 'no duplicate');
});

t.test('unsafe names and UUIDs never reach the file system', async (t) => {
  for (const name of ['../etc/passwd', 'a/b', '.hidden', '..', '.', '', 'has space', 'x'.repeat(129), 'nul\0byte', 'caf\u00e9', '-rf']) {
    t.equal(safeNameStem(name), undefined, JSON.stringify(name));
  }
  for (const name of ['web01', 'db_2.prod', 'vm-1+test', '_x', 'x'.repeat(128)]) t.equal(safeNameStem(name), name);
  for (const uuid of ['../../x', `${UUID}x`, UUID.replace(/-/g, ''), '00000000-0000-0000-0000-000000000000']) {
    t.equal(safeUuidStem(uuid), undefined, uuid);
  }
  t.same(policyCandidates('/p', { name: '../../etc/shadow', uuid: '../x' }), ['/p/default.toml']);
});

t.test('the most specific existing file wins', async (t) => {
  const dir = await policyDir({ [`${UUID}.toml`]: 'enabled = true\nburst = 3', 'web01.toml': 'enabled = true\nburst = 2', 'default.toml': 'burst = 1' });
  const byUuid = await findVmPolicy(dir, { name: 'web01', uuid: UUID });
  t.match(byUuid, { kind: 'found', policy: { file: join(dir, `${UUID}.toml`), limit: { burst: 3 } } });
  t.match(await findVmPolicy(dir, { name: 'web01', uuid: '11111111-2222-4333-8444-555555555555' }), { kind: 'found', policy: { limit: { burst: 2 } } });
  t.match(await findVmPolicy(dir, { name: 'other' }), { kind: 'found', policy: { file: join(dir, 'default.toml'), enabled: false } });
});

t.test('no file at all: none, with the list of places searched', async (t) => {
  const dir = await policyDir({});
  t.same(await findVmPolicy(dir, { name: 'web01' }), { kind: 'none', searched: [join(dir, 'web01.toml'), join(dir, 'default.toml')] });
  t.same(await findVmPolicy(join(dir, 'missing'), {}), { kind: 'none', searched: [join(dir, 'missing', 'default.toml')] });
});

t.test('an invalid specific policy fails closed instead of falling back to the default', async (t) => {
  const dir = await policyDir({ 'web01.toml': 'enabled = true\nallow = ["everything"]', 'default.toml': 'enabled = true' });
  const lookup = await findVmPolicy(dir, { name: 'web01' });
  t.match(lookup, { kind: 'invalid', error: { code: 'CONFIG_UNKNOWN_ITEM', file: join(dir, 'web01.toml'), line: 2 } });
});

t.test('an unreadable specific policy fails closed too', async (t) => {
  const dir = await policyDir({ 'default.toml': 'enabled = true' });
  await mkdir(join(dir, 'web01.toml'));
  t.match(await findVmPolicy(dir, { name: 'web01' }), { kind: 'invalid', error: { code: 'CONFIG_READ', received: 'EISDIR' } });
  const denied = await findVmPolicy(dir, { name: 'web02' }, async () => {
    throw Object.assign(new Error('permission denied'), { code: 'EACCES' });
  });
  t.match(denied, { kind: 'invalid', error: { code: 'CONFIG_READ', received: 'EACCES' } });
  await chmod(dir, 0o755);
});
