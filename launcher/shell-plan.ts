// What the launcher hands back to its POSIX-shell front (bin/hostinfo-qemu): a few lines of shell
// that the front evaluates. Either it becomes QEMU (`exec`), keeping the caller's pid, file
// descriptors, cgroup and terminal, or it prints and exits. Node has no execve; the shell does.

/** One word for sh: single quotes keep everything literal except the quote itself. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

export function execScript(binary: string, args: readonly string[]): string {
  return `exec ${[binary, ...args].map(shellQuote).join(' ')}\n`;
}

/** Text for stdout, then an exit status: --help and --version answer through the front too. */
export function exitScript(status: number, stdout = ''): string {
  const print = stdout === '' ? '' : `printf '%s' ${shellQuote(stdout)}\n`;
  return `${print}exit ${status}\n`;
}
