// What one jail gets from a gateway (srt-gw run): DNS on a unix socket of its own, and the door
// its redirector hands the program's connections through. Both label what they carry with the
// jail's client label, so a gateway shared by several runs tells their decisions apart.
import type net from 'node:net';
import type { DnsResponder } from '../dns/responder.js';
import { serveDnsOverUnixSocket, type DnsUnixListener } from '../dns/server.js';
import type { ClientConnections } from './client-connections.js';
import type { OriginalDestination } from './proxy-protocol-header.js';
import type { RedirectedConnections } from './redirected-connections.js';

/** What a jail needs from a gateway: its DNS on a unix socket, and a door for redirected connections. */
export interface JailEndpoints {
  /** The `client` of this jail's DNS queries and the prefix of its connections' `client` ("jail:<address>"). */
  readonly clientLabel: string;
  readonly dnsSocket: string;
  /** Serves a socket the jail's redirector handed over, for the address the program dialled. A bound function. */
  readonly acceptRedirected: (socket: net.Socket, destination: OriginalDestination) => void;
  /** Stops the DNS socket and drops this jail's connections. Safe to call twice. */
  close(): Promise<void>;
}

export class JailDoor implements JailEndpoints {
  /** This jail's connections, dropped when it closes (the gateway's others stay). */
  private readonly owned = new Set<net.Socket>();
  private closing: Promise<void> | null = null;

  constructor(
    readonly clientLabel: string,
    readonly dnsSocket: string,
    private readonly dns: DnsUnixListener,
    private readonly connections: ClientConnections,
    private readonly redirected: RedirectedConnections,
    /** Called once when this door closes. */
    private readonly onClose: (door: JailDoor) => void,
  ) {}

  readonly acceptRedirected = (socket: net.Socket, destination: OriginalDestination): void => {
    if (this.closing !== null) {
      socket.destroy();
      return;
    }
    if (!this.connections.admit(socket)) return;
    this.owned.add(socket);
    socket.once('close', () => this.owned.delete(socket));
    this.redirected.route(socket, destination, this.clientLabel);
  };

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.onClose(this);
      for (const socket of this.owned) socket.destroy();
      await this.dns.close();
    })();
    return this.closing;
  }
}

/** The doors one gateway has opened for jails, all closed with the gateway. */
export class JailDoors {
  private readonly doors = new Set<JailDoor>();

  constructor(
    private readonly dnsResponder: DnsResponder,
    private readonly connections: ClientConnections,
    private readonly redirected: RedirectedConnections,
  ) {}

  /** Serves DNS on `dnsSocket` (mode 0600) for one jail, whose queries and connections are labelled `clientLabel`. */
  async open(dnsSocket: string, clientLabel: string): Promise<JailEndpoints> {
    const dns = await serveDnsOverUnixSocket(this.dnsResponder, dnsSocket, { clientLabel });
    const door = new JailDoor(clientLabel, dnsSocket, dns, this.connections, this.redirected, (closed) => this.doors.delete(closed));
    this.doors.add(door);
    return door;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.doors].map((door) => door.close()));
  }
}
