// WebSocket upgrades are policy-checked like any request and then relayed both ways: inside a
// CONNECT tunnel (wss) and as absolute-form plain HTTP (ws).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { connectRaw, openTlsTunnel, type RawConnection } from '../support/raw-tunnel.js';
import type { Upstream } from '../support/upstream.js';
import { encodeFrame, newWebsocketKey, OPCODE, websocketAccept } from '../support/websocket-frames.js';

const skip = capabilityGate(missingCommand('openssl'));

const API = 'api.example.test';

const POLICY = `
version: 1
rules:
  - id: ws-allowed
    host: ${API}
    paths: ["/ws"]
  - id: ws-admin-deny
    host: ${API}
    paths: ["/admin/**"]
    action: deny
`;

function upgradeRequest(target: string, host: string, key: string): string {
  return (
    `GET ${target} HTTP/1.1\r\n` +
    `Host: ${host}\r\n` +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    `Sec-WebSocket-Key: ${key}\r\n` +
    'Sec-WebSocket-Version: 13\r\n\r\n'
  );
}

/** Upgrade, then text, binary (16-bit length) and close frames round-trip through the relay. */
async function expectEchoingWebsocket(conn: RawConnection, target: string, host: string): Promise<void> {
  const key = newWebsocketKey();
  conn.write(upgradeRequest(target, host, key));
  const response = await conn.readResponse();
  expect(response.status).toBe(101);
  expect(response.headers.upgrade?.toLowerCase()).toBe('websocket');
  expect(response.headers['sec-websocket-accept']).toBe(websocketAccept(key));

  conn.write(encodeFrame(OPCODE.text, Buffer.from('hello through the gateway'), true));
  const text = await conn.readFrame();
  expect(text.opcode).toBe(OPCODE.text);
  expect(text.payload.toString()).toBe('hello through the gateway');

  const binary = randomBytes(300);
  conn.write(encodeFrame(OPCODE.binary, binary, true));
  const echoed = await conn.readFrame();
  expect(echoed.opcode).toBe(OPCODE.binary);
  expect(echoed.payload.equals(binary)).toBe(true);

  conn.write(encodeFrame(OPCODE.close, Buffer.from([0x03, 0xe8]), true));
  const close = await conn.readFrame();
  expect(close.opcode).toBe(OPCODE.close);
}

describe.skipIf(skip !== null)('WebSocket through the gateway', () => {
  let fixture: GatewayFixture | undefined;
  let upstream: Upstream;
  let plainUpstream: Upstream;
  let gateway: GatewayProcess;
  let gatewayCa: string;

  beforeAll(async () => {
    fixture = await startGatewayFixture({ policyYaml: POLICY, names: [API], plainUpstream: true });
    ({ upstream, gateway, gatewayCa } = fixture);
    plainUpstream = fixture.plainUpstream!;
  });

  afterAll(async () => {
    await fixture?.close();
  });

  describe('wss (inside a CONNECT tunnel)', () => {
    it('an allowed upgrade is relayed and frames echo both ways', async () => {
      const authority = `${API}:${upstream.port}`;
      const conn = await openTlsTunnel(gateway.proxyPort, authority, { ca: gatewayCa, alpn: ['http/1.1'] });
      try {
        await expectEchoingWebsocket(conn, '/ws', authority);
      } finally {
        conn.destroy();
      }
      const upgrades = upstream.received.filter((r) => r.websocket);
      expect(upgrades.map((r) => r.path)).toEqual(['/ws']);
      expect(upgrades[0]?.servername).toBe(API);
      expect(upstream.websocketFrames).toBeGreaterThanOrEqual(3);
    });

    it.each([
      ['a deny rule', '/admin/ws'],
      ['no rule (default deny)', '/other-ws'],
    ])('an upgrade to a path %s matches → 403, and the upstream never sees it', async (_label, path) => {
      const authority = `${API}:${upstream.port}`;
      const conn = await openTlsTunnel(gateway.proxyPort, authority, { ca: gatewayCa, alpn: ['http/1.1'] });
      try {
        conn.write(upgradeRequest(path, authority, newWebsocketKey()));
        const response = await conn.readResponse();
        expect(response.status).toBe(403);
        expect(response.headers['x-srt-gw-reason']).toBeTruthy();
      } finally {
        conn.destroy();
      }
      expect(upstream.received.filter((r) => r.path === path)).toEqual([]);
    });
  });

  describe('ws (absolute-form plain HTTP)', () => {
    it('an allowed upgrade is relayed and frames echo both ways', async () => {
      const authority = `${API}:${plainUpstream.port}`;
      const conn = await connectRaw(gateway.proxyPort);
      try {
        await expectEchoingWebsocket(conn, `http://${authority}/ws`, authority);
      } finally {
        conn.destroy();
      }
      expect(plainUpstream.received.filter((r) => r.websocket).map((r) => r.path)).toEqual(['/ws']);
    });

    it('an upgrade to a denied path → 403, and the upstream never sees it', async () => {
      const authority = `${API}:${plainUpstream.port}`;
      const conn = await connectRaw(gateway.proxyPort);
      try {
        conn.write(upgradeRequest(`http://${authority}/admin/ws`, authority, newWebsocketKey()));
        expect((await conn.readResponse()).status).toBe(403);
      } finally {
        conn.destroy();
      }
      expect(plainUpstream.received.filter((r) => r.path.startsWith('/admin'))).toEqual([]);
    });
  });
});
