// The transparent listener (`srt-gw serve --transparent PATH`): a unix socket that only a jail's
// redirector can reach. Every connection starts with a PROXY v2 header naming the address the
// sandboxed program dialled; the rest is a redirected connection like any other.
import { chmodSync, rmSync } from 'node:fs';
import net from 'node:net';
import type { GatewayEvents } from '../audit/events.js';
import type { GatewayLimits } from '../limits.js';
import { loadProxyHeaderParser, readProxyHeader } from './proxy-protocol-header.js';
import type { RedirectedConnections } from './redirected-connections.js';

export interface TransparentSocketOptions {
  socketPath: string;
  redirected: RedirectedConnections;
  events: GatewayEvents;
  limits: GatewayLimits;
}

export async function startTransparentListener(options: TransparentSocketOptions): Promise<net.Server> {
  await loadProxyHeaderParser();
  const { events, redirected } = options;
  const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => {
    socket.on('error', () => undefined);
    events.emit('connections', { delta: 1 });
    socket.once('close', () => events.emit('connections', { delta: -1 }));
    socket.resume();
    readProxyHeader(socket, options.limits.headersTimeoutMs).then(
      ({ destination, rest }) => redirected.route(socket, destination, 'jail', rest),
      () => socket.destroy(),
    );
  });
  server.maxConnections = options.limits.maxConnections;
  rmSync(options.socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // SECURITY: only the gateway's user may connect (the jail mounts nothing of this directory;
  // the mode is a second line) — no sandboxed process can forge a PROXY header.
  chmodSync(options.socketPath, 0o600);
  return server;
}
