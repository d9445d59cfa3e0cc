// README.md documents the guest protocol for people who never read the code: its tables must say
// what the code does. The "Data items" table is the item catalogue (policies/items.ts) in order,
// with its default column; the commands table lists every command the request handler knows
// besides the items; the policy table's `allow` default is DEFAULT_ALLOWED_ITEMS.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { DEFAULT_ALLOWED_ITEMS, ITEM_NAMES, ITEMS, type ItemName } from '../policies/items.js';
import { FRESH_LIMITER } from '../policies/rate-limiter.js';
import { GuestLineDecoder } from '../sidecar/protocol/line-decoder.js';
import { REPLY_PREFIX } from '../sidecar/protocol/version.js';
import { handleGuestFrame } from '../sidecar/request-handler.js';

const README = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');

/** The rows of the first markdown table after the line starting with `after`, as trimmed cells. */
function tableAfter(text: string, after: RegExp): string[][] | undefined {
  const lines = text.split('\n');
  const start = lines.findIndex((line) => after.test(line));
  if (start === -1) return undefined;
  let at = start + 1;
  while (at < lines.length && !lines[at]!.startsWith('|')) {
    if (/^#/.test(lines[at]!)) return undefined; // the next section came first
    at += 1;
  }
  const rows: string[][] = [];
  for (; at < lines.length && lines[at]!.startsWith('|'); at += 1) {
    rows.push(lines[at]!.replace(/^\|/, '').replace(/\|\s*$/, '').split('|').map((cell) => cell.trim()));
  }
  // Header, then the |---| separator, then the body.
  return rows.length >= 2 && /^:?-+:?$/.test(rows[1]![0] ?? '') ? rows : undefined;
}

const unquote = (cell: string): string => cell.replace(/^`|`$/g, '');

/** What is wrong with the README's "Data items" table; empty when it matches the catalogue. */
export function itemTableProblems(text: string): string[] {
  const table = tableAfter(text, /^Data items\b/);
  if (table === undefined) return ['no "Data items" table'];
  const [header, , ...body] = table;
  const defaultColumn = header!.findIndex((cell) => cell.toLowerCase() === 'default');
  if (header![0]?.toLowerCase() !== 'item' || defaultColumn === -1) return [`unexpected header: ${header!.join(' | ')}`];
  const problems: string[] = [];
  const names = body.map((row) => unquote(row[0] ?? ''));
  if (names.join(' ') !== ITEM_NAMES.join(' ')) problems.push(`items: README lists ${names.join(' ')}; policies/items.ts has ${ITEM_NAMES.join(' ')}`);
  for (const row of body) {
    const name = unquote(row[0] ?? '');
    if (!Object.hasOwn(ITEMS, name)) continue;
    const spec = ITEMS[name as ItemName];
    const expected = [spec.allowedByDefault ? 'allowed' : '', spec.sensitive ? 'sensitive' : ''].filter(Boolean).join(', ');
    const cell = row[defaultColumn] ?? '';
    if (cell !== expected) problems.push(`${name}: README's default column says ${JSON.stringify(cell)}, policies/items.ts means ${JSON.stringify(expected)}`);
  }
  return problems;
}

/** The commands the request handler knows besides the items: what HELP lists for a VM allowed none. */
function builtinCommands(): string[] {
  const [frame] = new GuestLineDecoder().push(Buffer.from('help\n'));
  const outcome = handleGuestFrame({
    access: { served: true, policy: { file: '/p', enabled: true, items: [], limit: { intervalMs: 1000, burst: 1 } } },
    limiter: FRESH_LIMITER, sample: undefined, vm: { hypervisor: undefined, vcpuDelay: undefined }, maxAgeMs: 5000, now: 0, wallNow: 0, version: '0',
  }, frame!);
  const prefix = `${REPLY_PREFIX}200 `;
  if (outcome.reply?.startsWith(prefix) !== true) throw new Error(`HELP answered ${JSON.stringify(outcome.reply)}`);
  return outcome.reply.slice(prefix.length).trim().split(' ');
}

/** What is wrong with the README's commands table; empty when it lists every built-in command and no other. */
export function commandTableProblems(text: string, known: readonly string[] = builtinCommands()): string[] {
  const table = tableAfter(text, /^Commands every enabled VM may use/);
  if (table === undefined) return ['no commands table'];
  const [header, , ...body] = table;
  if (header![0]?.toLowerCase() !== 'command') return [`unexpected header: ${header!.join(' | ')}`];
  // `PING [text]`: the command is the first word.
  const listed = body.map((row) => unquote(row[0] ?? '').split(' ')[0]!.toLowerCase());
  return [
    ...known.filter((command) => !listed.includes(command)).map((command) => `the handler knows ${command.toUpperCase()}, the README's commands table does not list it`),
    ...listed.filter((command) => !known.includes(command)).map((command) => `the README lists ${command.toUpperCase()}, which the handler does not know`),
  ];
}

/** The per-VM policy table's `allow` default against DEFAULT_ALLOWED_ITEMS. */
export function allowDefaultProblems(text: string): string[] {
  const table = tableAfter(text, /^### Per-VM policy/);
  const row = table?.find((cells) => cells[0] === '`allow`');
  if (row === undefined) return ['no `allow` row in the per-VM policy table'];
  const listed = (row[2] ?? '').split(',').map((name) => name.trim());
  return listed.join(' ') === DEFAULT_ALLOWED_ITEMS.join(' ') ? [] : [`allow default: README says ${listed.join(' ')}; policies/items.ts ${DEFAULT_ALLOWED_ITEMS.join(' ')}`];
}

t.test('the README agrees with the code', async (t) => {
  t.same(itemTableProblems(README), [], 'the "Data items" table is the item catalogue');
  t.same(commandTableProblems(README), [], 'the commands table lists every built-in command');
  t.same(allowDefaultProblems(README), [], 'the policy table\'s allow default is DEFAULT_ALLOWED_ITEMS');
  t.same(builtinCommands(), ['ping', 'help', 'version'], 'sanity: what the handler knows besides the items');
});

t.test('the checks catch a README that disagrees', async (t) => {
  const swapRows = README.replace(/^(\| `physcores` .*)\n(\| `sockets` .*)$/m, '$2\n$1');
  t.not(swapRows, README);
  t.match(itemTableProblems(swapRows), [/^items: README lists physcpus sockets physcores/], 'order');
  const dropRow = README.replace(/^\| `swap` .*\n/m, '');
  t.match(itemTableProblems(dropRow), [/^items: /], 'a missing item');
  const extraRow = README.replace(/^(\| `vmsession` .*)$/m, '$1\n| `gpus` | `2` | host GPUs | |');
  t.match(itemTableProblems(extraRow), [/^items: .*vmsession gpus;/], 'an item the code does not have');
  const notAllowed = README.replace(/^(\| `uptime` .*\| )allowed \|$/m, '$1 |');
  t.not(notAllowed, README);
  t.same(itemTableProblems(notAllowed), ['uptime: README\'s default column says "", policies/items.ts means "allowed"'], 'the allowed mark');
  const notSensitive = README.replace(/^(\| `kernel` .*\| )sensitive \|$/m, '$1allowed |');
  t.same(itemTableProblems(notSensitive), ['kernel: README\'s default column says "allowed", policies/items.ts means "sensitive"'], 'the sensitive mark');
  t.same(itemTableProblems(README.replace(/^Data items/m, 'Items')), ['no "Data items" table']);

  const noVersion = README.replace(/^\| `VERSION` .*\n/m, '');
  t.same(commandTableProblems(noVersion), ['the handler knows VERSION, the README\'s commands table does not list it'], 'a command missing from the table');
  t.same(commandTableProblems(README, ['ping', 'help', 'version', 'stats']), ['the handler knows STATS, the README\'s commands table does not list it'], 'a command added to the handler only');
  t.same(commandTableProblems(README, ['ping', 'help']), ['the README lists VERSION, which the handler does not know']);

  const allowDrift = README.replace(/(\| `allow` \| array of item names \| )physcpus, /, '$1');
  t.match(allowDefaultProblems(allowDrift), [/^allow default: /]);
});
