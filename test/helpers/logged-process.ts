// A project binary run as a real child process, with its JSON-lines log on stderr parsed so a test
// can wait for a logged event instead of sleeping.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const WAIT_MS = 30_000;

export type LogLine = Record<string, unknown>;

export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Path of a compiled entry point, e.g. binPath('sidecar/main.js'), from dist/test/helpers. */
export const binPath = (relative: string): string => fileURLToPath(new URL(`../../${relative}`, import.meta.url));

export function withTimeout<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    // A waiter that lost a race (e.g. "listening" vs "exit") must not keep the test file alive.
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface SpawnOptions {
  /**
   * Run without the test runner's instrumentation: tap's process-info hook rides in NODE_OPTIONS
   * into every node process a test starts, and from there into every process those start, even
   * with an empty environment. `env -u NODE_OPTIONS` drops it after tap's spawn hook has run (env
   * execs node, so the pid is still the program's).
   */
  readonly uninstrumented?: boolean;
}

export class LoggedProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout = '';
  stderr = '';
  readonly #watchers: { match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }[] = [];

  constructor(script: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, options: SpawnOptions = {}) {
    // HOSTINFO_* from the developer's shell must not leak into what a test configures.
    const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('HOSTINFO_')));
    const [command, argv] = options.uninstrumented === true ? ['env', ['-u', 'NODE_OPTIONS', process.execPath, script, ...args]] : [process.execPath, [script, ...args]];
    this.child = spawn(command, argv, { env: { ...cleanEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    this.child.stdout?.on('data', (chunk: Buffer) => { this.stdout += chunk.toString(); });
    let partial = '';
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
      partial += chunk.toString();
      let newline: number;
      while ((newline = partial.indexOf('\n')) !== -1) {
        const text = partial.slice(0, newline);
        partial = partial.slice(newline + 1);
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          continue;
        }
        this.lines.push(line);
        for (const watcher of this.#watchers.filter((w) => w.match(line))) {
          this.#watchers.splice(this.#watchers.indexOf(watcher), 1);
          watcher.resolve(line);
        }
      }
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first line logged from index `after` on that matches (an event name or a predicate). */
  waitFor(match: string | ((line: LogLine) => boolean), after = 0): Promise<LogLine> {
    const test = typeof match === 'string' ? (line: LogLine) => line['event'] === match : match;
    const seen = this.lines.slice(after).find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    const what = typeof match === 'string' ? `log event ${match}` : 'a matching log line';
    return withTimeout(new Promise((resolve) => this.#watchers.push({ match: test, resolve })), `${what}; stderr so far:\n${this.stderr.slice(-2000)}`);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.running) this.child.kill(signal);
    await this.exited;
  }
}

export function spawnLogged(t: Teardown, script: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, options: SpawnOptions = {}): LoggedProcess {
  const child = new LoggedProcess(script, args, env, options);
  t.teardown(() => child.kill());
  return child;
}
