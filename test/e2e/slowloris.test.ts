// Slowloris: a client that trickles a request head a byte at a time must not hold a connection
// open forever, neither on the proxy listener nor inside a TLS tunnel (where node's header
// timeout only works because the gateway starts its checker itself).
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { connectTunnel, tlsOverTunnel } from '../support/raw-tunnel.js';

const skip = capabilityGate(missingCommand('openssl'));
const API = 'api.example.test';

/** Writes `head` one byte every `everyMs`; resolves with how long the peer took to close. */
function trickle(socket: net.Socket, head: string, everyMs: number, giveUpMs: number): Promise<number | null> {
  const started = Date.now();
  return new Promise((resolve) => {
    let index = 0;
    const timer = setInterval(() => {
      if (socket.destroyed || !socket.writable) return;
      socket.write(head[index % head.length]!);
      index++;
    }, everyMs);
    const giveUp = setTimeout(() => {
      clearInterval(timer);
      socket.destroy();
      resolve(null);
    }, giveUpMs);
    socket.on('error', () => undefined);
    socket.resume();
    socket.once('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve(Date.now() - started);
    });
  });
}

describe.skipIf(skip !== null)('slowloris: request heads must arrive within --header-timeout', () => {
  let gateway: GatewayProcess;

  beforeAll(async () => {
    gateway = await startGatewayProcess({
      policyYaml: `version: 1\nrules:\n  - id: api\n    host: ${API}\n`,
      args: ['--header-timeout', '1', '--resolve', `${API}=127.0.0.1`],
    });
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  // Each byte resets an idle timer, so only the header timeout can end these connections.
  const HEAD = 'GET http://api.example.test/ HTTP/1.1\r\nX-Slow: ' + 'a'.repeat(200);

  it('on the proxy listener', async () => {
    const socket = net.connect(gateway.proxyPort, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const closedAfter = await trickle(socket, HEAD, 100, 8000);
    expect(closedAfter).not.toBeNull();
    expect(closedAfter!).toBeLessThan(5000);
  });

  it('inside a TLS tunnel', async () => {
    const tunnel = await connectTunnel(gateway.proxyPort, `${API}:443`);
    expect(tunnel.status).toBe(200);
    const tlsSocket = await tlsOverTunnel(tunnel.socket, { servername: API, ca: readFileSync(gateway.caPath) });
    const closedAfter = await trickle(tlsSocket, HEAD.replace('http://api.example.test/', '/'), 100, 8000);
    expect(closedAfter).not.toBeNull();
    expect(closedAfter!).toBeLessThan(5000);
  });
});
