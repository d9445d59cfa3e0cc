// /proc/vmstat: one "name value" pair per line. Only pgpgin and pgpgout are kept: what the host
// read from and wrote to block devices through the page cache (swap included), in kB since boot.
// The kernel counts them in 512-byte sectors and halves them when the file is read (mm/vmstat.c
// vmstat_start: "sectors -> kbytes"), so despite their names they are kB, not pages.

export interface Paging {
  pagedin?: number;
  pagedout?: number;
}

/**
 * Each counter on its own: one the text lacks (a kernel without CONFIG_VM_EVENT_COUNTERS has
 * neither) or that is not a whole number is left out, never read as 0. The first line of a name
 * decides; the kernel writes each once. The two names are looked up rather than every line split:
 * the file has some 190 lines, read once per sample, and these are two of them.
 */
export function parseVmstatPaging(text: string): Paging {
  const paging: Paging = {};
  const pagedin = counter(text, 'pgpgin');
  if (pagedin !== undefined) paging.pagedin = pagedin;
  const pagedout = counter(text, 'pgpgout');
  if (pagedout !== undefined) paging.pagedout = pagedout;
  return paging;
}

function counter(text: string, name: string): number | undefined {
  const prefix = `${name} `;
  let at = text.startsWith(prefix) ? 0 : text.indexOf(`\n${prefix}`);
  if (at === -1) return undefined;
  if (at > 0 || text[0] === '\n') at += 1;
  const start = at + prefix.length;
  let end = text.indexOf('\n', start);
  if (end === -1) end = text.length;
  const digits = text.slice(start, end);
  if (!/^\d{1,16}$/.test(digits)) return undefined;
  const value = Number(digits);
  return Number.isSafeInteger(value) ? value : undefined;
}
