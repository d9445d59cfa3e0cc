// The guest protocol version is written once (sidecar/protocol/version.ts): replies, VERSION and
// the echo check all take it from there, and no stray literal is left in sidecar/.

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { GuestLineDecoder } from '../../../sidecar/protocol/line-decoder.js';
import { formatReply, STATUS } from '../../../sidecar/protocol/reply.js';
import { looksLikeReply } from '../../../sidecar/protocol/request-parser.js';
import { PROTOCOL_VERSION, REPLY_PREFIX } from '../../../sidecar/protocol/version.js';
import { handleGuestFrame } from '../../../sidecar/request-handler.js';
import { FRESH_LIMITER } from '../../../policies/rate-limiter.js';

const SIDECAR = fileURLToPath(new URL('../../../../sidecar/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? sources(path) : entry.name.endsWith('.ts') ? [path] : [];
  });
}

t.test('one constant', async (t) => {
  t.equal(PROTOCOL_VERSION, '1.0');
  t.equal(REPLY_PREFIX, `${PROTOCOL_VERSION} `);
  t.ok(formatReply({ status: STATUS.ok, text: 'x' }).startsWith(REPLY_PREFIX), 'replies start with it');
  t.ok(looksLikeReply(Buffer.from(`${REPLY_PREFIX}200 x`)), 'the echo check knows it');
  t.notOk(looksLikeReply(Buffer.from('1x0 200 x')), 'the dot is a dot, not any character');
  t.notOk(looksLikeReply(Buffer.from('2.0 200 x')));
  const [frame] = new GuestLineDecoder().push(Buffer.from('version\n'));
  const outcome = handleGuestFrame({
    access: { served: true, policy: { file: '/p', enabled: true, items: [], limit: { intervalMs: 1000, burst: 1 } } },
    limiter: FRESH_LIMITER, sample: undefined, vm: { hypervisor: undefined, vcpuDelay: undefined }, maxAgeMs: 5000, now: 0, wallNow: 0, version: '9.9.9',
  }, frame!);
  t.equal(outcome.reply, `${REPLY_PREFIX}200 hostinfo-qemu 9.9.9 protocol ${PROTOCOL_VERSION}\n`, 'VERSION reports it');
});

t.test('no other literal of the version in sidecar/', async (t) => {
  const files = sources(SIDECAR);
  t.ok(files.length > 10, 'the sources were found');
  const escaped = PROTOCOL_VERSION.replace(/\./g, '\\\\?\\.');
  const stray = new RegExp(`(^|[^0-9.])${escaped}([^0-9]|$)`);
  const found = files.flatMap((file) => readFileSync(file, 'utf8').split('\n')
    .map((line, index) => ({ where: `${relative(SIDECAR, file)}:${index + 1}`, line }))
    .filter(({ where, line }) => !where.startsWith('protocol/version.ts:') && stray.test(line)));
  t.same(found, [], `"${PROTOCOL_VERSION}" appears only in protocol/version.ts`);
});
