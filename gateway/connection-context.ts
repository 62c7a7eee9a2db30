// What the gateway knows about one client connection before any request arrives: which host
// and port the tunnel was opened for. Every request on the connection is checked against it.
import type net from 'node:net';

export interface ConnectionContext {
  /** Short id shared by the connection's audit lines. */
  readonly id: string;
  /** Client address as "ip:port" (for the transparent mode: the jail side). */
  readonly client: string;
  /** Normalised host the tunnel is for (CONNECT target, or the name behind a synthetic address). */
  readonly host: string;
  readonly port: number;
  /** "https" once TLS is terminated on it; "http" for plain HTTP inside a tunnel or absolute-form. */
  scheme: 'http' | 'https';
  /**
   * Policy client id the connection authenticated as (explicit proxy with a `clients:` section).
   * Set once for a CONNECT tunnel and shared by every request inside it; undefined when the
   * policy names no clients or for the jail's redirected connections.
   */
  clientId?: string;
}

let nextConnectionId = 0;
let connectionIdPrefix = 'c';

/**
 * Each worker of `srt-gw serve --workers` counts its own connections: its prefix (`w3-c`) keeps
 * the ids in the shared audit log unique and says which worker served the connection.
 */
export function setConnectionIdPrefix(prefix: string): void {
  connectionIdPrefix = `${prefix}c`;
}

export function newConnectionId(): string {
  nextConnectionId = (nextConnectionId + 1) % Number.MAX_SAFE_INTEGER;
  return `${connectionIdPrefix}${nextConnectionId.toString(36)}`;
}

export function describeClient(socket: net.Socket): string {
  const address = socket.remoteAddress ?? 'unix';
  return socket.remotePort === undefined ? address : `${address}:${socket.remotePort}`;
}

/** Formats host:port for Host headers and messages, bracketing IPv6 literals. */
export function formatAuthority(host: string, port: number, defaultPort?: number): string {
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return port === defaultPort ? shownHost : `${shownHost}:${port}`;
}
