// The guest kit's shell client without a port (issue 13): its request sequence, parsing and
// output formats, under dash, bash and busybox sh, from the recorded host replies in
// examples/guest-kit/testdata/ (`--replies FILE` answers each request with the file's next line
// and fails on a request the file does not expect). The expected documents there are also what
// hostinfo.ps1 must print; its metric table is compared with the shell client's here, since
// PowerShell cannot run on these machines. The Prometheus documents pass promtool.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ITEM_NAMES, ITEMS, isItemName } from '../../policies/items.js';
import { CLIENT, expected, KIT, kitFile, metricTable, MODES, REPO, runClient, SHELLS, testCases } from './kit.js';

const cases = testCases();
const PACKAGE_VERSION = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

t.test('the shells', async (t) => {
  t.same(SHELLS.map((shell) => shell.name), ['dash', 'bash', 'busybox'], 'dash, bash and busybox are installed (each runs every case below)');
  t.ok(cases.length >= 5, `testdata cases: ${cases.map((c) => c.name).join(' ')}`);
});

for (const shell of SHELLS) {
  t.test(`${shell.name}: every testdata case in every mode`, async (t) => {
    for (const testCase of cases) {
      for (const mode of MODES) {
        const run = await runClient(shell, ['--replies', testCase.replies, mode.flag]);
        const what = `${testCase.name} ${mode.flag}`;
        t.equal(run.stdout, expected(testCase.documents, mode.ext), `${what}: the document`);
        t.equal(run.code, testCase.exit, `${what}: exit ${testCase.exit}`, { stderr: run.stderr });
        t.same(run.stderr.split('\n').filter(Boolean), testCase.stderr, `${what}: stderr`);
      }
    }
  });
}

t.test('the expected documents are well formed', async (t) => {
  for (const testCase of cases) {
    const json = expected(testCase.documents, 'json');
    t.doesNotThrow(() => JSON.parse(json), `${testCase.documents}.json parses`);
    const prom = expected(testCase.documents, 'prom');
    const check = spawnSync('promtool', ['check', 'metrics'], { input: prom, encoding: 'utf8' });
    t.equal(check.status, 0, `${testCase.documents}.prom: promtool check metrics`, { output: check.stdout + check.stderr });
    for (const line of expected(testCase.documents, 'influx').split('\n').filter(Boolean)) {
      t.match(line, /^hostinfo_(host|vm) [a-z0-9_]+=(\d+i|-?\d+(\.\d+)?|"([^"\\]|\\.)*")(,[a-z0-9_]+=(\d+i|-?\d+(\.\d+)?|"([^"\\]|\\.)*"))*$/, `${testCase.documents}.influx: line protocol`);
    }
  }
  const items = JSON.parse(expected('items', 'json')) as Record<string, unknown>;
  t.same(Object.keys(items), ITEM_NAMES, 'items.json: every catalogue item, in catalogue order');
  t.same(items['loadavg'], [0.52, 0.48, 0.4], 'a list of numbers is an array');
  t.same(items['physmem'], { total: 16303932, free: 123456, available: 9876543 }, 'key=value pairs are an object, in the protocol\'s units (kB)');
  t.equal(items['cpumodel'], 'AMD EPYC 7B13 64-Core Processor');
  t.equal(items['hypervisor'], null, 'an item not served is null');
  const prom = expected('items', 'prom');
  t.match(prom, /^hostinfo_host_memory_total_bytes 16695226368$/m, 'Prometheus: kB become bytes');
  t.match(prom, /^hostinfo_host_cpu_usage_ratio\{mode="user"\} 0\.125$/m, 'Prometheus: % become ratios');
  t.match(prom, /^hostinfo_vm_vcpu_delay_ratio 0\.0235$/m, 'Prometheus: the per-VM item is hostinfo_vm_*');
  t.match(prom, /^hostinfo_host_cpu_nominal_hertz 2450000000$/m, 'Prometheus: MHz become hertz');
  t.notMatch(prom, /hypervisor/, 'an item not served is absent');
});

t.test('the testdata host and both clients know every catalogue item', async (t) => {
  const replies = readFileSync(path.join(KIT, 'testdata', 'items.replies'), 'utf8');
  const help = /^help 1\.0 200 (.*)$/m.exec(replies)?.[1]?.split(' ');
  t.same(help, ['ping', 'help', 'version', ...ITEM_NAMES], 'items.replies: HELP lists the catalogue');
  // The example values are the README's, so the documents show what the README promises.
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  for (const item of ITEM_NAMES) {
    const example = new RegExp(`^\\| \`${item}\` \\| \`([^\`]*)\``, 'm').exec(readme)?.[1];
    const reply = new RegExp(`^${item} 1\\.0 (\\d{3}) (.*)$`, 'm').exec(replies);
    if (reply?.[1] === '200') t.equal(reply[2], example, `items.replies ${item}: the README's example`);
    else t.equal(item, 'hypervisor', `items.replies ${item}: the one item answered 503`);
  }
  const shellTable = metricTable(kitFile('hostinfo'), 'hostinfo');
  const psTable = metricTable(kitFile('hostinfo.ps1'), 'hostinfo.ps1');
  t.same([...shellTable.keys()], ITEM_NAMES, 'the shell client maps every catalogue item to metrics, in order');
  t.same([...psTable.entries()], [...shellTable.entries()], 'hostinfo.ps1 has the same metric table, line for line');
  for (const [item, spec] of shellTable) {
    const [kind, name, field, help] = spec.split('|');
    t.match(kind, /^(num|counter|kbcounter|scale:\d+|pct|kb|info:[a-z]+|list|pctpairs:[a-z]+|kbpairs)$/, `${item}: kind`);
    // Per-VM items are the ones the catalogue describes as "this VM"'s.
    const perVm = isItemName(item) && /\bthis VM\b/.test(ITEMS[item].meaning);
    t.match(name, perVm ? /^vm_/ : /^host_/, `${item}: ${perVm ? 'a per-VM item is vm_*' : 'a host item is host_*'}`);
    t.ok(field !== undefined && help !== undefined && !/[\\"']/.test(help), `${item}: a field and a plain help text`);
  }
});

t.test('plain mode, options and transcripts', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hikit-formats-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => {
    const at = path.join(dir, name);
    writeFileSync(at, text);
    return at;
  };
  const plain = file('plain', 'physcpus 1.0 200 16\n');
  const notFound = file('404', 'frobnicate 1.0 404 unknown command: frobnicate\n');
  const named = file('named', 'physcpus 1.0 200 16\nloadavg 1.0 200 0.52 0.48 0.40\n');
  const wrong = file('wrong', 'all 1.0 404 unknown command: all\nloadavg 1.0 200 0.52 0.48 0.40\n');
  const version = `hostinfo ${PACKAGE_VERSION} (hostinfo-qemu guest kit, protocol 1.0)\n`;
  for (const shell of SHELLS) {
    const run = (args: readonly string[]) => runClient(shell, args);
    const s = shell.name;
    t.match(await run(['--replies', plain, 'physcpus']), { code: 0, stdout: '16\n', stderr: '' }, `${s}: the reply text`);
    t.match(await run(['--replies', notFound, 'frobnicate']), { code: 1, stdout: '', stderr: 'hostinfo: 1.0 404 unknown command: frobnicate\n' }, `${s}: not 200: exit 1, the reply on stderr`);
    t.match(await run(['--replies', named, '--json', 'physcpus', 'loadavg']), { code: 0, stdout: '{"physcpus":16,"loadavg":[0.52,0.48,0.40]}\n' }, `${s}: named items are asked one by one, without ALL or HELP`);
    t.match(await run(['--replies', wrong, '--json']), { code: 70, stderr: /the client asked 'help', the next recorded reply is for 'loadavg'/ }, `${s}: a request the transcript does not expect`);
    t.match(await run(['--replies', plain, 'physcpus', 'extra']), { code: 0 }, `${s}: arguments are sent (the transcript checks the command only)`);
    t.match(await run(['--version']), { code: 0, stdout: version }, `${s}: --version is package.json's`);
    t.match(await run(['--help']), { code: 0, stdout: /^usage: hostinfo/ }, `${s}: --help`);
    t.match(await run([]), { code: 2, stderr: /^usage: hostinfo/ }, `${s}: no command: usage, exit 2`);
    t.match(await run(['--timeout', 'soon', 'physcpus']), { code: 2, stderr: /--timeout wants seconds/ }, `${s}: a bad --timeout`);
    t.match(await run(['--timeout', '0', 'physcpus']), { code: 2 }, `${s}: --timeout 0`);
    t.match(await run(['--frob']), { code: 2, stderr: /unknown option --frob/ }, `${s}: an unknown option`);
    t.match(await run(['--json', 'Bad-Item']), { code: 2, stderr: /not an item name/ }, `${s}: an item name that is not one`);
    t.match(await run(['--device', path.join(dir, 'missing'), 'physcpus']), { code: 3, stderr: /does not exist/ }, `${s}: a --device that does not exist: exit 3`);
  }
  t.match(readFileSync(CLIENT, 'utf8').split('\n', 1)[0], '#!/bin/sh', 'the client is a /bin/sh script');
});
