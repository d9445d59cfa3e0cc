// The administrator's side of the control socket: one status request on a fresh connection.

import { WebSocket } from 'ws';
import { DAEMON_PROTOCOL_VERSION, MAX_SERVER_MESSAGE_BYTES, type StatusReply } from './messages.js';

export const DEFAULT_STATUS_TIMEOUT_MS = 5_000;

export function fetchStatus(socketPath: string, timeoutMs = DEFAULT_STATUS_TIMEOUT_MS): Promise<StatusReply> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws+unix://${socketPath}`, { maxPayload: MAX_SERVER_MESSAGE_BYTES, perMessageDeflate: false });
    const timer = setTimeout(() => finish(new Error(`no status reply within ${timeoutMs} ms`)), timeoutMs);
    function finish(result: StatusReply | Error): void {
      clearTimeout(timer);
      ws.terminate();
      if (result instanceof Error) reject(result);
      else resolve(result);
    }
    ws.on('open', () => ws.send(JSON.stringify({ v: DAEMON_PROTOCOL_VERSION, type: 'status' })));
    ws.on('message', (data) => {
      let reply: unknown;
      try {
        reply = JSON.parse(data.toString());
      } catch {
        return finish(new Error('status reply is not JSON'));
      }
      const type = (reply as { type?: unknown }).type;
      if (type === 'status') finish(reply as StatusReply);
      else finish(new Error(`hostinfod refused: ${JSON.stringify(reply).slice(0, 200)}`));
    });
    ws.on('error', (error) => finish(error));
    ws.on('close', () => finish(new Error('connection to hostinfod closed')));
  });
}
