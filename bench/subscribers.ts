// Child process of the fan-out benchmark: N subscribers that stamp each sample's arrival.

import { WebSocket } from 'ws';

export type ToSubscribers = { type: 'report' };
export type FromSubscribers = { type: 'ready' } | { type: 'arrivals'; arrivals: Record<number, string[]> };

const [socketPath, countText] = process.argv.slice(2);
if (socketPath !== undefined && process.send !== undefined) {
  const count = Number(countText);
  const arrivals: Record<number, string[]> = {};
  let subscribed = 0;
  for (let i = 0; i < count; i++) {
    const ws = new WebSocket(`ws+unix://${socketPath}`, { perMessageDeflate: false });
    ws.on('open', () => ws.send(JSON.stringify({
      v: 1, type: 'hello', vm: { name: `bench-${i}`, uuid: `bench-uuid-${i}`, pid: process.pid },
      items: ['physcpus', 'physcores', 'sockets', 'loadavg', 'cpuusage', 'pressure', 'physmem', 'uptime', 'vcpudelay'],
    })));
    ws.on('message', (data) => {
      const at = process.hrtime.bigint();
      // Parsing is part of arriving: the sidecar has to do it before it can use the sample.
      const message = JSON.parse(data.toString()) as { type: string; seq?: number };
      if (message.type === 'subscribed' && ++subscribed === count) process.send?.({ type: 'ready' } satisfies FromSubscribers);
      if (message.type === 'sample' && message.seq !== undefined) (arrivals[message.seq] ??= []).push(String(at));
    });
  }
  process.on('message', (message: ToSubscribers) => {
    if (message.type === 'report') process.send?.({ type: 'arrivals', arrivals } satisfies FromSubscribers, () => process.exit(0));
  });
}
