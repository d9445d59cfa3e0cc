// /proc/loadavg: "0.52 0.48 0.40 2/345 12345"; only the three averages are used.

export function parseLoadavg(text: string): [number, number, number] | undefined {
  const [one, five, fifteen] = text.trim().split(/\s+/, 3).map(Number);
  const valid = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v) && v >= 0;
  if (!valid(one) || !valid(five) || !valid(fifteen)) return undefined;
  return [one, five, fifteen];
}
