// The channel's frame codec (sidecar/channel/frames.ts) on its own: RFC 6455's rules for what a
// server may send, each violation's close code, lengths in all three encodings, fragments with
// control frames between them, decoding that does not depend on how reads split the bytes, and
// memory that stays within its bound whatever arrives. Server frames are built here by hand,
// independently of the encoder; the encoder's frames are read back by unmasking them.

import fc from 'fast-check';
import t from 'tap';
import {
  type DecodedFrame, FrameDecoder, MAX_CONTROL_PAYLOAD_BYTES, MAX_SERVER_HEADER_BYTES, OPCODE, decoderBound, encodeFrame,
} from '../../../sidecar/channel/frames.js';

interface ServerFrame {
  readonly opcode: number;
  readonly payload?: Buffer | string;
  readonly fin?: boolean;
  /** Bits 0x70 of the first byte. */
  readonly rsv?: number;
  readonly masked?: boolean;
  /** Force the 16- or 64-bit length encoding (RFC 6455 allows only the shortest; ws does not check). */
  readonly lengthBytes?: 0 | 2 | 8;
  /** Declare this length instead of the payload's. */
  readonly declared?: number | bigint;
}

function serverFrame(frame: ServerFrame): Buffer {
  const payload = typeof frame.payload === 'string' ? Buffer.from(frame.payload, 'utf8') : frame.payload ?? Buffer.alloc(0);
  const length = frame.declared ?? payload.length;
  const lengthBytes = frame.lengthBytes ?? (length < 126 ? 0 : length < 0x10000 ? 2 : 8);
  const head = Buffer.alloc(2 + lengthBytes + (frame.masked === true ? 4 : 0));
  head[0] = (frame.fin === false ? 0 : 0x80) | (frame.rsv ?? 0) | frame.opcode;
  head[1] = (frame.masked === true ? 0x80 : 0) | (lengthBytes === 0 ? Number(length) : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) head.writeUInt16BE(Number(length), 2);
  if (lengthBytes === 8) head.writeBigUInt64BE(BigInt(length), 2);
  return Buffer.concat([head, payload]);
}

const text = (payload: string, more: Partial<ServerFrame> = {}): Buffer => serverFrame({ opcode: OPCODE.text, payload, ...more });
const closeFrame = (code: number | undefined, reason: Buffer | string = ''): Buffer =>
  serverFrame({ opcode: OPCODE.close, payload: code === undefined ? Buffer.alloc(0) : Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason)]) });

/** Plain objects, so that t.same compares payloads by content. */
const plain = (frames: DecodedFrame[]): unknown[] => frames.map((frame) => {
  switch (frame.kind) {
    case 'message': return { kind: 'message', data: frame.data.toString('hex'), isBinary: frame.isBinary };
    case 'ping': case 'pong': return { kind: frame.kind, data: frame.data.toString('hex') };
    case 'close': return { kind: 'close', code: frame.code, reason: frame.reason.toString('hex') };
    case 'violation': return { kind: 'violation', code: frame.code };
  }
});

const decode = (bytes: Buffer, maxPayload = 1 << 20): DecodedFrame[] => new FrameDecoder(maxPayload).push(bytes);
const message = (data: string | Buffer, isBinary = false): unknown => ({ kind: 'message', data: Buffer.from(data).toString('hex'), isBinary });

t.test('lengths in every encoding, on both sides of each boundary', async (t) => {
  for (const length of [0, 1, 125, 126, 65_535, 65_536, 200_000]) {
    const payload = Buffer.alloc(length, 0x61);
    t.same(plain(decode(text(payload.toString()))), [message(payload)], `${length} bytes`);
  }
  t.same(plain(decode(text('hi', { lengthBytes: 2 }))), [message('hi')], 'a short length in 16 bits is accepted (as ws does)');
  t.same(plain(decode(text('hi', { lengthBytes: 8 }))), [message('hi')], 'and in 64 bits');
  t.same(plain(decode(serverFrame({ opcode: OPCODE.binary, payload: Buffer.from([0, 0xff]) }))), [message(Buffer.from([0, 0xff]), true)], 'binary');
});

t.test('a fragmented message: whole at its last fragment, control frames between fragments', async (t) => {
  const stream = Buffer.concat([
    text('part one, ', { fin: false }),
    serverFrame({ opcode: OPCODE.ping, payload: 'p' }),
    serverFrame({ opcode: OPCODE.continuation, payload: Buffer.from('é').subarray(0, 1), fin: false }),
    serverFrame({ opcode: OPCODE.pong, payload: '' }),
    serverFrame({ opcode: OPCODE.continuation, payload: Buffer.concat([Buffer.from('é').subarray(1), Buffer.from(' two')]) }),
    serverFrame({ opcode: OPCODE.binary, payload: 'b', fin: false }),
    serverFrame({ opcode: OPCODE.continuation, payload: '' }),
  ]);
  t.same(plain(decode(stream)), [
    { kind: 'ping', data: Buffer.from('p').toString('hex') },
    { kind: 'pong', data: '' },
    message('part one, é two'),
    message('b', true),
  ], 'a character split between fragments is valid UTF-8 once whole');
});

t.test('every violation, with its close code, and nothing is read after it', async (t) => {
  const cases: Array<[string, Buffer, 1002 | 1007 | 1009, number?]> = [
    ['an RSV bit', text('x', { rsv: 0x40 }), 1002],
    ['RSV3', text('x', { rsv: 0x10 }), 1002],
    ['a masked server frame', text('x', { masked: true }), 1002],
    ...[3, 4, 7].map((opcode): [string, Buffer, 1002] => [`reserved data opcode ${opcode}`, serverFrame({ opcode, payload: 'x' }), 1002]),
    ...[11, 15].map((opcode): [string, Buffer, 1002] => [`reserved control opcode ${opcode}`, serverFrame({ opcode }), 1002]),
    ['a continuation with no message begun', serverFrame({ opcode: OPCODE.continuation, payload: 'x' }), 1002],
    ['a new message inside a fragmented one', Buffer.concat([text('a', { fin: false }), text('b')]), 1002],
    ['a fragmented ping', serverFrame({ opcode: OPCODE.ping, fin: false }), 1002],
    ['a ping of 126 bytes', serverFrame({ opcode: OPCODE.ping, payload: Buffer.alloc(MAX_CONTROL_PAYLOAD_BYTES + 1) }), 1002],
    ['a close of 126 bytes', closeFrame(1000, 'x'.repeat(124)), 1002],
    ['a close frame of one byte', serverFrame({ opcode: OPCODE.close, payload: Buffer.from([3]) }), 1002],
    ['invalid UTF-8 in a text message', serverFrame({ opcode: OPCODE.text, payload: Buffer.from([0x7b, 0xff, 0x7d]) }), 1007],
    ['a text message cut inside a character', serverFrame({ opcode: OPCODE.text, payload: Buffer.from('é').subarray(0, 1) }), 1007],
    ['invalid UTF-8 in a close reason', closeFrame(1000, Buffer.from([0xc3])), 1007],
    ['a 7-bit length over maxPayload', text('x'.repeat(101)), 1009, 100],
    ['a 16-bit length over maxPayload', text('x'.repeat(1001)), 1009, 1000],
    ['a 64-bit length over maxPayload', serverFrame({ opcode: OPCODE.text, declared: 70_000 }), 1009, 65_536],
    ['the largest 64-bit length', serverFrame({ opcode: OPCODE.binary, declared: 2n ** 64n - 1n }), 1009],
    ['fragments that add up to more than maxPayload', Buffer.concat([text('x'.repeat(60), { fin: false }), serverFrame({ opcode: OPCODE.continuation, payload: 'x'.repeat(41) })]), 1009, 100],
  ];
  for (const [name, bytes, code, maxPayload] of cases) {
    const decoder = new FrameDecoder(maxPayload ?? 1000);
    const trailing = text('after');
    const decoded = decoder.push(Buffer.concat([bytes, trailing]));
    t.same(plain(decoded), [{ kind: 'violation', code }], name);
    t.ok(decoder.ended, `${name}: the decoder has ended`);
    t.equal(decoder.bufferedBytes, 0, `${name}: and holds nothing`);
    t.same(decoder.push(trailing), [], `${name}: later bytes are not read`);
  }
});

t.test('a length over maxPayload is refused at its header, before any payload byte is held', async (t) => {
  for (const [declared, lengthBytes] of [[1001, 2], [1001, 8], [2 ** 53, 8]] as const) {
    const decoder = new FrameDecoder(1000);
    const header = serverFrame({ opcode: OPCODE.binary, declared, lengthBytes });
    t.same(plain(decoder.push(header.subarray(0, header.length - 1))), [], 'an incomplete header decides nothing');
    t.ok(decoder.bufferedBytes <= MAX_SERVER_HEADER_BYTES);
    t.same(plain(decoder.push(header.subarray(header.length - 1))), [{ kind: 'violation', code: 1009 }], `${declared} in ${lengthBytes} bytes`);
  }
  const decoder = new FrameDecoder(1000);
  decoder.push(serverFrame({ opcode: OPCODE.binary, declared: 1000 }));
  t.equal(decoder.bufferedBytes, 0, 'a header alone allocates nothing');
  decoder.push(Buffer.alloc(10));
  t.equal(decoder.bufferedBytes, 1000, 'a payload arriving in pieces is copied into one buffer of its declared size');
  t.same(plain(decoder.push(Buffer.alloc(990))), [message(Buffer.alloc(1000), true)]);
  t.equal(decoder.bufferedBytes, 0);
});

t.test('close frames: code and reason, none, and the end of reading', async (t) => {
  t.same(plain(decode(closeFrame(4000, 'daemon stopping'))), [{ kind: 'close', code: 4000, reason: Buffer.from('daemon stopping').toString('hex') }]);
  t.same(plain(decode(closeFrame(undefined))), [{ kind: 'close', code: undefined, reason: '' }], 'an empty close frame has no code (the client says 1005)');
  const decoder = new FrameDecoder(1000);
  t.same(plain(decoder.push(Buffer.concat([closeFrame(1000), text('late'), closeFrame(4001)]))), [{ kind: 'close', code: 1000, reason: '' }], 'nothing after a close frame is read');
  t.ok(decoder.ended);
});

t.test('encodeFrame: one masked final frame in the shortest length encoding', async (t) => {
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  for (const [length, headerBytes] of [[0, 2], [125, 2], [126, 4], [65_535, 4], [65_536, 10]] as const) {
    const payload = Buffer.alloc(length);
    for (let i = 0; i < length; i += 1) payload[i] = i & 0xff;
    const frame = encodeFrame(OPCODE.binary, payload, mask);
    t.equal(frame[0], 0x80 | OPCODE.binary, `${length}: FIN and the opcode`);
    t.equal((frame[1] as number) & 0x80, 0x80, `${length}: the mask bit`);
    t.equal(frame.length, headerBytes + 4 + length, `${length}: a ${headerBytes}-byte header`);
    const declared = headerBytes === 2 ? (frame[1] as number) & 0x7f : headerBytes === 4 ? frame.readUInt16BE(2) : Number(frame.readBigUInt64BE(2));
    t.equal(declared, length);
    t.same(frame.subarray(headerBytes, headerBytes + 4), mask, 'the mask key given');
    const unmasked = frame.subarray(headerBytes + 4).map((byte, i) => byte ^ (mask[i & 3] as number));
    t.ok(Buffer.from(unmasked).equals(payload), `${length}: the payload, masked`);
  }
  t.throws(() => encodeFrame(OPCODE.close, Buffer.alloc(126), mask), RangeError, 'a control frame over 125 bytes');
  t.throws(() => encodeFrame(OPCODE.text, Buffer.alloc(1), Buffer.alloc(3)), RangeError, 'a mask key that is not 4 bytes');
});

/** A message (in fragments) or a control frame, as the server sends it. */
type Piece = { kind: 'message'; isBinary: boolean; parts: string[] } | { kind: 'ping' | 'pong'; data: Uint8Array };

const piece: fc.Arbitrary<Piece> = fc.oneof(
  fc.record({ kind: fc.constant('message' as const), isBinary: fc.boolean(), parts: fc.array(fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', minLength: 126, maxLength: 300 })), { minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constantFrom('ping' as const, 'pong' as const), data: fc.uint8Array({ maxLength: MAX_CONTROL_PAYLOAD_BYTES }) }),
);

/** The frames of `pieces` and what they decode to. */
function streamOf(pieces: Piece[]): { bytes: Buffer; expected: unknown[] } {
  const frames: Buffer[] = [];
  const expected: unknown[] = [];
  for (const p of pieces) {
    if (p.kind === 'message') {
      const data = Buffer.concat(p.parts.map((part) => Buffer.from(part, 'utf8')));
      // Fragment at the parts' byte boundaries, which may fall inside a character: only the
      // whole message need be UTF-8.
      let at = 0;
      p.parts.forEach((part, i) => {
        const length = Buffer.byteLength(part, 'utf8');
        frames.push(serverFrame({ opcode: i === 0 ? (p.isBinary ? OPCODE.binary : OPCODE.text) : OPCODE.continuation, payload: data.subarray(at, at + length), fin: i === p.parts.length - 1 }));
        at += length;
      });
      expected.push(message(data, p.isBinary));
    } else {
      frames.push(serverFrame({ opcode: p.kind === 'ping' ? OPCODE.ping : OPCODE.pong, payload: Buffer.from(p.data) }));
      expected.push({ kind: p.kind, data: Buffer.from(p.data).toString('hex') });
    }
  }
  return { bytes: Buffer.concat(frames), expected };
}

/** `bytes` cut at `cuts` (positions taken modulo its length), pushed piece by piece. */
function pushCut(decoder: FrameDecoder, bytes: Buffer, cuts: number[], check: () => void = () => {}): DecodedFrame[] {
  const at = [...new Set(cuts.map((cut) => (bytes.length === 0 ? 0 : cut % (bytes.length + 1))))].sort((a, b) => a - b);
  const decoded: DecodedFrame[] = [];
  let from = 0;
  for (const to of [...at, bytes.length]) {
    decoded.push(...decoder.push(bytes.subarray(from, Math.max(from, to))));
    from = Math.max(from, to);
    check();
  }
  return decoded;
}

t.test('property: valid server frames split at any byte boundaries decode to the same messages', async (t) => {
  fc.assert(fc.property(fc.array(piece, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), fc.boolean(), (pieces, cuts, closing) => {
    const { bytes, expected } = streamOf(pieces);
    const stream = closing ? Buffer.concat([bytes, closeFrame(1000, 'bye'), text('ignored')]) : bytes;
    const all = closing ? [...expected, { kind: 'close', code: 1000, reason: Buffer.from('bye').toString('hex') }] : expected;
    const whole = plain(new FrameDecoder(1 << 20).push(stream));
    const cut = plain(pushCut(new FrameDecoder(1 << 20), stream, cuts));
    return JSON.stringify(whole) === JSON.stringify(all) && JSON.stringify(cut) === JSON.stringify(all);
  }), { seed: 6455, numRuns: 500 });
  t.pass('500 runs');
});

t.test('property: arbitrary bytes never throw, end at most once, and never hold more than the bound', async (t) => {
  const maxPayload = 300;
  // Random bytes mostly fail at their first two; valid streams with bytes changed get further.
  const hostile = fc.oneof(
    fc.uint8Array({ maxLength: 2000 }).map((bytes) => Buffer.from(bytes)),
    fc.tuple(fc.array(piece, { minLength: 1, maxLength: 6 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }))
      .map(([pieces, changes]) => {
        const bytes = Buffer.from(streamOf(pieces).bytes);
        for (const [at, value] of changes) if (bytes.length > 0) bytes[at % bytes.length] = value;
        return bytes;
      }),
  );
  fc.assert(fc.property(hostile, fc.array(fc.nat(), { maxLength: 20 }), (bytes, cuts) => {
    const decoder = new FrameDecoder(maxPayload);
    let highest = 0;
    const decoded = pushCut(decoder, bytes, cuts, () => {
      highest = Math.max(highest, decoder.bufferedBytes);
    });
    const ends = decoded.filter((frame) => frame.kind === 'violation' || frame.kind === 'close');
    const lastIsEnd = ends.length === 0 || decoded.at(-1) === ends[0];
    const messagesFit = decoded.every((frame) => frame.kind !== 'message' || frame.data.length <= maxPayload);
    return highest <= decoderBound(maxPayload) && ends.length <= 1 && lastIsEnd && messagesFit;
  }), { seed: 1009, numRuns: 2000 });
  t.pass('2000 runs');
});
