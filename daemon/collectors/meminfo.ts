// /proc/meminfo: "MemTotal:       16303932 kB" lines. Only the handful of keys behind physmem and
// swap are kept.

export interface MemInfo {
  physmem?: { total: number; free: number; available: number };
  swap?: { total: number; free: number };
}

const WANTED = new Set(['MemTotal', 'MemFree', 'MemAvailable', 'SwapTotal', 'SwapFree']);

/**
 * physmem needs MemAvailable, which kernels before 3.14 lack: then physmem is unavailable rather
 * than guessed. swap is reported even when zero-sized: "no swap" is a true fact, not a gap.
 */
export function parseMeminfo(text: string): MemInfo {
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon === -1) continue;
    const key = line.slice(0, colon);
    if (!WANTED.has(key)) continue;
    const match = /^\s*(\d+)(?: kB)?\s*$/.exec(line.slice(colon + 1));
    const value = match?.[1] === undefined ? NaN : Number(match[1]);
    if (Number.isSafeInteger(value)) kb.set(key, value);
  }
  const total = kb.get('MemTotal');
  const free = kb.get('MemFree');
  const available = kb.get('MemAvailable');
  const swapTotal = kb.get('SwapTotal');
  const swapFree = kb.get('SwapFree');
  const result: MemInfo = {};
  if (total !== undefined && free !== undefined && available !== undefined) result.physmem = { total, free, available };
  if (swapTotal !== undefined && swapFree !== undefined) result.swap = { total: swapTotal, free: swapFree };
  return result;
}
