// One connection's delivery state. Samples are never queued: a subscriber that cannot take the
// newest one now is owed exactly that, the newest, whenever its socket drains. So a slow reader
// costs the daemon one flag, and it can never hold back the others.

import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { HostItemName } from '../policies/items.js';
import type { VmIdentity } from './messages.js';

export class Subscriber {
  readonly id: number;
  readonly ws: WebSocket;
  /** The raw socket under ws, whose 'drain' says when an owed sample can go out. */
  readonly socket: Socket;
  vm: VmIdentity | undefined;
  /** Host items granted by the latest hello; undefined until the first hello. */
  items: readonly HostItemName[] | undefined;
  /** Cache key for the encoded sample: subscribers with the same items share one encoding. */
  key = '';
  /** The newest sample could not be sent for backpressure and is still owed. */
  owed = false;
  /** Clock time at which the socket went over the buffered bound, while it stays over. */
  overSince: number | undefined;
  /** An error frame was sent and the connection is closing: ignore whatever else it sends. */
  closing = false;

  constructor(id: number, ws: WebSocket) {
    this.id = id;
    this.ws = ws;
    // ws does not type its socket; it is set for every server-side connection.
    this.socket = (ws as unknown as { _socket: Socket })._socket;
  }

  subscribe(vm: VmIdentity, items: readonly HostItemName[]): void {
    this.vm = vm;
    this.items = items;
    this.key = items.join(',');
    this.owed = false;
    this.overSince = undefined;
  }

  /** Bytes written but not yet taken by the kernel: ws's own queue plus the socket's. */
  buffered(): number {
    return this.ws.bufferedAmount;
  }
}
