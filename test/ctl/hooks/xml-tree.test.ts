// The bounded XML reader the libvirt hook reads domain XML with: what it accepts is what libvirt
// writes (elements, attributes, text, the five entities, character references, comments, PIs,
// CDATA), and everything else is an XmlError, never another exception, a guess or a slow parse.

import fc from 'fast-check';
import t from 'tap';
import { childNamed, childrenNamed, MAX_XML_BYTES, MAX_XML_DEPTH, parseXml, XmlError } from '../../../ctl/hooks/xml-tree.js';

/** The XmlError code `text` is refused with, or 'accepted'. */
function refusal(text: string): string {
  try {
    parseXml(text);
    return 'accepted';
  } catch (error) {
    if (!(error instanceof XmlError)) throw error;
    return error.code;
  }
}

const nested = (depth: number, inner = ''): string => `${'<a>'.repeat(depth)}${inner}${'</a>'.repeat(depth)}`;

t.test('elements, attributes and text', async (t) => {
  const root = parseXml(`<?xml version="1.0"?>\n<domain type='kvm' id="3">\n  <name>web1</name>\n  <devices><disk/><disk type = "file" /></devices>\n</domain>\n`);
  t.equal(root.name, 'domain');
  t.same(root.attributes, { type: 'kvm', id: '3' }, 'single and double quotes');
  t.same(root.children.map((child) => child.name), ['name', 'devices']);
  t.equal(childNamed(root, 'name')?.text, 'web1');
  const devices = childNamed(root, 'devices');
  t.equal(childrenNamed(devices!, 'disk').length, 2, 'self-closing elements, with and without attributes');
  t.same(childrenNamed(devices!, 'disk')[1]?.attributes, { type: 'file' }, 'spaces around = are allowed');
  t.equal(childNamed(root, 'nothing'), undefined);
  t.equal(root.text.trim(), '', 'whitespace between children is the parent\'s text');
  t.same(parseXml('<a b="it\'s" c=\'say "hi"\'/>').attributes, { b: "it's", c: 'say "hi"' }, 'the other quote inside a value');
  t.same(parseXml('<a b="x>y"/>').attributes, { b: 'x>y' }, '> is allowed inside an attribute value');
  t.same(parseXml('<ns:a xml:lang="en" data-x.y="1"></ns:a >').attributes, { 'xml:lang': 'en', 'data-x.y': '1' }, 'names with : . - and a space before the end tag\'s >');
});

t.test('entities and character references are decoded in text and attributes', async (t) => {
  const root = parseXml('<a v="&lt;&#60;&#x3c;&quot;&apos;&amp;&gt;">&lt;&#60;&#x3c;&#x1F600;&amp;amp;</a>');
  t.equal(root.attributes['v'], '<<<"\'&>');
  t.equal(root.text, '<<<\u{1F600}&amp;', 'decoded once: &amp;amp; becomes &amp;');
  t.equal(parseXml('<a>x &#10; y</a>').text, 'x \n y');
  for (const text of ['<a>&nbsp;</a>', '<a>&foo;</a>', '<a b="&copy;"/>', '<a>&#X3C;</a>', '<a>&#x110000;</a>', '<a>&#;</a>', '<a>&;</a>']) {
    t.equal(refusal(text), 'XML_MALFORMED', text);
  }
  for (const text of ['<a>&toString;</a>', '<a>&__proto__;</a>', '<a>&valueOf;</a>', '<a b="&hasOwnProperty;"/>']) {
    t.equal(refusal(text), 'XML_MALFORMED', `${text}: a name on Object.prototype is no entity`);
  }
  for (const text of ['<a>fish & chips</a>', '<a>&amp</a>', '<a>&abcdefghijklmnop;</a>', '<a b="&"/>']) {
    t.equal(refusal(text), 'XML_MALFORMED', `${text}: an & that starts no reference`);
  }
  for (const text of ['<a>&#0;</a>', '<a>&#xD800;</a>', '<a>&#xFFFE;</a>', '<a b="&#1;"/>']) {
    t.equal(refusal(text), 'XML_MALFORMED', `${text}: not an XML character`);
  }
});

t.test('comments, processing instructions and CDATA', async (t) => {
  const root = parseXml('<!-- before --><?pi x?><a>one<!-- <b>not an element</b> -->two<?php echo "<c>"; ?><![CDATA[<d> &amp; ]]]]><![CDATA[>]]></a><!-- after -->');
  t.same(root.children, [], 'markup inside comments, PIs and CDATA is not parsed');
  t.equal(root.text, 'onetwo<d> &amp; ]]>', 'CDATA is taken verbatim, entities included');
  t.equal(parseXml('<a><![CDATA[]]></a>').text, '', 'an empty CDATA section');
  t.equal(refusal('<a><!-- never closed </a>'), 'XML_MALFORMED');
  t.equal(refusal('<a><![CDATA[ never closed </a>'), 'XML_MALFORMED');
  t.equal(refusal('<a><? never closed </a>'), 'XML_MALFORMED');
  t.equal(refusal('<a><!--></a>'), 'XML_MALFORMED', '<!--> does not close itself');
  t.equal(refusal('<a><!---></a>'), 'XML_MALFORMED', '<!---> does not close itself');
  t.equal(refusal('<a><?></a>'), 'XML_MALFORMED', '<?> does not close itself');
  t.equal(refusal('<![CDATA[x]]><a/>'), 'XML_MALFORMED', 'CDATA outside the root');
});

t.test('refusals', async (t) => {
  const cases: Record<string, string> = {
    'a DOCTYPE': '<!DOCTYPE domain [<!ENTITY x "y">]><domain>&x;</domain>',
    'a declaration inside': '<a><!ELEMENT a ANY></a>',
    'a mismatched end tag': '<a><b></a></b>',
    'an end tag with nothing open': '</a>',
    'an end tag after the root': '<a/></a>',
    'an unclosed element': '<a><b></b>',
    'an unclosed start tag': '<a',
    'an end tag without >': '<a></a',
    'junk in an end tag': '<a></a b>',
    'two roots': '<a/><b/>',
    'two roots, the first with content': '<a>x</a><a>y</a>',
    'text before the root': 'x<a/>',
    'text after the root': '<a/>x',
    'no root at all': '<!-- only a comment -->',
    'an empty document': '',
    'whitespace only': ' \n\t',
    'an unquoted attribute': '<a b=c/>',
    'an attribute without a value': '<a b/>',
    'a repeated attribute': '<a b="1" b="2"/>',
    'attributes without a space between': '<a b="1"c="2"/>',
    'a < inside an attribute value': '<a b="<"/>',
    'an unterminated attribute value': '<a b="x/>',
    'a space before the tag name': '< a/>',
    'a digit starting a name': '<1a/>',
    'a stray <': '<a>1 < 2</a>',
    'a space inside />': '<a/ >',
  };
  for (const [what, text] of Object.entries(cases)) t.equal(refusal(text), 'XML_MALFORMED', what);
  t.equal(refusal('<a>\n  </a>\n\n'), 'accepted', 'whitespace after the root is fine');
  t.equal(refusal('\uFEFF<a/>'), 'accepted', 'a byte order mark before the root is fine');
  t.same(Object.entries(parseXml('<a __proto__="x" constructor="y"/>').attributes), [['__proto__', 'x'], ['constructor', 'y']], 'attribute names that are Object.prototype members are kept as attributes');
  t.equal(parseXml('<a b="1"/>').attributes['constructor'], undefined, 'and a lookup of one finds nothing');
  t.equal(Object.getPrototypeOf(parseXml('<a __proto__="x"/>').attributes), null, 'and cannot replace the attributes\' prototype');
  try {
    parseXml('<a><b></a>');
    t.fail('accepted');
  } catch (error) {
    t.match(error, { name: 'XmlError', code: 'XML_MALFORMED', message: /^end tag <\/a> does not close the open element at offset 6$/ }, 'the message says what and where');
  }
});

t.test('size and depth bounds', async (t) => {
  t.equal(refusal(nested(MAX_XML_DEPTH)), 'accepted', `${MAX_XML_DEPTH} levels`);
  t.equal(refusal(nested(MAX_XML_DEPTH + 1)), 'XML_MALFORMED', `${MAX_XML_DEPTH + 1} levels`);
  t.equal(refusal(nested(MAX_XML_DEPTH - 1, '<b/>')), 'accepted', `a self-closing element at level ${MAX_XML_DEPTH}`);
  t.equal(refusal(nested(MAX_XML_DEPTH, '<b/>')), 'XML_MALFORMED', `a self-closing element at level ${MAX_XML_DEPTH + 1} is as deep as an open one`);
  t.equal(refusal(`${'<a>'.repeat(100_000)}`), 'XML_MALFORMED', 'a deep unclosed document is refused at the bound, not read to the end');

  const exact = `<a>${'x'.repeat(MAX_XML_BYTES - 7)}</a>`;
  t.equal(Buffer.byteLength(exact), MAX_XML_BYTES);
  t.equal(refusal(exact), 'accepted', 'exactly MAX_XML_BYTES');
  t.equal(refusal(`<a>${'x'.repeat(MAX_XML_BYTES - 6)}</a>`), 'XML_TOO_LARGE', 'one byte more');
  const multibyte = `<a>${'é'.repeat((MAX_XML_BYTES - 6) / 2)}</a>`;
  t.ok(multibyte.length < MAX_XML_BYTES && Buffer.byteLength(multibyte) > MAX_XML_BYTES, 'sanity: fewer characters than bytes');
  t.equal(refusal(multibyte), 'XML_TOO_LARGE', 'the bound is in UTF-8 bytes, not characters');
});

t.test('a 1 MiB document of many small elements parses in linear time', async (t) => {
  const device = "<channel type='unix'><source mode='bind' path='/p'/><target type='virtio' name='org.x.0'/>&amp;</channel>";
  const count = Math.floor((MAX_XML_BYTES - 40) / device.length);
  const text = `<domain><devices>${device.repeat(count)}</devices></domain>`;
  t.ok(Buffer.byteLength(text) > MAX_XML_BYTES * 0.99 && Buffer.byteLength(text) <= MAX_XML_BYTES, `${Buffer.byteLength(text)} bytes`);
  const started = performance.now();
  const root = parseXml(text);
  const elapsed = performance.now() - started;
  t.equal(childNamed(root, 'devices')?.children.length, count, `${count} elements`);
  t.equal(childNamed(root, 'devices')?.children[count - 1]?.text, '&');
  t.ok(elapsed < 2000, `parsed in ${elapsed.toFixed(0)} ms`);

  // Long runs that a careless reader rescans at every offset.
  const hostile = [
    `<a>${'&amp;'.repeat(200_000)}</a>`,
    `<a>${'<!---->'.repeat(140_000)}</a>`,
    `<a${' b="x"'.repeat(1)}${' '.repeat(MAX_XML_BYTES - 20)}`,
    `<a>${'<b/>'.repeat(250_000)}</a>`,
    `<a>${'x'.repeat(MAX_XML_BYTES - 10)}`,
  ];
  for (const text of hostile) {
    const began = performance.now();
    refusal(text);
    const took = performance.now() - began;
    t.ok(took < 2000, `${text.slice(0, 12)}... (${text.length} characters): ${took.toFixed(0)} ms`);
  }
});

t.test('no input makes it throw anything but XmlError', async (t) => {
  const safe = (text: string): boolean => {
    try {
      parseXml(text);
    } catch (error) {
      if (!(error instanceof XmlError)) throw error;
    }
    return true;
  };
  fc.assert(fc.property(fc.string({ maxLength: 400 }), safe), { numRuns: 2000 });
  // Markup-shaped strings reach far deeper than arbitrary ones.
  const token = fc.constantFrom('<', '>', '/', '</', '/>', '<a', '<b', '</a>', '</b>', ' x="1"', " y='2'", '=', '"', "'", '&', ';', '&lt;', '&#', '&#x', '1f', '<!--', '-->', '<?', '?>', '<![CDATA[', ']]>', '<!DOCTYPE', ' ', '\n', 'text', '\u{1F600}', '\0', '__proto__');
  fc.assert(fc.property(fc.array(token, { maxLength: 60 }).map((parts) => parts.join('')), safe), { numRuns: 5000 });
  const element = fc.letrec<{ node: string }>((tie) => ({
    node: fc.oneof({ depthSize: 'small' },
      fc.constant('<e/>'),
      fc.string({ maxLength: 8 }).map((text) => `<t>${text}</t>`),
      fc.tuple(fc.array(tie('node'), { maxLength: 4 }), fc.string({ maxLength: 6 })).map(([children, attr]) => `<n k="${attr}">${children.join('')}</n>`)),
  })).node;
  fc.assert(fc.property(element, (text) => {
    safe(text);
    return true;
  }), { numRuns: 1000 });
  t.pass('fast-check found no counterexample');
});

t.test('what it accepts, it reads back as written', async (t) => {
  // A generated well-formed tree survives serializing and parsing with names, attributes and text.
  interface Tree { name: string; attributes: Record<string, string>; text: string; children: Tree[] }
  const name = fc.stringMatching(/^[A-Za-z_][\w.-]{0,5}$/);
  const value = fc.string({ maxLength: 10 });
  const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
  const text = fc.string({ maxLength: 10 });
  const tree: fc.Arbitrary<Tree> = fc.letrec<{ tree: Tree }>((tie) => ({
    tree: fc.oneof({ maxDepth: 4, depthIdentifier: 'tree' },
      fc.record({ name, attributes: fc.dictionary(name, value, { maxKeys: 3 }), text, children: fc.constant<Tree[]>([]) }),
      fc.record({ name, attributes: fc.dictionary(name, value, { maxKeys: 3 }), text, children: fc.array(tie('tree'), { maxLength: 3, depthIdentifier: 'tree' }) })),
  })).tree;
  const write = (node: Tree): string => `<${node.name}${Object.entries(node.attributes).map(([key, v]) => ` ${key}="${escape(v)}"`).join('')}>${escape(node.text)}${node.children.map(write).join('')}</${node.name}>`;
  fc.assert(fc.property(tree, (node) => {
    const read = parseXml(write(node));
    const same = (a: Tree, b: ReturnType<typeof parseXml>): boolean => a.name === b.name && a.text === b.text && JSON.stringify(a.attributes) === JSON.stringify({ ...b.attributes }) && a.children.length === b.children.length && a.children.every((child, i) => same(child, b.children[i]!));
    return same(node, read);
  }), { numRuns: 500 });
  t.pass('fast-check found no counterexample');
});
