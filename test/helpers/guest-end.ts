// Stands in for QEMU's end of the hostinfo chardev (QEMU listens there, the sidecar connects), so
// a test can write bytes as the guest would and read the sidecar's replies. Built for volume too:
// replies are split into lines as they arrive, never accumulated in one growing string; with
// `onLine` set they go to that callback, otherwise they queue for readLine().

import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { withTimeout, type Teardown } from './logged-process.js';

/** A reply longer than this without its LF is a broken sidecar, not a slow one. */
const MAX_PARTIAL_REPLY = 4096;

export class GuestEnd {
  readonly path: string;
  /** Receives each reply line (LF included) instead of the readLine() queue, when set. */
  onLine: ((line: string) => void) | undefined;
  readonly #server: Server;
  #socket: Socket | undefined;
  #partial = '';
  #queue: string[] = [];
  #lines = 0;
  #connections = 0;
  #wakers: (() => void)[] = [];

  private constructor(path: string, server: Server) {
    this.path = path;
    this.#server = server;
    server.on('connection', (socket) => {
      socket.on('error', () => {});
      this.#socket?.destroy();
      this.#socket = socket;
      this.#partial = '';
      this.#queue = [];
      this.#connections += 1;
      socket.on('data', (chunk: Buffer) => this.#receive(chunk));
      this.#wakeAll();
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

  /** Reply lines received so far, on every connection. */
  get lines(): number {
    return this.#lines;
  }

  /** Waits until the sidecar has connected `count` times in all. */
  async connected(count = 1): Promise<void> {
    await withTimeout(this.#until(() => this.#connections >= count && this.#socket !== undefined), `sidecar connection #${count} to the guest end`);
  }

  write(bytes: string | Buffer): void {
    this.#connectedSocket().write(bytes);
  }

  /** Writes, waiting for the socket to drain when it is full: "as fast as the socket takes it". */
  async send(bytes: string | Buffer): Promise<void> {
    const socket = this.#connectedSocket();
    if (!socket.write(bytes)) await withTimeout(once(socket, 'drain'), 'the guest socket to drain');
  }

  async readLine(): Promise<string> {
    await withTimeout(this.#until(() => this.#queue.length > 0), 'a reply line from the sidecar');
    return this.#queue.shift() as string;
  }

  /** Resolves once `count` reply lines have arrived in all. */
  async untilLines(count: number, what: string, ms?: number): Promise<void> {
    await withTimeout(this.#until(() => this.#lines >= count), `${what} (${this.#lines} of ${count} reply lines so far)`, ms);
  }

  /** One request line, one reply line (LF stripped); an onLine callback is suspended meanwhile. */
  async ask(request: string): Promise<string> {
    const previous = this.onLine;
    this.onLine = undefined;
    try {
      await this.send(`${request}\n`);
      return (await this.readLine()).replace(/\n$/, '');
    } finally {
      this.onLine = previous;
    }
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

  #connectedSocket(): Socket {
    if (this.#socket === undefined) throw new Error('no sidecar connected');
    return this.#socket;
  }

  #receive(chunk: Buffer): void {
    const text = this.#partial + chunk.toString('latin1');
    let start = 0;
    for (let lf = text.indexOf('\n'); lf !== -1; lf = text.indexOf('\n', start)) {
      const line = text.slice(start, lf + 1);
      this.#lines += 1;
      if (this.onLine === undefined) this.#queue.push(line);
      else this.onLine(line);
      start = lf + 1;
    }
    this.#partial = text.slice(start);
    if (this.#partial.length > MAX_PARTIAL_REPLY) {
      throw new Error(`reply without LF longer than ${MAX_PARTIAL_REPLY} bytes: ${JSON.stringify(this.#partial.slice(0, 100))}`);
    }
    this.#wakeAll();
  }

  #wakeAll(): void {
    for (const wake of this.#wakers.splice(0)) wake();
  }

  /** Several waits may be pending at once (a reader and a line counter): each is woken. */
  async #until(condition: () => boolean): Promise<void> {
    while (!condition()) await new Promise<void>((resolve) => this.#wakers.push(resolve));
  }
}
