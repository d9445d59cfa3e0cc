// /proc/uptime: "123456.78 234567.89" (uptime, then idle time summed over CPUs), seconds.

export function parseUptime(text: string): number | undefined {
  const first = text.trim().split(/\s+/, 1)[0];
  if (first === undefined || first === '') return undefined;
  const seconds = Number(first);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}
