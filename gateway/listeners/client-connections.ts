// The client connections one gateway holds open (explicit proxy and jail hand-overs): the ones
// the gateway ends when it closes, and the bound on how many a jail may hand over at once.
import type net from 'node:net';
import type { GatewayEvents } from '../audit/events.js';

export class ClientConnections {
  private readonly open = new Set<net.Socket>();
  private closed = false;

  constructor(
    private readonly events: GatewayEvents,
    private readonly maxConnections: number,
  ) {}

  /** Remembers a socket its listener accepted (and counted in the `connections` events) already. */
  track(socket: net.Socket): void {
    this.open.add(socket);
    socket.once('close', () => this.open.delete(socket));
  }

  /**
   * Takes a socket handed over from outside any listener (a jail's redirected connection):
   * counted, tracked, and its errors absorbed. False, with the socket destroyed, when the gateway
   * is closing or holds maxConnections already.
   */
  admit(socket: net.Socket): boolean {
    if (this.closed || this.open.size >= this.maxConnections) {
      socket.destroy();
      return false;
    }
    this.track(socket);
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    this.events.emit('connections', { delta: 1 });
    socket.once('close', () => this.events.emit('connections', { delta: -1 }));
    return true;
  }

  /** No socket is admitted from now on (the gateway is closing). */
  stopAdmitting(): void {
    this.closed = true;
  }

  /** Ends every connection; none is admitted from now on. */
  destroyAll(): void {
    this.closed = true;
    for (const socket of this.open) socket.destroy();
  }
}
