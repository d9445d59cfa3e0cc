// The vhostmd request decoder against vhostmd 1.2's rules (vhostmd/virtio.c vio_check_request):
// the two exact requests, a blank line ending anything else as invalid, the 511-byte buffer, and
// verdicts that do not depend on how reads split the bytes.

import fc from 'fast-check';
import t from 'tap';
import { MAX_VHOSTMD_REQUEST_BYTES, VHOSTMD_REQUESTS, VhostmdRequestDecoder, type VhostmdRequest } from '../../../sidecar/vhostmd/request-decoder.js';

const LF_REQUEST = 'GET /metrics/XML\n\n';
const CRLF_REQUEST = 'GET /metrics/XML\r\n\r\n';
const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

function decodeWhole(text: string | Buffer): VhostmdRequest[] {
  return new VhostmdRequestDecoder().push(typeof text === 'string' ? bytes(text) : text);
}

function decodeByteByByte(text: string | Buffer): VhostmdRequest[] {
  const decoder = new VhostmdRequestDecoder();
  const data = typeof text === 'string' ? bytes(text) : text;
  return [...data].flatMap((byte) => decoder.push(Uint8Array.of(byte)));
}

const GET: VhostmdRequest = { kind: 'get' };
const BLANK: VhostmdRequest = { kind: 'invalid', reason: 'blank line' };
const FULL: VhostmdRequest = { kind: 'invalid', reason: 'full' };

t.test('the two requests vm-dump-metrics and vhostmd know', async (t) => {
  t.same(VHOSTMD_REQUESTS, [LF_REQUEST, CRLF_REQUEST]);
  t.equal(bytes(LF_REQUEST).length, 18, 'vm-dump-metrics writes exactly 18 bytes');
  for (const request of [LF_REQUEST, CRLF_REQUEST]) {
    t.same(decodeWhole(request), [GET], JSON.stringify(request));
    t.same(decodeByteByByte(request), [GET], `${JSON.stringify(request)} one byte per read`);
  }
});

t.test('a request is answered at its last byte, not before, and the buffer is then empty', async (t) => {
  const decoder = new VhostmdRequestDecoder();
  t.same(decoder.push(bytes('GET /metrics/XML\n')), [], 'one LF is not the end');
  t.equal(decoder.bufferedBytes, 17);
  t.same(decoder.push(bytes('\n')), [GET]);
  t.equal(decoder.bufferedBytes, 0);
  const crlf = new VhostmdRequestDecoder();
  t.same(crlf.push(bytes('GET /metrics/XML\r\n\r')), []);
  t.same(crlf.push(bytes('\n')), [GET], 'CRLF: at the second LF');
});

t.test('split reads: every split gives the same verdicts', async (t) => {
  const stream = `${LF_REQUEST}${CRLF_REQUEST}GET /metrics/xml\n\n${LF_REQUEST}`;
  const expected = [GET, GET, BLANK, GET];
  const data = bytes(stream);
  for (let cut = 0; cut <= data.length; cut += 1) {
    const decoder = new VhostmdRequestDecoder();
    t.same([...decoder.push(data.subarray(0, cut)), ...decoder.push(data.subarray(cut))], expected, `cut at ${cut}`);
  }
  t.same(decodeByteByByte(stream), expected);
  t.same(decodeWhole(`${LF_REQUEST}${LF_REQUEST}`), [GET, GET], 'two requests in one read are two requests (vhostmd would call that one invalid request)');
});

t.test('garbage: anything else with a blank line is one invalid request', async (t) => {
  const cases: Array<[string, VhostmdRequest[]]> = [
    ['\n\n', [BLANK]],
    ['\r\n\r\n', [BLANK]],
    ['GET /metrics/xml\n\n', [BLANK]],
    ['get /metrics/XML\n\n', [BLANK]],
    [' GET /metrics/XML\n\n', [BLANK]],
    ['GET /metrics/XML \n\n', [BLANK]],
    ['GET /metrics/XML\n\r\n', []],
    ['GET /metrics/XML\r\n\n', [BLANK]],
    ['GET /metrics/XML\n\nx', [GET]],
    ['x\nGET /metrics/XML\n\n', [BLANK]],
    ['GET /metrics/XML\0\n\n', [BLANK]],
    ['PING\n', []],
    ['1.0 200 pong\n', []],
  ];
  for (const [input, expected] of cases) t.same(decodeWhole(input), expected, JSON.stringify(input));
  const decoder = new VhostmdRequestDecoder();
  t.same(decoder.push(bytes('junk\n\n')), [BLANK]);
  t.same(decoder.push(bytes(LF_REQUEST)), [GET], 'after an invalid request the next one starts afresh');
});

t.test('511 bytes without an end fill the buffer: invalid, and the rest starts afresh', async (t) => {
  t.equal(MAX_VHOSTMD_REQUEST_BYTES, 511);
  const decoder = new VhostmdRequestDecoder();
  t.same(decoder.push(Buffer.alloc(510, 0x61)), []);
  t.equal(decoder.bufferedBytes, 510, 'one byte short: still collecting');
  t.same(decoder.push(bytes('a')), [FULL], 'the 511th byte fills it');
  t.equal(decoder.bufferedBytes, 0);
  t.same(decoder.push(bytes(LF_REQUEST)), [GET]);
  t.same(decodeWhole(Buffer.alloc(511 * 3 + 5, 0x0a ^ 0x6b)), [FULL, FULL, FULL], 'a long flood: one invalid request per 511 bytes');
  // Single LFs never make a blank line with something between them.
  t.same(decodeWhole(bytes('a\n'.repeat(600))), [FULL, FULL], 'LFs that are not blank lines still fill the buffer');
  t.same(decodeWhole(`${'x'.repeat(509)}\n\n`), [BLANK], 'a blank line in the 511th byte ends it as garbage: invalid either way');
});

t.test('reset and skip drop a partial request', async (t) => {
  const decoder = new VhostmdRequestDecoder();
  t.same(decoder.push(bytes('GET /met')), []);
  decoder.reset();
  t.equal(decoder.bufferedBytes, 0);
  t.same(decoder.push(bytes(LF_REQUEST)), [GET], 'the next opener\'s request is not glued to the leftover');
  t.same(decoder.push(bytes('GET /metrics')), []);
  decoder.skip(bytes('/XML\n'));
  t.same(decoder.push(bytes('\n')), [], 'what follows dropped bytes is judged afresh');
  t.same(decoder.push(bytes('\n')), [BLANK], 'and ends like any other garbage');
  decoder.skip(Buffer.alloc(0));
  t.same(decoder.push(bytes(LF_REQUEST)), [GET]);
});

t.test('fast-check: never throws, never holds 511 bytes, chunking never changes the verdicts', async (t) => {
  const piece = fc.oneof(
    fc.constantFrom(LF_REQUEST, CRLF_REQUEST, '\n', '\r\n', '\n\n', 'GET', ' /metrics/XML', '\0', 'x'.repeat(300)).map(bytes),
    fc.uint8Array({ maxLength: 64 }).map((array) => Buffer.from(array)),
  );
  const property = fc.property(fc.array(piece, { maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 8 }), (pieces, sizes) => {
    const stream = Buffer.concat(pieces);
    const reference = decodeByteByByte(stream);
    const decoder = new VhostmdRequestDecoder();
    const got: VhostmdRequest[] = [];
    for (let at = 0, i = 0; at < stream.length; i += 1) {
      const size = sizes[i % sizes.length] ?? 1;
      got.push(...decoder.push(stream.subarray(at, at + size)));
      if (decoder.bufferedBytes >= MAX_VHOSTMD_REQUEST_BYTES) throw new Error(`holds ${decoder.bufferedBytes} bytes`);
      at += size;
    }
    if (JSON.stringify(got) !== JSON.stringify(reference)) throw new Error(`chunked ${JSON.stringify(got)} vs byte by byte ${JSON.stringify(reference)}`);
    const gets = got.filter((request) => request.kind === 'get').length;
    const exact = stream.toString('latin1').split(/GET \/metrics\/XML(?:\n\n|\r\n\r\n)/).length - 1;
    if (gets > exact) throw new Error(`${gets} requests from a stream holding ${exact}`);
  });
  const details = await fc.check(property, { seed: 20261126, numRuns: 3_000 });
  t.notOk(details.failed, details.failed ? String(details.errorInstance) : 'holds');
});
