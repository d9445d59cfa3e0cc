// The vhostmd reply, as vhostmd 1.2 writes it (vhostmd/virtio.c vio_channel_update, metric.c
// metric_xml) and vm-dump-metrics reads it: `<metrics>\n`, the host's metrics, this VM's, then
// `</metrics>\n\n`. The reader does not parse XML: it reads until what it has ends with `\n\n`
// and prints the bytes up to the first NUL. So no `\n\n` and no NUL may come before the end: one
// metric per line, and every value and attribute goes through xmlText, which leaves no control
// character at all (XML forbids most of them, even as character references) and escapes the
// five markup characters. vhostmd itself escapes nothing; SAP's collectors parse the document.

import type { Metric } from './metrics.js';

export const METRICS_START = '<metrics>\n';
export const METRICS_END = '</metrics>\n\n';
export const INVALID_REQUEST_REPLY = 'INVALID REQUEST\n\n';

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', "'": '&apos;', '"': '&quot;' };

/** One character (code point) that XML allows and that is not a control character. */
function isPlainChar(char: string): boolean {
  const code = char.codePointAt(0) ?? 0;
  if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return false;
  // A lone surrogate (iteration by code point leaves only lone ones as single units), U+FFFE, U+FFFF.
  return !(code >= 0xd800 && code <= 0xdfff) && code !== 0xfffe && code !== 0xffff;
}

/** Text safe as element content and inside a quoted attribute: markup escaped, controls as `?`. */
export function xmlText(text: string): string {
  let out = '';
  for (const char of text) out += isPlainChar(char) ? ESCAPES[char] ?? char : '?';
  return out;
}

/** Comment text: no `--` (forbidden in a comment), no trailing `-`, no control characters. */
function commentText(text: string): string {
  let clean = '';
  for (const char of text) clean += isPlainChar(char) ? char : '?';
  return clean.replace(/-{2,}/g, '-').replace(/-+$/, '');
}

/** Whose VM metrics these are: vhostmd's domain id and UUID attributes. */
export interface VmAttributes {
  readonly id: string;
  readonly uuid: string;
}

export interface MetricEntry {
  readonly metric: Metric;
  /** The value as metricText wrote it. */
  readonly text: string;
}

function metricLine({ metric, text }: MetricEntry, vm: VmAttributes): string {
  const owner = metric.context === 'vm' ? ` id='${xmlText(vm.id)}' uuid='${xmlText(vm.uuid)}'` : '';
  return `<metric type='${metric.type}' context='${metric.context}'${owner} unit='${xmlText(metric.unit)}'>` +
    `<name>${xmlText(metric.name)}</name><value>${xmlText(text)}</value></metric>\n`;
}

/** The document: host metrics, then VM metrics, each group in the order given. */
export function metricsDocument(entries: readonly MetricEntry[], vm: VmAttributes): string {
  const host = entries.filter((entry) => entry.metric.context === 'host');
  const own = entries.filter((entry) => entry.metric.context === 'vm');
  return `${METRICS_START}${[...host, ...own].map((entry) => metricLine(entry, vm)).join('')}${METRICS_END}`;
}

/** A well-formed document with no metrics, saying why in a comment. */
export function emptyDocument(why: string): string {
  return `${METRICS_START}<!-- ${commentText(why)} -->\n${METRICS_END}`;
}
