import t from 'tap';
import { looksLikeReply, parseRequestLine } from '../../../sidecar/protocol/request-parser.js';

const parse = (line: string) => parseRequestLine(Buffer.from(line, 'latin1'));

t.test('command and bare arguments; the command is case-insensitive', async (t) => {
  t.same(parse('PING'), { kind: 'request', command: 'ping', args: [] });
  t.same(parse('PhysCpus'), { kind: 'request', command: 'physcpus', args: [] });
  t.same(parse('ping Hello'), { kind: 'request', command: 'ping', args: ['Hello'] }, 'arguments keep their case');
  t.same(parse('  ping   a   b  '), { kind: 'request', command: 'ping', args: ['a', 'b'] }, 'runs of spaces separate');
});

t.test('quoted arguments with \\" and \\\\ escapes', async (t) => {
  t.same(parse('PING "hello"'), { kind: 'request', command: 'ping', args: ['hello'] });
  t.same(parse('PING "two words"'), { kind: 'request', command: 'ping', args: ['two words'] });
  t.same(parse('PING "say \\"hi\\""'), { kind: 'request', command: 'ping', args: ['say "hi"'] });
  t.same(parse('PING "back\\\\slash"'), { kind: 'request', command: 'ping', args: ['back\\slash'] });
  t.same(parse('PING ""'), { kind: 'request', command: 'ping', args: [''] });
  t.same(parse('PING "a" b'), { kind: 'request', command: 'ping', args: ['a', 'b'] });
});

t.test('syntax errors say what and where', async (t) => {
  t.same(parse('PING "open'), { kind: 'invalid', reason: 'unterminated quoted string starting at column 6' });
  t.same(parse('PING "\\n"'), { kind: 'invalid', reason: 'only \\" and \\\\ are escapes (column 7)' });
  t.same(parse('PING "trailing\\'), { kind: 'invalid', reason: 'only \\" and \\\\ are escapes (column 15)' });
  t.same(parse('PING "a"b'), { kind: 'invalid', reason: 'a space must follow the closing quote at column 8' });
  t.same(parse('PING ab"c"'), { kind: 'invalid', reason: 'quote inside a bare word at column 8' });
  t.same(parse('"PING"'), { kind: 'invalid', reason: 'the command must be a bare word' });
});

t.test('control and non-ASCII bytes are refused with their position', async (t) => {
  t.same(parse('PING\ta'), { kind: 'invalid', reason: 'byte 0x09 at column 5 is not printable ASCII' });
  t.same(parse('PING \x00'), { kind: 'invalid', reason: 'byte 0x00 at column 6 is not printable ASCII' });
  t.same(parse('caf\xe9'), { kind: 'invalid', reason: 'byte 0xe9 at column 4 is not printable ASCII' });
  t.same(parse('PING\x7f'), { kind: 'invalid', reason: 'byte 0x7f at column 5 is not printable ASCII' });
  t.same(parse('PING a\rb'), { kind: 'invalid', reason: 'byte 0x0d at column 7 is not printable ASCII' }, 'CR only allowed before the LF');
  t.same(parseRequestLine(Buffer.from('PING "\u00e9"', 'utf8')).kind, 'invalid', 'UTF-8 inside quotes too');
});

t.test('blank lines are empty: no reply', async (t) => {
  t.same(parse(''), { kind: 'empty' });
  t.same(parse('     '), { kind: 'empty' });
});

t.test('a line shaped like a reply is an echo, whatever follows', async (t) => {
  t.same(parse('1.0 200 16'), { kind: 'echo' });
  t.same(parse('1.0 403 hostinfo is not enabled for this VM'), { kind: 'echo' });
  t.same(parse('1.0 429'), { kind: 'echo' });
  t.same(parseRequestLine(Buffer.from('1.0 200 caf\xe9\x00', 'latin1')), { kind: 'echo' }, 'even with bytes that would be refused');
  t.ok(looksLikeReply(Buffer.from('1.0 503 host statistics unavailable')));
});

t.test('near misses of the reply shape are ordinary requests', async (t) => {
  t.same(parse('1.0 20'), { kind: 'request', command: '1.0', args: ['20'] });
  t.same(parse('1.0 2000'), { kind: 'request', command: '1.0', args: ['2000'] });
  t.same(parse('1.1 200 x'), { kind: 'request', command: '1.1', args: ['200', 'x'] });
  t.same(parse(' 1.0 200 x'), { kind: 'request', command: '1.0', args: ['200', 'x'] });
  t.notOk(looksLikeReply(Buffer.from('1.0 20x')));
});
