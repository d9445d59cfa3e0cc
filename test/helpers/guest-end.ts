// Stands in for QEMU's end of the hostinfo chardev (QEMU listens there, the sidecar connects), so
// a test can write bytes as the guest would and read the sidecar's replies.

import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { withTimeout, type Teardown } from './logged-process.js';

export class GuestEnd {
  readonly path: string;
  readonly #server: Server;
  #socket: Socket | undefined;
  #buffered = '';
  #wake: (() => void) | undefined;
  #connections = 0;

  private constructor(path: string, server: Server) {
    this.path = path;
    this.#server = server;
    server.on('connection', (socket) => {
      socket.on('error', () => {});
      this.#socket?.destroy();
      this.#socket = socket;
      this.#buffered = '';
      this.#connections += 1;
      socket.on('data', (chunk: Buffer) => {
        this.#buffered += chunk.toString('latin1');
        this.#wake?.();
      });
      this.#wake?.();
    });
  }

  static async listen(t: Teardown, path: string): Promise<GuestEnd> {
    const server = createServer();
    server.listen(path);
    await once(server, 'listening');
    const end = new GuestEnd(path, server);
    t.teardown(() => end.close());
    return end;
  }

  get connections(): number {
    return this.#connections;
  }

  /** Waits until the sidecar has connected `count` times in all. */
  async connected(count = 1): Promise<void> {
    await withTimeout(this.#until(() => this.#connections >= count && this.#socket !== undefined), `sidecar connection #${count} to the guest end`);
  }

  write(bytes: string | Buffer): void {
    if (this.#socket === undefined) throw new Error('no sidecar connected');
    this.#socket.write(bytes);
  }

  async readLine(): Promise<string> {
    await withTimeout(this.#until(() => this.#buffered.includes('\n')), 'a reply line from the sidecar');
    const lf = this.#buffered.indexOf('\n');
    const line = this.#buffered.slice(0, lf + 1);
    this.#buffered = this.#buffered.slice(lf + 1);
    return line;
  }

  /** One request line, one reply line (LF stripped). */
  async ask(request: string): Promise<string> {
    this.write(`${request}\n`);
    return (await this.readLine()).replace(/\n$/, '');
  }

  /** Drops the connection as QEMU would when its chardev is reset. */
  dropConnection(): void {
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  close(): void {
    this.#socket?.destroy();
    this.#server.close();
  }

  async #until(condition: () => boolean): Promise<void> {
    while (!condition()) await new Promise<void>((resolve) => { this.#wake = resolve; });
  }
}
