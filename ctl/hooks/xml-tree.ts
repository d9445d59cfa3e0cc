// A small, bounded XML reader for the one XML hostinfo reads: the domain XML libvirt writes to a
// hook's stdin. libvirt generates it (libxml2 escaping, no DTD, no entities beyond the five
// predefined), so elements, attributes, text, comments, processing instructions and CDATA are all
// it needs to know; a DOCTYPE, an unknown entity or a mismatched tag is an error, not a guess.

import { CodedError } from '../../common/coded-error.js';

/** A domain XML is a few kB; hundreds of devices stay far below this. */
export const MAX_XML_BYTES = 1024 * 1024;
export const MAX_XML_DEPTH = 64;

export interface XmlElement {
  readonly name: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly children: XmlElement[];
  text: string;
}

export class XmlError extends CodedError<'XML_TOO_LARGE' | 'XML_MALFORMED'> {
  override readonly name = 'XmlError';
}

// Sticky: each is matched at one offset (lastIndex), never against a copy of the rest.
const NAME = /[A-Za-z_][\w.:-]*/y;
const ATTRIBUTE = /\s+([A-Za-z_][\w.:-]*)\s*=\s*("([^"<]*)"|'([^'<]*)')/y;
const TAG_END = /\s*(\/?)>/y;

function matchAt(pattern: RegExp, text: string, at: number): RegExpExecArray | null {
  pattern.lastIndex = at;
  return pattern.exec(text);
}
const ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** XML 1.0's Char production: a character reference to anything else (NUL, a lone surrogate) is malformed. */
const isXmlChar = (code: number): boolean =>
  code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);

function decode(text: string): string {
  if (!text.includes('&')) return text;
  // Every & must start a reference that ends in ; within a few characters: a bare & or an
  // overlong name is malformed, not literal text.
  return text.replace(/&([^;&]{0,10})(;?)/g, (_whole, entity: string, semicolon: string) => {
    const reference = JSON.stringify(`&${entity}${semicolon}`);
    if (semicolon === '') throw new XmlError('XML_MALFORMED', `${reference} is not an entity or character reference`);
    const numeric = /^#(x[0-9a-fA-F]{1,6}|\d{1,7})$/.exec(entity)?.[1];
    if (numeric !== undefined) {
      const code = numeric.startsWith('x') ? parseInt(numeric.slice(1), 16) : Number(numeric);
      if (!isXmlChar(code)) throw new XmlError('XML_MALFORMED', `${reference} is not an XML character`);
      return String.fromCodePoint(code);
    }
    // Own keys only: &toString; or &__proto__; name no entity.
    const named = Object.hasOwn(ENTITIES, entity) ? ENTITIES[entity] : undefined;
    if (named === undefined) throw new XmlError('XML_MALFORMED', `unknown entity ${reference}`);
    return named;
  });
}

/** The document's root element. */
export function parseXml(text: string): XmlElement {
  if (Buffer.byteLength(text) > MAX_XML_BYTES) throw new XmlError('XML_TOO_LARGE', `XML larger than ${MAX_XML_BYTES} bytes`);
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let at = 0;
  const fail = (what: string): never => { throw new XmlError('XML_MALFORMED', `${what} at offset ${at}`); };
  while (at < text.length) {
    const open = text.indexOf('<', at);
    const textEnd = open === -1 ? text.length : open;
    const top = stack[stack.length - 1];
    if (top !== undefined) top.text += decode(text.slice(at, textEnd));
    else if (text.slice(at, textEnd).trim() !== '') fail('text outside the root element');
    if (open === -1) break;
    at = open;
    const rest = text.slice(at, at + 9); // nine characters: enough to tell the markup apart
    if (rest.startsWith('<!--')) at = skipPast(text, at + 4, '-->', fail);
    else if (rest.startsWith('<?')) at = skipPast(text, at + 2, '?>', fail);
    else if (rest.startsWith('<![CDATA[')) {
      const end = skipPast(text, at + 9, ']]>', fail);
      if (top === undefined) fail('CDATA outside the root element');
      else top.text += text.slice(at + 9, end - 3);
      at = end;
    } else if (rest.startsWith('<!')) fail('DOCTYPE and declarations are not accepted');
    else if (rest.startsWith('</')) {
      const name = matchAt(NAME, text, at + 2)?.[0];
      const close = text.indexOf('>', at);
      if (name === undefined || close === -1 || text.slice(at + 2 + name.length, close).trim() !== '') fail('malformed end tag');
      if (stack.pop()?.name !== name) fail(`end tag </${name}> does not close the open element`);
      at = close + 1;
    } else {
      at = startTag(text, at, stack, fail, (element) => {
        if (root !== undefined && stack.length === 0) fail('a second root element');
        root ??= element;
      });
    }
  }
  if (stack.length > 0) fail(`<${stack[stack.length - 1]?.name}> is never closed`);
  if (root === undefined) return fail('no root element');
  return root;
}

function skipPast(text: string, at: number, end: string, fail: (what: string) => never): number {
  const found = text.indexOf(end, at);
  if (found === -1) fail(`no closing ${end}`);
  return found + end.length;
}

/** Reads `<name attr="v" ...>` or `<name .../>` at `at`; returns the offset after it. */
function startTag(text: string, at: number, stack: XmlElement[], fail: (what: string) => never, isRoot: (element: XmlElement) => void): number {
  const name = matchAt(NAME, text, at + 1)?.[0];
  if (name === undefined) fail('malformed start tag');
  let cursor = at + 1 + (name as string).length;
  // No prototype: an attribute named __proto__ is an attribute, and a lookup of "constructor" finds nothing.
  const attributes: Record<string, string> = Object.create(null) as Record<string, string>;
  for (;;) {
    const attribute = matchAt(ATTRIBUTE, text, cursor);
    if (attribute === null) break;
    const [whole, key, , double, single] = attribute;
    if (key === undefined || Object.hasOwn(attributes, key)) fail(`attribute ${key} repeated`);
    attributes[key as string] = decode(double ?? single ?? '');
    cursor += whole.length;
  }
  const tail = matchAt(TAG_END, text, cursor);
  if (tail === null) return fail(`malformed start tag <${name}>`);
  const element: XmlElement = { name: name as string, attributes, children: [], text: '' };
  // Counted for self-closing elements too: the bound is on the tree, not on the open tags.
  if (stack.length >= MAX_XML_DEPTH) fail(`elements nested deeper than ${MAX_XML_DEPTH}`);
  const parent = stack[stack.length - 1];
  if (parent === undefined) isRoot(element);
  else parent.children.push(element);
  if (tail[1] !== '/') stack.push(element);
  return cursor + tail[0].length;
}

/** Direct children named `name`. */
export const childrenNamed = (element: XmlElement, name: string): XmlElement[] => element.children.filter((child) => child.name === name);
export const childNamed = (element: XmlElement, name: string): XmlElement | undefined => element.children.find((child) => child.name === name);
