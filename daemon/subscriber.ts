// One sidecar connection's delivery state. Samples are never queued: a subscriber that cannot take
// the newest one now is owed exactly that, the newest, whenever its socket drains. So a slow reader
// costs the daemon one flag, and it can never hold back the others.

import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { HostItemName } from '../policies/items.js';
import { DAEMON_PROTOCOL, type AccessMessage, type CountersMessage, type HelloMessage, type SidecarFeature } from './messages.js';

/** The VM a sidecar connection belongs to, as the daemon (not the sidecar) knows it. */
export interface SidecarLink {
  readonly id: string;
  /** The decision and settings to send; items are the VM's policy, never what the sidecar asks. */
  access(): AccessMessage;
  hello(message: HelloMessage): void;
  counters(message: CountersMessage): void;
  closed(): void;
}

export class Subscriber {
  readonly ws: WebSocket;
  readonly link: SidecarLink;
  /** The raw socket under ws, whose 'drain' says when an owed sample can go out. */
  readonly socket: Socket;
  items: readonly HostItemName[] = [];
  /** Cache key for the encoded sample: subscribers with the same items share one encoding. */
  key = '';
  /** The newest sample could not be sent for backpressure and is still owed. */
  owed = false;
  /** Clock time at which the socket went over the buffered bound, while it stays over. */
  overSince: number | undefined;
  /** An error frame was sent and the connection is closing: ignore whatever else it sends. */
  closing = false;
  /**
   * The protocol version this connection is written in: the daemon's highest until the sidecar's
   * hello has been negotiated, then the highest both speak.
   */
  version: number = DAEMON_PROTOCOL.max;
  /** The sidecar's hello has fixed `version`. */
  negotiated = false;
  /** What the sidecar's hello said it understands beyond the base protocol. */
  features: readonly SidecarFeature[] = [];
  /** hostinfo-ctl queries sent and not yet answered, by id; all rejected when the connection ends. */
  readonly queries = new Map<number, { readonly resolve: (reply: string) => void; readonly reject: (error: Error) => void }>();

  constructor(ws: WebSocket, link: SidecarLink) {
    this.ws = ws;
    this.link = link;
    // ws does not type its socket; it is set for every server-side connection.
    this.socket = (ws as unknown as { _socket: Socket })._socket;
  }

  grant(items: readonly HostItemName[]): void {
    this.items = items;
    this.key = `${this.version}:${items.join(',')}`;
  }

  /** Bytes written but not yet taken by the kernel: ws's own queue plus the socket's. */
  buffered(): number {
    return this.ws.bufferedAmount;
  }
}
