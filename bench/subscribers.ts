// Child process of the fan-out benchmark: N subscribers, each a sidecar's DaemonChannel over its
// own unix connection to the parent (whose end the parent attaches to its DaemonServer), stamping
// each sample's arrival once the channel has parsed and validated it, as a sidecar must before it
// can use the sample.

import { connect } from 'node:net';
import { DaemonChannel } from '../sidecar/daemon-channel.js';

export type ToSubscribers = { type: 'report' };
export type FromSubscribers = { type: 'ready' } | { type: 'arrivals'; arrivals: Record<number, string[]> };

const [socketPath, countText] = process.argv.slice(2);
if (socketPath !== undefined && process.send !== undefined) {
  const count = Number(countText);
  const arrivals: Record<number, string[]> = {};
  let granted = 0;
  for (let i = 0; i < count; i++) {
    const channel = new DaemonChannel(connect({ path: socketPath }));
    channel.once('access', () => {
      if (++granted === count) process.send?.({ type: 'ready' } satisfies FromSubscribers);
    });
    channel.on('sample', (sample) => {
      (arrivals[sample.seq] ??= []).push(String(process.hrtime.bigint()));
    });
    channel.on('invalid', (reason) => process.stderr.write(`subscriber ${i}: invalid frame from the daemon: ${reason}\n`));
    channel.on('closed', (code, reason) => {
      if (code !== 1000 && code !== 1001) process.stderr.write(`subscriber ${i}: channel closed (${code} ${reason})\n`);
    });
  }
  process.on('message', (message: ToSubscribers) => {
    if (message.type === 'report') process.send?.({ type: 'arrivals', arrivals } satisfies FromSubscribers, () => process.exit(0));
  });
}
