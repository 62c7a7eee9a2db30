// A loopback TCP port free at the moment of asking, for test servers that must be told their port
// up front (redis-server, prometheus, tinyproxy, a gateway restarted on the same port).
import net from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolvePort(port));
    });
  });
}
