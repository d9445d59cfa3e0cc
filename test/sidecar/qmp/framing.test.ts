import t from 'tap';
import { QmpOversizeError, QmpProtocolError } from '../../../sidecar/qmp/errors.js';
import { MAX_QMP_MESSAGE_BYTES, QmpFrameDecoder, type QmpFrame } from '../../../sidecar/qmp/framing.js';

const messages = (frames: QmpFrame[]): unknown[] => frames.map((f) => (f.kind === 'message' ? f.message : `error:${f.error.code}`));

t.test('a message split across chunks, byte by byte, is reassembled', async (t) => {
  const decoder = new QmpFrameDecoder();
  const frames: QmpFrame[] = [];
  for (const byte of Buffer.from('{"return": {"status": "running"}, "id": "hq-1"}\r\n')) frames.push(...decoder.push(Buffer.of(byte)));
  t.same(messages(frames), [{ return: { status: 'running' }, id: 'hq-1' }]);
  t.equal(decoder.bufferedBytes, 0);
});

t.test('several messages in one chunk, LF and CRLF mixed, blank lines skipped', async (t) => {
  const frames = new QmpFrameDecoder().push(Buffer.from('{"a":1}\n{"b":2}\r\n\r\n\n{"c":3}\r\n{"d":'));
  t.same(messages(frames), [{ a: 1 }, { b: 2 }, { c: 3 }], 'the unfinished {"d": stays buffered');
});

t.test('an unfinished line is held until its newline arrives', async (t) => {
  const decoder = new QmpFrameDecoder();
  t.same(decoder.push(Buffer.from('{"event": "STOP", ')), []);
  t.equal(decoder.bufferedBytes, 18);
  t.same(messages(decoder.push(Buffer.from('"timestamp": {"seconds": 1, "microseconds": 2}}\r\n{"x":0}\n'))), [
    { event: 'STOP', timestamp: { seconds: 1, microseconds: 2 } },
    { x: 0 },
  ]);
});

t.test('a multi-byte UTF-8 character split across chunks survives', async (t) => {
  const bytes = Buffer.from('{"desc":"naïve €"}\n');
  const decoder = new QmpFrameDecoder();
  const cut = bytes.indexOf(0xe2) + 1; // inside the euro sign
  t.same(messages([...decoder.push(bytes.subarray(0, cut)), ...decoder.push(bytes.subarray(cut))]), [{ desc: 'naïve €' }]);
});

t.test('a line that is not JSON is a protocol error and the decoder stops', async (t) => {
  const decoder = new QmpFrameDecoder();
  const frames = decoder.push(Buffer.from('{"ok":1}\ngarbage\n{"after":1}\n'));
  t.same(messages(frames), [{ ok: 1 }, 'error:QMP_PROTOCOL'], 'messages before the fault still come out, none after');
  t.ok(frames[1]?.kind === 'error' && frames[1].error instanceof QmpProtocolError);
  t.ok(decoder.failed);
  t.same(decoder.push(Buffer.from('{"more":1}\n')), [], 'input after a fault is ignored');
});

t.test('JSON that is not an object is a protocol error', async (t) => {
  for (const line of ['[1,2]', '42', '"QMP"', 'null', 'true']) {
    t.same(messages(new QmpFrameDecoder().push(Buffer.from(`${line}\r\n`))), ['error:QMP_PROTOCOL'], line);
  }
});

t.test('a line of exactly the limit is accepted; the CR counts, the LF does not', async (t) => {
  const limit = 64;
  const body = (n: number): string => `{"s":"${'x'.repeat(n - 8)}"}`;
  t.equal(body(limit).length, limit);
  t.same(messages(new QmpFrameDecoder(limit).push(Buffer.from(`${body(limit)}\n`))).length, 1);
  t.same(messages(new QmpFrameDecoder(limit).push(Buffer.from(`${body(limit - 1)}\r\n`))).length, 1);
  t.same(messages(new QmpFrameDecoder(limit).push(Buffer.from(`${body(limit)}\r\n`))), ['error:QMP_OVERSIZE']);
});

t.test('an oversize line is reported before its newline arrives and nothing past the limit is held', async (t) => {
  const decoder = new QmpFrameDecoder();
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  const frames: QmpFrame[] = [];
  let chunks = 0;
  while (frames.length === 0) {
    frames.push(...decoder.push(chunk));
    chunks += 1;
    t.ok(decoder.bufferedBytes <= MAX_QMP_MESSAGE_BYTES) || t.bailout('unbounded buffering');
  }
  t.equal(chunks, Math.floor(MAX_QMP_MESSAGE_BYTES / chunk.length) + 1, 'reported on the first chunk past the limit');
  const [frame] = frames;
  t.ok(frame?.kind === 'error' && frame.error instanceof QmpOversizeError);
  t.equal(frame?.kind === 'error' ? frame.error.code : undefined, 'QMP_OVERSIZE');
  t.equal(decoder.bufferedBytes, 0, 'buffer released');
});

t.test('a bad limit is refused', async (t) => {
  t.throws(() => new QmpFrameDecoder(0), RangeError);
  t.throws(() => new QmpFrameDecoder(1.5), RangeError);
});
