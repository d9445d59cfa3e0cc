// Shared test plumbing: temp dirs, fixture paths, a real ws client (over the control socket's path
// or over one end of a sidecar's socket pair) that can be awaited message by message, and a
// spawned daemon whose JSON log lines can be awaited by event.

import { LoggedProcess, withTimeout } from '../helpers/logged-process.js';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';

export { WAIT_MS, withTimeout } from '../helpers/logged-process.js';

/** test/fixtures/proc in the source tree; the compiled tests sit at the same depth under dist*. */
export const PROC_FIXTURES = fileURLToPath(new URL('../../../test/fixtures/proc/', import.meta.url));
export const DAEMON_MAIN = fileURLToPath(new URL('../../daemon/main.js', import.meta.url));

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export function tempDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'hostinfod-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A ws client whose frames queue up until a test takes them, so nothing is missed between awaits. */
export class TestClient {
  readonly ws: WebSocket;
  private readonly queue: unknown[] = [];
  private waiters: ((message: unknown) => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  /** A unix socket path, or an already connected socket to speak WebSocket over. */
  constructor(target: string | Socket) {
    this.ws = typeof target === 'string'
      ? new WebSocket(`ws+unix://${target}`)
      : new WebSocket('ws://hostinfod/', { createConnection: () => target, perMessageDeflate: false });
    this.ws.on('message', (data) => {
      const message: unknown = JSON.parse(data.toString());
      const waiter = this.waiters.shift();
      if (waiter !== undefined) waiter(message);
      else this.queue.push(message);
    });
    this.ws.on('error', () => {});
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async open(target: string | Socket): Promise<TestClient> {
    const client = new TestClient(target);
    await withTimeout(once(client.ws, 'open'), 'ws open');
    return client;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  next(): Promise<Record<string, unknown>> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued as Record<string, unknown>);
    return withTimeout(new Promise((resolve) => this.waiters.push(resolve as (m: unknown) => void)), 'a frame');
  }

  /** Skips frames until one of the given type. */
  async nextOf(type: string): Promise<Record<string, unknown>> {
    for (;;) {
      const message = await this.next();
      if (message['type'] === type) return message;
    }
  }

  close(): void {
    this.ws.terminate();
  }
}

/** A spawned hostinfod; its stderr JSON lines can be awaited by `event`. */
export class DaemonProcess extends LoggedProcess {
  constructor(args: readonly string[], env: NodeJS.ProcessEnv = {}) {
    super(DAEMON_MAIN, args, env);
  }

  /** Resolves with the first of the events, or with 'exit' if the process ends first. */
  async started(): Promise<'listening' | 'exit'> {
    return withTimeout(Promise.race([this.waitFor('listening').then(() => 'listening' as const), this.exited.then(() => 'exit' as const)]), 'daemon start or exit');
  }

  async stop(): Promise<void> {
    await this.kill('SIGKILL');
  }
}

export function spawnDaemon(t: Teardown, args: readonly string[], env: NodeJS.ProcessEnv = {}): DaemonProcess {
  const daemon = new DaemonProcess(args, env);
  t.teardown(() => daemon.stop());
  return daemon;
}
