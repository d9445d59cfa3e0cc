// The administrator's side of the control socket: one request on a fresh connection, one reply.
// A refusal from the daemon is a ControlError carrying the daemon's code; not reaching it at all
// (no daemon, no permission) keeps the system error's code (ENOENT, EACCES, ECONNREFUSED).

import { WebSocket } from 'ws';
import { CodedError } from '../common/coded-error.js';
import type { AttachSpec, ControlReply } from './control-messages.js';
import { DAEMON_PROTOCOL_VERSION, MAX_SERVER_MESSAGE_BYTES, type StatusReply } from './messages.js';

export const DEFAULT_CONTROL_TIMEOUT_MS = 5_000;

/** What went wrong talking to hostinfod: a daemon code (REFUSED, NO_SUCH_VM, ...), or the client's own. */
export class ControlError extends CodedError<string> {
  override readonly name = 'ControlError';
}

type Request =
  | { readonly type: 'status' }
  | { readonly type: 'reload' }
  | { readonly type: 'attach'; readonly vm: Omit<AttachSpec, 'guestDevice'> & { readonly guestDevice?: string | undefined } }
  | { readonly type: 'detach'; readonly vm: string }
  | { readonly type: 'query'; readonly vm: string; readonly line: string };

/** The reply type each request is answered with. */
const REPLY_TYPE = { status: 'status', reload: 'reloaded', attach: 'attached', detach: 'detached', query: 'queried' } as const;
type ReplyOf<R extends Request> = Extract<ControlReply, { type: (typeof REPLY_TYPE)[R['type']] }>;

export function controlRequest<R extends Request>(socketPath: string, request: R, timeoutMs = DEFAULT_CONTROL_TIMEOUT_MS): Promise<ReplyOf<R>> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws+unix://${socketPath}`, { maxPayload: MAX_SERVER_MESSAGE_BYTES, perMessageDeflate: false });
    const timer = setTimeout(() => finish(new ControlError('TIMEOUT', `no reply from hostinfod within ${timeoutMs} ms`)), timeoutMs);
    let done = false;
    function finish(result: ReplyOf<R> | Error): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.terminate();
      if (result instanceof Error) reject(result);
      else resolve(result);
    }
    ws.on('open', () => ws.send(JSON.stringify({ v: DAEMON_PROTOCOL_VERSION, ...request })));
    ws.on('message', (data) => {
      let reply: unknown;
      try {
        reply = JSON.parse(data.toString());
      } catch {
        return finish(new ControlError('BAD_REPLY', 'the reply of hostinfod is not JSON'));
      }
      const { type, code, message } = reply as { type?: unknown; code?: unknown; message?: unknown };
      if (type === REPLY_TYPE[request.type]) return finish(reply as ReplyOf<R>);
      if (type === 'error' && typeof code === 'string' && typeof message === 'string') return finish(new ControlError(code, message));
      finish(new ControlError('BAD_REPLY', `unexpected reply from hostinfod: ${JSON.stringify(reply).slice(0, 200)}`));
    });
    ws.on('error', (error) => finish(new ControlError((error as NodeJS.ErrnoException).code ?? 'CONNECT', error.message)));
    ws.on('close', () => finish(new ControlError('CLOSED', 'hostinfod closed the connection without a reply')));
  });
}

export function fetchStatus(socketPath: string, timeoutMs = DEFAULT_CONTROL_TIMEOUT_MS): Promise<StatusReply> {
  return controlRequest(socketPath, { type: 'status' }, timeoutMs);
}
