// xmllint (libxml2-utils, installed by .ci/setup) as the judge of what the vhostmd port sends:
// a real XML parser, not the test's own idea of well-formedness. And a reader of the one-metric-
// per-line document the sidecar writes, for the values.

import { spawnSync } from 'node:child_process';

/** xmllint's complaint about `document`, or undefined when it is well-formed XML. */
export function xmllintProblem(document: string | Buffer): string | undefined {
  const run = spawnSync('xmllint', ['--noout', '-'], { input: document, encoding: 'utf8' });
  if (run.error !== undefined) throw new Error(`xmllint did not run (apt-get install libxml2-utils): ${run.error.message}`);
  return run.status === 0 ? undefined : `xmllint exit ${run.status}: ${run.stderr.trim()}`;
}

/** An XPath string() of `document`, as xmllint computes it (entities decoded). */
export function xpathString(document: string | Buffer, expression: string): string {
  const run = spawnSync('xmllint', ['--xpath', `string(${expression})`, '-'], { input: document, encoding: 'utf8' });
  if (run.error !== undefined) throw run.error;
  return run.stdout.replace(/\n$/, '');
}

export interface ParsedMetric {
  readonly type: string;
  readonly context: string;
  readonly id: string | undefined;
  readonly uuid: string | undefined;
  readonly unit: string;
  readonly name: string;
  /** As written, entities not decoded. */
  readonly value: string;
}

const LINE = /^<metric type='([^']*)' context='([^']*)'(?: id='([^']*)' uuid='([^']*)')? unit='([^']*)'><name>([^<]*)<\/name><value>([^<]*)<\/value><\/metric>$/;

/** The metric lines of a document, in order; a line that is not one throws. */
export function metricLines(document: string): ParsedMetric[] {
  const lines = document.split('\n');
  if (lines[0] !== '<metrics>' || !document.endsWith('</metrics>\n\n')) throw new Error(`not a metrics document: ${JSON.stringify(document.slice(0, 200))}`);
  return lines.slice(1, lines.indexOf('</metrics>')).filter((line) => !line.startsWith('<!--')).map((line) => {
    const m = LINE.exec(line);
    if (m === null) throw new Error(`not a metric line: ${JSON.stringify(line)}`);
    return { type: m[1] ?? '', context: m[2] ?? '', id: m[3], uuid: m[4], unit: m[5] ?? '', name: m[6] ?? '', value: m[7] ?? '' };
  });
}

/** `context:name` → value, e.g. `host:HostName`, `vm:TotalCPUTime`. */
export function metricValues(document: string): Map<string, string> {
  return new Map(metricLines(document).map((metric) => [`${metric.context}:${metric.name}`, metric.value]));
}
