import t from 'tap';
import { MAX_REQUEST_BYTES } from '../../../sidecar/protocol/limits.js';
import { GuestLineDecoder, type GuestFrame } from '../../../sidecar/protocol/line-decoder.js';

const text = (frames: GuestFrame[]): string[] =>
  frames.map((frame) => (frame.kind === 'line' ? `line:${frame.bytes.toString('latin1')}` : `oversize:${frame.head.length}`));

t.test('splits on LF and strips one CR before it', async (t) => {
  const decoder = new GuestLineDecoder();
  t.same(text(decoder.push(Buffer.from('PING\nphyscpus\r\nloadavg\r\r\n'))), ['line:PING', 'line:physcpus', 'line:loadavg\r']);
  t.equal(decoder.bufferedBytes, 0);
});

t.test('a line split across chunks, one byte at a time, is reassembled', async (t) => {
  const decoder = new GuestLineDecoder();
  const frames: GuestFrame[] = [];
  for (const byte of Buffer.from('PING "slow drip"\r\n')) frames.push(...decoder.push(Buffer.of(byte)));
  t.same(text(frames), ['line:PING "slow drip"']);
});

t.test('empty lines come through as empty frames (the parser ignores them)', async (t) => {
  t.same(text(new GuestLineDecoder().push(Buffer.from('\n\r\n\n'))), ['line:', 'line:', 'line:']);
});

t.test('a line of exactly the limit, LF included, is accepted', async (t) => {
  const line = 'x'.repeat(MAX_REQUEST_BYTES - 1);
  t.same(text(new GuestLineDecoder().push(Buffer.from(`${line}\n`))), [`line:${line}`]);
});

t.test('the CR counts toward the limit', async (t) => {
  const decoder = new GuestLineDecoder();
  t.same(text(decoder.push(Buffer.from(`${'x'.repeat(MAX_REQUEST_BYTES - 2)}\r\n`))), [`line:${'x'.repeat(MAX_REQUEST_BYTES - 2)}`]);
  t.same(text(decoder.push(Buffer.from(`${'x'.repeat(MAX_REQUEST_BYTES - 1)}\r\n`))), [`oversize:${MAX_REQUEST_BYTES - 1}`]);
});

t.test('one byte over the limit is reported once, then discarded up to the next LF', async (t) => {
  const decoder = new GuestLineDecoder();
  const frames = decoder.push(Buffer.from(`${'y'.repeat(MAX_REQUEST_BYTES)}\nPING\n`));
  t.same(text(frames), [`oversize:${MAX_REQUEST_BYTES - 1}`, 'line:PING']);
});

t.test('an endless line is never buffered past the limit, and reported once, at its LF', async (t) => {
  const decoder = new GuestLineDecoder();
  const frames: GuestFrame[] = [];
  const chunk = Buffer.alloc(4096, 0x41);
  for (let i = 0; i < 1000; i += 1) {
    frames.push(...decoder.push(chunk));
    t.ok(decoder.bufferedBytes < MAX_REQUEST_BYTES, 'bounded') || t.bailout();
  }
  t.same(text(frames), [], 'no reply while the line goes on: a cooked guest tty would echo it into the line');
  t.same(text(decoder.push(Buffer.from('tail\nPING\n'))), [`oversize:${MAX_REQUEST_BYTES - 1}`, 'line:PING'], 'resynchronised at the LF');
});

t.test('the oversize head keeps the start of the line for echo detection', async (t) => {
  const [frame] = new GuestLineDecoder().push(Buffer.from(`1.0 200 ${'z'.repeat(400)}\n`));
  t.equal(frame?.kind, 'oversize');
  if (frame?.kind === 'oversize') t.equal(frame.head.subarray(0, 8).toString(), '1.0 200 ');
});

t.test('binary bytes, NUL included, pass through to the parser untouched', async (t) => {
  const [frame] = new GuestLineDecoder().push(Buffer.of(0x00, 0xff, 0x41, 0x0a));
  t.same(frame?.kind === 'line' ? [...frame.bytes] : undefined, [0x00, 0xff, 0x41]);
});

t.test('returned lines are copies: later input does not change them', async (t) => {
  const decoder = new GuestLineDecoder();
  const [first] = decoder.push(Buffer.from('first\n'));
  decoder.push(Buffer.from('XXXXXXXX\n'));
  t.equal(first?.kind === 'line' ? first.bytes.toString() : '', 'first');
});

t.test('discardToNextLine drops what is buffered and the rest of that line, silently', async (t) => {
  const decoder = new GuestLineDecoder();
  t.same(text(decoder.push(Buffer.from('PI'))), []);
  decoder.discardToNextLine();
  t.equal(decoder.bufferedBytes, 0);
  t.same(text(decoder.push(Buffer.from('NG\nP'))), [], 'the tail is not glued to the head');
  t.same(text(decoder.push(Buffer.from('ING\n'))), ['line:PING'], 'the line after it is whole again');
});

t.test('discardToNextLine during an oversize line: no oversize frame either', async (t) => {
  const decoder = new GuestLineDecoder();
  decoder.push(Buffer.alloc(MAX_REQUEST_BYTES + 10, 0x41));
  decoder.discardToNextLine();
  t.same(text(decoder.push(Buffer.from('AAAA\nPING\n'))), ['line:PING']);
});

t.test('skip: no frame from any line the skipped bytes touch', async (t) => {
  const cases: [before: string, skipped: string, after: string, frames: string[]][] = [
    // Skipped bytes inside one line: both its ends go.
    ['PI', 'N', 'G\nloadavg\n', ['line:loadavg']],
    // Ending in the middle of a line: the line they start goes too, up to its LF.
    ['PI', 'NG\nphys', 'cpus\nloadavg\n', ['line:loadavg']],
    // Ending right after an LF: the next line starts clean and is kept.
    ['PI', 'NG\nphyscpus\n', 'loadavg\n', ['line:loadavg']],
    // Starting at a line's start, ending at an LF: nothing else is lost.
    ['', '1.0 200 x\n1.0 200 x\n', 'PING\n', ['line:PING']],
    // Nothing skipped: nothing lost.
    ['PI', '', 'NG\n', ['line:PING']],
  ];
  for (const [before, skipped, after, frames] of cases) {
    const decoder = new GuestLineDecoder();
    const out = [...decoder.push(Buffer.from(before))];
    decoder.skip(Buffer.from(skipped));
    out.push(...decoder.push(Buffer.from(after)));
    t.same(text(out), frames, JSON.stringify([before, skipped, after]));
  }
});

t.test('skip ends an oversize line without its report, when its LF is among the skipped bytes', async (t) => {
  const decoder = new GuestLineDecoder();
  decoder.push(Buffer.alloc(MAX_REQUEST_BYTES + 10, 0x41));
  decoder.skip(Buffer.from('AAAA\n'));
  t.same(text(decoder.push(Buffer.from('PING\n'))), ['line:PING']);
});

t.test('only the first line of the stream may be a tail of what came before it', async (t) => {
  const tails = (decoder: GuestLineDecoder, ...chunks: string[]): boolean[] =>
    chunks.flatMap((chunk) => decoder.push(Buffer.from(chunk)).flatMap((frame) => (frame.kind === 'line' ? [frame.maybeTail] : [])));
  t.same(tails(new GuestLineDecoder(), 'd0a9\nphyscpus\n', 'ping\n'), [true, false, false], 'one chunk, then another');
  t.same(tails(new GuestLineDecoder(), 'd0', 'a9', '\nping\n'), [true, false], 'the first line across chunks');
  const skipped = new GuestLineDecoder();
  skipped.skip(Buffer.from('dropped\n'));
  t.same(tails(skipped, 'ping\n'), [false], 'a line after skipped bytes that ended one starts at a line start');
  const long = new GuestLineDecoder();
  t.same(tails(long, `${'x'.repeat(MAX_REQUEST_BYTES + 10)}\nping\n`), [false], 'after an oversize first line');
});
