import t from 'tap';
import { MAX_REPLY_BYTES } from '../../../sidecar/protocol/limits.js';
import { formatReply, STATUS } from '../../../sidecar/protocol/reply.js';

t.test('one line: version, status, text, LF', async (t) => {
  t.equal(formatReply({ status: STATUS.ok, text: 'hello' }), '1.0 200 hello\n');
  t.equal(formatReply({ status: STATUS.rateLimited, text: 'too many requests; retry after 1000 ms' }), '1.0 429 too many requests; retry after 1000 ms\n');
  t.equal(formatReply({ status: STATUS.ok, text: '' }), '1.0 200 \n');
});

t.test('non-printable text cannot break the framing', async (t) => {
  t.equal(formatReply({ status: STATUS.ok, text: 'a\nb\r\tc\u00e9\u{1f600}' }), '1.0 200 a?b??c???\n');
});

t.test('replies are cut to the limit, LF included', async (t) => {
  const line = formatReply({ status: STATUS.ok, text: 'x'.repeat(5000) });
  t.equal(Buffer.byteLength(line), MAX_REPLY_BYTES);
  t.ok(line.endsWith('x\n'));
  t.equal(line.indexOf('\n'), line.length - 1);
});
