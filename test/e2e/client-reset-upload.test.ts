// A client that resets its connection in the middle of an upload through a CONNECT tunnel: the
// gateway ends the request at once, logs it, and frees the upstream connection the half-sent upload
// held. It used to keep both until the 120 s idle timeout (node 20 loses the error of a TLS 1.3
// session-ticket write to a client that has reset, and the socket then never closes), and
// `srt-gw serve` stalled once such uploads held every pooled connection to the origin.
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { connectTunnel, tlsOverTunnel } from '../support/raw-tunnel.js';

const skip = capabilityGate(missingCommand('openssl'));
const API = 'api.example.test';
const POLICY = `
version: 1
rules:
  - id: api-all
    host: ${API}
`;
const UPLOADS = 3;
const CHUNK = Buffer.alloc(64 * 1024, 'u');

describe.skipIf(skip !== null)('a client that resets mid-upload', () => {
  let fixture: GatewayFixture;
  beforeAll(async () => {
    fixture = await startGatewayFixture({ policyYaml: POLICY, names: [API] });
  });
  afterAll(async () => {
    await fixture?.close();
  });

  it('gets its request ended and logged at once, not at the idle timeout', async () => {
    const { gateway, upstream, gatewayCa } = fixture;
    const authority = `${API}:${upstream.port}`;
    for (let i = 0; i < UPLOADS; i++) {
      const tunnel = await connectTunnel(gateway.proxyPort, authority);
      expect(tunnel.status).toBe(200);
      const secure = await tlsOverTunnel(tunnel.socket, { servername: API, ca: gatewayCa });
      secure.write(`POST /upload-${i} HTTP/1.1\r\nhost: ${authority}\r\ncontent-length: ${1024 * 1024}\r\n\r\n`);
      for (let k = 0; k < 4; k++) if (!secure.write(CHUNK)) await once(secure, 'drain');
      // A TCP reset on the tunnel's socket, right after the bytes: before the gateway has
      // written anything on this connection since the handshake.
      tunnel.socket.resetAndDestroy();
    }
    for (let i = 0; i < UPLOADS; i++) {
      const line = await gateway.waitForAudit((l) => l.kind === 'request' && l.path === `/upload-${i}`, 10_000);
      expect(line).toMatchObject({ method: 'POST', step: 'upstream', decision: 'error' });
    }
  });
});
