// /proc/pressure/{cpu,memory,io} (PSI, Linux 4.20+ built with CONFIG_PSI and not booted with
// psi=0): "some avg10=1.20 avg60=0.80 avg300=0.40 total=123456" then, on most resources, a "full"
// line. Only "some avg10" is reported.

/** The "some avg10" percentage, or undefined when the text does not carry one. */
export function parsePressureSomeAvg10(text: string): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith('some ')) continue;
    const match = /(?:^|\s)avg10=(\d+(?:\.\d+)?)(?:\s|$)/.exec(line);
    if (match?.[1] === undefined) return undefined;
    const value = Number(match[1]);
    return Number.isFinite(value) ? value : undefined;
  }
  return undefined;
}
