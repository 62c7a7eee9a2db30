// gRPC through the gateway: an HTTP/2 client's call (content-type application/grpc, te: trailers)
// reaches the upstream over HTTP/2 with `te: trailers`, and the status the upstream sends in the
// trailers comes back; an injected key echoed in a message or a trailer is masked, and the
// messages keep their length prefixes intact.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialPlaceholders } from '../../policies/credentials.js';
import { parsePolicy } from '../../policies/loader.js';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { connectTunnel, tlsOverTunnel } from '../support/raw-tunnel.js';
import { settledCount } from '../support/settled-count.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('openssl'));

const API = 'api.example.test';
const ENV_NAME = 'SRTGW_E2E_GRPC_API_KEY';
const SECRET = `grpc-key-${randomBytes(12).toString('hex')}`;

const POLICY = `
version: 1
rules:
  - id: grpc-open
    host: ${API}
    methods: [POST]
    paths: ["/grpc.test.Echo/*"]
  - id: grpc-keyed
    host: ${API}
    methods: [POST]
    paths: ["/grpc.test.Keyed/*"]
    credentials:
      header: x-api-key
      inject: { env: ${ENV_NAME} }
  - id: grpc-limited
    host: ${API}
    methods: [POST]
    paths: ["/grpc.test.Limited/*"]
    budget: { requestBytesPerRun: 10000 }
`;

/** One gRPC message: a 0 (uncompressed) flag, a 4-byte big-endian length, the bytes. */
function grpcMessage(payload: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
}

function grpcMessages(body: Buffer): Buffer[] {
  const messages: Buffer[] = [];
  for (let at = 0; at < body.length; ) {
    expect(body[at], 'compressed flag').toBe(0);
    const length = body.readUInt32BE(at + 1);
    messages.push(body.subarray(at + 5, at + 5 + length));
    at += 5 + length;
    expect(at, 'a message runs past the end of the body').toBeLessThanOrEqual(body.length);
  }
  return messages;
}

interface GrpcReply {
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: IncomingHttpHeaders;
}

function grpcCall(session: ClientHttp2Session, authority: string, path: string, body: Buffer, extra: Record<string, string> = {}): Promise<GrpcReply> {
  const stream = session.request({ ':method': 'POST', ':authority': authority, ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra });
  stream.end(body);
  return new Promise((resolve, reject) => {
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (received) => (headers = received));
    stream.on('trailers', (received) => (trailers = received));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve({ headers, body: Buffer.concat(chunks), trailers }));
    stream.on('error', reject);
  });
}

describe.skipIf(skip !== null)('gRPC through the gateway', () => {
  let fixture: GatewayFixture | undefined;
  let upstream: Upstream;
  let gateway: GatewayProcess;
  let session: ClientHttp2Session;
  let authority: string;
  let placeholder: string;

  beforeAll(async () => {
    placeholder = credentialPlaceholders(parsePolicy(POLICY)).get(ENV_NAME) ?? '';
    fixture = await startGatewayFixture({ policyYaml: POLICY, names: [API], env: { [ENV_NAME]: SECRET } });
    ({ upstream, gateway } = fixture);
    authority = `${API}:${upstream.port}`;
    const tunnel = await connectTunnel(gateway.proxyPort, authority);
    expect(tunnel.status).toBe(200);
    const tlsSocket = await tlsOverTunnel(tunnel.socket, { servername: API, ca: fixture.gatewayCa, alpn: ['h2'] });
    session = http2.connect(`https://${authority}`, { createConnection: () => tlsSocket });
    session.on('error', () => undefined);
  });

  afterAll(async () => {
    session?.destroy();
    await fixture?.close();
  });

  it('a call reaches the upstream over HTTP/2 with te: trailers, and its status comes back in the trailers', async () => {
    const messages = [Buffer.from('first message'), randomBytes(20_000)];
    const reply = await grpcCall(session, authority, '/grpc.test.Echo/Say', Buffer.concat(messages.map(grpcMessage)));
    const seen = upstream.received.filter((r) => r.path === '/grpc.test.Echo/Say');
    expect(seen).toHaveLength(1);
    expect(seen[0]?.httpVersion).toBe('2.0');
    expect(seen[0]?.headers.te).toBe('trailers');
    expect(reply.headers[':status']).toBe(200);
    expect(reply.headers['content-type']).toBe('application/grpc');
    expect(reply.trailers['grpc-status']).toBe('0');
    expect(grpcMessages(reply.body)).toEqual(messages);
  });

  it('an injected key echoed in a message and in grpc-message is masked, and every length prefix still fits', async () => {
    const echoed = Buffer.from(`{"key":"${SECRET}"}`);
    const reply = await grpcCall(session, authority, '/grpc.test.Keyed/Say', grpcMessage(echoed), { 'x-api-key': placeholder, 'grpc-accept-encoding': 'gzip' });
    expect(reply.trailers['grpc-status']).toBe('0');
    expect(reply.trailers['grpc-message']).toBe(`echoed; x-api-key=${placeholder}`);
    const [message] = grpcMessages(reply.body);
    expect(message?.length).toBe(echoed.length);
    expect(message?.toString()).not.toContain(SECRET);
    expect(message?.toString()).toMatch(/^\{"key":"[^"]+"\}$/);
    const seen = upstream.received.find((r) => r.path === '/grpc.test.Keyed/Say');
    expect(seen?.headers['x-api-key']).toBe(SECRET);
    // Asked for uncompressed messages: compressed ones could not be searched for the key.
    expect(seen?.headers['grpc-accept-encoding']).toBe('identity');
  });

  it('a call whose streamed messages would cross its rule\'s budget gets 429, and the upstream never gets them whole', async () => {
    const reply = await grpcCall(session, authority, '/grpc.test.Limited/Upload', grpcMessage(randomBytes(30_000)));
    expect(reply.headers[':status']).toBe(429);
    for (const seen of upstream.received.filter((r) => r.path === '/grpc.test.Limited/Upload')) {
      expect(seen.bodyBytes === null || seen.bodyBytes < 30_005).toBe(true);
    }
    expect(await gateway.waitForAudit((entry) => entry.path === '/grpc.test.Limited/Upload')).toMatchObject({ decision: 'deny', step: 'budget', status: 429 });
  });

  it('a call the policy does not allow is refused before the upstream', async () => {
    const reply = await grpcCall(session, authority, '/grpc.test.Admin/Drop', grpcMessage(Buffer.from('x')));
    expect(reply.headers[':status']).toBe(403);
    expect(upstream.received.filter((r) => r.path.startsWith('/grpc.test.Admin'))).toEqual([]);
  });

  it('an upstream that will not speak HTTP/2 (ALPN offers only http/1.1) gets no call; the client gets 502 saying why', async () => {
    const http1Only = await startUpstream({ cert: fixture!.pki.server.cert, key: fixture!.pki.server.key, names: [API], http1Only: true });
    const oldAuthority = `${API}:${http1Only.port}`;
    const tunnel = await connectTunnel(gateway.proxyPort, oldAuthority);
    const tlsSocket = await tlsOverTunnel(tunnel.socket, { servername: API, ca: fixture!.gatewayCa, alpn: ['h2'] });
    const oldSession = http2.connect(`https://${oldAuthority}`, { createConnection: () => tlsSocket });
    oldSession.on('error', () => undefined);
    try {
      const reply = await grpcCall(oldSession, oldAuthority, '/grpc.test.Echo/Say', grpcMessage(Buffer.from('x')));
      expect(reply.headers[':status']).toBe(502);
      expect(reply.headers['x-srt-gw-reason']).toBe(`${API} does not speak HTTP/2, which gRPC needs`);
      expect(http1Only.received).toEqual([]);
    } finally {
      oldSession.destroy();
      await http1Only.close();
    }
  });

  it('a client that stops reading a streaming reply stops the upstream too: the gateway buffers a bounded amount', async () => {
    const before = upstream.grpcBytesWritten;
    const stream = session.request({ ':method': 'POST', ':authority': authority, ':path': '/grpc.test.Echo/Stream?mb=256', 'content-type': 'application/grpc', te: 'trailers' });
    stream.end(grpcMessage(Buffer.from('go')));
    stream.pause();
    try {
      await new Promise((resolve) => stream.once('response', resolve));
      // Written by the upstream while nobody reads: flow-control windows and socket buffers on
      // both sides of the gateway, not the 256 MiB reply. The writes stop (a gateway that drained
      // the upstream into memory, quickly or slowly, would never let them), and what was written
      // by then is bounded.
      const written = await settledCount(() => upstream.grpcBytesWritten - before);
      expect(written).toBeGreaterThan(0);
      expect(written).toBeLessThan(16 * 1024 * 1024);
    } finally {
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }
  });

  it('a status the upstream refuses the call with comes back, and the audit line has it', async () => {
    const reply = await grpcCall(session, authority, '/grpc.test.Echo/Refused', grpcMessage(Buffer.from('x')), { 'x-reply-grpc-status': '7' });
    expect(reply.headers[':status']).toBe(200);
    expect(reply.trailers['grpc-status']).toBe('7');
    expect(await gateway.waitForAudit((entry) => entry.path === '/grpc.test.Echo/Refused')).toMatchObject({ decision: 'allow', status: 200, grpcStatus: 7 });
  });

  it('the audit log has an allowed line per call, under its rule, with the bytes both ways and the gRPC status; every line fits the schema', async () => {
    const line = (path: string) => gateway.waitForAudit((entry) => entry.kind === 'request' && entry.path === path);
    expect(await line('/grpc.test.Echo/Say')).toMatchObject({ decision: 'allow', rule: 'grpc-open', protocol: 'h2', status: 200, bytesIn: 20_023, bytesOut: 20_023, grpcStatus: 0 });
    expect(await line('/grpc.test.Keyed/Say')).toMatchObject({ decision: 'allow', rule: 'grpc-keyed', credential: 'injected', status: 200, grpcStatus: 0 });
    const denied = await line('/grpc.test.Admin/Drop');
    expect(denied).toMatchObject({ decision: 'deny', status: 403 });
    expect(denied.grpcStatus).toBeUndefined();
    const { Ajv2020 } = await import('ajv/dist/2020.js');
    const schema = JSON.parse(readFileSync(new URL('../../docs/audit-log.schema.json', import.meta.url), 'utf8')) as object;
    const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);
    expect((await gateway.auditLines()).filter((entry) => !validate(entry))).toEqual([]);
  });
});
