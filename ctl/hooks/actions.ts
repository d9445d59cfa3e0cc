// What a VM manager's hook asks of hostinfod, decided from the hook's arguments and the manager's
// own files: attach these ports, detach this VM, or nothing. Pure of sockets: ctl/main.ts sends it.

import type { AttachFlags } from '../cli.js';

export type HookAction =
  | { readonly kind: 'attach'; readonly specs: readonly AttachFlags[]; readonly notes: readonly string[] }
  | { readonly kind: 'detach'; readonly vm: string }
  | { readonly kind: 'none'; readonly note: string | undefined };

/** Reads a QEMU pidfile a manager wrote: a decimal pid, or why not. */
export function pidFrom(text: string | undefined | Error, file: string): number | string {
  if (text === undefined) return `${file} does not exist`;
  if (text instanceof Error) return text.message;
  // Decimal digits only: Number() would also read "0x1f" or "1e3" as a pid.
  const pid = /^\d{1,10}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  return Number.isSafeInteger(pid) && pid > 1 ? pid : `${file} holds no pid`;
}
