// One request/reply timer for every benchmark that plays a guest: writes a line, waits for the
// reply line on the same socket, checks it and returns the milliseconds in between.

import type { Socket } from 'node:net';

export interface RoundTripper {
  /** Sends `request` and resolves with the round trip in ms once its reply line matched `expect`. */
  ask(request: string, expect: RegExp): Promise<number>;
  /** Stops listening on the socket (the socket itself stays open). */
  close(): void;
}

export function roundTripper(socket: Socket): RoundTripper {
  let buffered = '';
  let wake: () => void = () => {};
  const onData = (chunk: Buffer): void => {
    buffered += chunk.toString('latin1');
    wake();
  };
  socket.on('data', onData);
  return {
    async ask(request, expect) {
      const start = process.hrtime.bigint();
      socket.write(`${request}\n`);
      while (!buffered.includes('\n')) await new Promise<void>((resolve) => { wake = resolve; });
      const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
      const lf = buffered.indexOf('\n');
      const line = buffered.slice(0, lf);
      buffered = buffered.slice(lf + 1);
      if (!expect.test(line)) throw new Error(`unexpected reply ${JSON.stringify(line)} to ${request}`);
      return elapsed;
    },
    close: () => void socket.off('data', onData),
  };
}
