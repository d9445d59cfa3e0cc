// Waiting on a JSON-lines log file another process appends to (the launcher's sidecar and cache
// logs): wakes on file-system change events, with a bounded deadline.

import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { withTimeout, type LogLine } from './logged-process.js';

export async function readLogFile(path: string): Promise<LogLine[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.split('\n').flatMap((line) => {
    try {
      return [JSON.parse(line) as LogLine];
    } catch {
      return [];
    }
  });
}

/** The first line from index `after` on that matches. */
export async function waitForLogLine(path: string, match: (line: LogLine) => boolean, after = 0): Promise<LogLine> {
  let wake: () => void = () => {};
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, () => wake());
  } catch {
    // The directory does not exist yet: the periodic re-check below finds the file.
  }
  try {
    return await withTimeout((async () => {
      for (;;) {
        const changed = new Promise<void>((resolve) => { wake = resolve; });
        const found = (await readLogFile(path)).slice(after).find(match);
        if (found !== undefined) return found;
        // A change event can be missed while reading; a slow re-check bounds the wait.
        await Promise.race([changed, new Promise((resolve) => setTimeout(resolve, 250))]);
      }
    })(), `a line in ${path}`);
  } finally {
    watcher?.close();
  }
}
