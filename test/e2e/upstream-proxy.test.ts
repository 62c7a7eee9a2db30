// --upstream-proxy through a real CONNECT proxy (tinyproxy): https, plain http and HTTP/2 (gRPC)
// leave through the proxy's tunnels, TLS verified inside them; the gateway still decides, resolves
// and checks each destination first, so a denied host or a private address never reaches the
// proxy; the proxy's failures (its credentials refused, its filter, the proxy down) are 502s with
// stable codes in the body and the audit line; `srt-gw run --upstream-proxy` works from a jail and
// lists a proxy failure in its end-of-run summary.
// tinyproxy resolves names itself: it runs in a private mount namespace whose /etc/hosts maps the
// test names to 127.0.0.1, where the upstreams listen (as the gateway's --resolve pins do).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { curlThroughProxy, startGatewayProcess, type AuditLine, type GatewayProcess } from '../support/gateway-process.js';
import { describeRun, runInJailCli } from '../support/jail-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type EchoResponse, type Upstream } from '../support/upstream.js';
import { freePort } from '../support/free-port.js';

const skip = capabilityGate(missingRoot(), missingCommand('tinyproxy'), missingCommand('unshare'), missingCommand('curl'), missingCommand('openssl'));
const skipJail = capabilityGate(skip, missingCommand('bwrap'), missingCommand('nft'));

const API = 'api.example.test';
const PLAIN = 'plain.example.test';
/** Allowed by the gateway's policy, refused by the proxy's own filter (403). */
const FILTERED = 'filtered.example.test';
/** No rule allows it: the gateway answers 403 and never asks the proxy. */
const DENIED = 'denied.example.test';
/** Allowed by a rule, but resolves (through the gateway's /etc/hosts) to loopback, which no rule opens. */
const PRIVATE = 'private.example.test';
/** Opaque TCP (a `protocol: tcp` rule) from the jail: relayed through a tunnel too. */
const TCP = 'tcp.example.test';

const POLICY = `
version: 1
rules:
  - id: api
    host: ${API}
  - id: plain
    host: ${PLAIN}
  - id: filtered
    host: ${FILTERED}
  - id: private
    host: ${PRIVATE}
`;

const PROXY_USER = 'alice';
const PROXY_PASSWORD = 's3cret-proxy-pw';

interface UpstreamFailureBody {
  error: string;
  code: string;
  reason: string;
}

interface Tinyproxy {
  url: string;
  /** What tinyproxy logged so far (LogLevel Connect: one "Request ... CONNECT host:port" line per tunnel). */
  log(): string;
  /** The CONNECT requests it received, as "host:port". */
  connects(): string[];
  stop(): Promise<void>;
}

/** A tinyproxy on 127.0.0.1 that resolves names through `hostsFile`; optionally with Basic auth and a domain filter. */
async function startTinyproxy(dir: string, hostsFile: string, options: { auth?: boolean; filter?: string[] } = {}): Promise<Tinyproxy> {
  const port = await freePort();
  mkdirSync(dir, { recursive: true });
  const config = [`Port ${port}`, 'Listen 127.0.0.1', 'Timeout 30', 'LogLevel Connect', 'MaxClients 100'];
  if (options.auth) config.push(`BasicAuth ${PROXY_USER} ${PROXY_PASSWORD}`);
  if (options.filter) {
    writeFileSync(join(dir, 'filter'), options.filter.map((name) => `${name.replace(/\./g, '\\.')}\n`).join(''));
    config.push(`Filter "${join(dir, 'filter')}"`);
  }
  writeFileSync(join(dir, 'tinyproxy.conf'), `${config.join('\n')}\n`);
  const child: ChildProcess = spawn('unshare', ['-m', 'sh', '-c', `mount --bind "${hostsFile}" /etc/hosts && exec tinyproxy -d -c "${join(dir, 'tinyproxy.conf')}"`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  // Ready once it accepts connections.
  for (let attempt = 0; ; attempt++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) break;
    if (attempt > 100 || child.exitCode !== null) throw new Error(`tinyproxy did not start:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    log: () => output,
    connects: () => [...output.matchAll(/Request \(file descriptor \d+\): CONNECT (\S+) HTTP/g)].map((match) => match[1]!),
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

describe.skipIf(skip !== null)('--upstream-proxy: allowed traffic leaves through a CONNECT proxy', () => {
  let dir: string;
  let pki: TestPki;
  let https: Upstream;
  let plain: Upstream;
  let openProxy: Tinyproxy;
  let authProxy: Tinyproxy;
  let deadProxyUrl: string;
  let gateway: GatewayProcess;
  let goodCredentials: GatewayProcess;
  let badCredentials: GatewayProcess;
  let proxyDown: GatewayProcess;
  const gateways: GatewayProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'srt-gw-upstream-proxy-'));
    pki = createTestPki([API, FILTERED]);
    https = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API, FILTERED] });
    plain = await startUpstream({ plain: true, names: [PLAIN] });
    const hostsFile = join(dir, 'hosts');
    writeFileSync(hostsFile, `127.0.0.1 localhost\n${[API, PLAIN, FILTERED, DENIED, PRIVATE, TCP].map((name) => `127.0.0.1 ${name}`).join('\n')}\n`);
    openProxy = await startTinyproxy(join(dir, 'open'), hostsFile, { filter: [FILTERED] });
    authProxy = await startTinyproxy(join(dir, 'auth'), hostsFile, { auth: true });
    deadProxyUrl = `http://127.0.0.1:${await freePort()}`;
    const pins = [API, PLAIN, FILTERED].flatMap((name) => ['--resolve', `${name}=127.0.0.1`]);
    const common = ['--upstream-ca', pki.ca.certPath, ...pins];
    // PRIVATE resolves through this /etc/hosts (no pin): to loopback, which the gateway refuses.
    const wrapper = ['unshare', '-m', 'sh', '-c', `mount --bind "${hostsFile}" /etc/hosts && exec "$0" "$@"`];
    gateway = await startGatewayProcess({ policyYaml: POLICY, args: [...common, '--upstream-proxy', openProxy.url], wrapper });
    goodCredentials = await startGatewayProcess({ policyYaml: POLICY, args: [...common, '--upstream-proxy', authProxy.url], env: { SRT_GW_UPSTREAM_PROXY_AUTH: `${PROXY_USER}:${PROXY_PASSWORD}` } });
    badCredentials = await startGatewayProcess({ policyYaml: POLICY, args: [...common, '--upstream-proxy', authProxy.url], env: { SRT_GW_UPSTREAM_PROXY_AUTH: `${PROXY_USER}:wrong` } });
    proxyDown = await startGatewayProcess({ policyYaml: POLICY, args: [...common, '--upstream-proxy', deadProxyUrl] });
    gateways.push(gateway, goodCredentials, badCredentials, proxyDown);
  });

  afterAll(async () => {
    for (const started of gateways) await started.stop();
    await openProxy?.stop();
    await authProxy?.stop();
    await https?.close();
    await plain?.close();
    pki?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const upstreamFailure = async (target: GatewayProcess, url: string, code: string) => {
    const res = await curlThroughProxy(target, [url]);
    expect(res.status).toBe(502);
    const body = res.json<UpstreamFailureBody>();
    expect(body).toMatchObject({ error: 'upstream', code });
    const line = await target.waitForAudit((entry: AuditLine) => entry.kind === 'request' && entry.status === 502 && entry.code === code);
    expect(line).toMatchObject({ decision: 'error', step: 'upstream', code });
    return body;
  };

  it('https goes through a CONNECT to host:port, and TLS inside the tunnel is verified as direct (SNI = the host)', async () => {
    const res = await curlThroughProxy(gateway, [https.url('/through-proxy')]);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(200);
    expect(res.json<EchoResponse>()).toMatchObject({ path: '/through-proxy', servername: API });
    expect(openProxy.connects()).toContain(`${API}:${https.port}`);
  });

  it('plain http goes through a CONNECT too', async () => {
    const res = await curlThroughProxy(gateway, [plain.url('/plain-through-proxy')]);
    expect(res.status).toBe(200);
    expect(res.json<EchoResponse>()).toMatchObject({ path: '/plain-through-proxy' });
    expect(openProxy.connects()).toContain(`${PLAIN}:${plain.port}`);
  });

  it('HTTP/2 to the upstream (a gRPC call) runs inside the tunnel, ALPN h2', async () => {
    const message = Buffer.concat([Buffer.from([0, 0, 0, 0, 5]), Buffer.from('hello')]);
    const before = openProxy.connects().length;
    const res = await curlThroughProxy(gateway, ['--http2', '-H', 'content-type: application/grpc', '-H', 'te: trailers', https.url('/grpc.test.Echo/Say')], { input: message });
    // The upstream answers 505 to a gRPC call that reached it over HTTP/1.1.
    expect(res.status).toBe(200);
    expect(res.httpVersion).toBe('2');
    // The status is in the trailers, which only an HTTP/2 upstream sends.
    expect(res.headerBlocks.join('\n')).toContain('grpc-status: 0');
    expect(https.received.find((r) => r.path === '/grpc.test.Echo/Say')?.httpVersion).toBe('2.0');
    expect(openProxy.connects().slice(before)).toContain(`${API}:${https.port}`);
  });

  it('a host no rule allows is denied by the gateway and never reaches the proxy', async () => {
    const res = await curlThroughProxy(gateway, [`http://${DENIED}:${plain.port}/never`]);
    expect(res.status).toBe(403);
    expect(openProxy.log()).not.toContain(DENIED);
  });

  it('an allowed name that resolves to a private address is refused by the gateway before the proxy is asked', async () => {
    const res = await curlThroughProxy(gateway, [`http://${PRIVATE}:${plain.port}/private`]);
    expect(res.status).toBe(403);
    expect(res.json<{ code: string }>().code).toBe('private-destination');
    expect(openProxy.log()).not.toContain(PRIVATE);
  });

  it("the proxy's own filter (403 to CONNECT) is upstream-proxy-denied", async () => {
    const body = await upstreamFailure(gateway, https.url('/filtered', FILTERED), 'upstream-proxy-denied');
    expect(body.reason).toContain(FILTERED);
  });

  it('Basic credentials from SRT_GW_UPSTREAM_PROXY_AUTH are accepted by the proxy', async () => {
    const res = await curlThroughProxy(goodCredentials, [https.url('/with-credentials')]);
    expect(res.status).toBe(200);
    expect(authProxy.connects()).toContain(`${API}:${https.port}`);
  });

  it('wrong credentials are upstream-proxy-auth-failed, and the password is in neither the body nor the audit line', async () => {
    const body = await upstreamFailure(badCredentials, https.url('/bad-credentials'), 'upstream-proxy-auth-failed');
    expect(JSON.stringify(body)).not.toContain('wrong');
    expect(JSON.stringify(await badCredentials.auditLines())).not.toContain(`${PROXY_USER}:wrong`);
  });

  it('a proxy that is down is upstream-proxy-refused, never a direct connection', async () => {
    const before = https.received.length;
    await upstreamFailure(proxyDown, https.url('/proxy-down'), 'upstream-proxy-refused');
    await upstreamFailure(proxyDown, plain.url('/proxy-down-plain'), 'upstream-proxy-refused');
    expect(https.received.length).toBe(before);
  });

  it.skipIf(skipJail !== null)('srt-gw run --upstream-proxy: a jailed curl reaches the upstream through the proxy; a proxy failure is in the summary', async () => {
    const cwd = join(dir, 'jail-cwd');
    mkdirSync(cwd, { recursive: true });
    const caDir = join(dir, 'jail-ca');
    const policyYaml = `${POLICY}  - { id: raw-tcp, host: ${TCP}, protocol: tcp, port: ${plain.port} }\n`;
    const good = await runInJailCli({
      cwd,
      caDir,
      policyYaml,
      // The second request is opaque TCP to the gateway (the tcp rule): it is relayed, not read.
      command: ['sh', '-c', `curl -sS --max-time 15 ${https.url('/from-jail')} && echo && curl -sS --max-time 15 http://${TCP}:${plain.port}/opaque-tcp`],
      upstreamCa: [pki.ca.certPath],
      resolveToLoopback: [API, TCP],
      extraArgs: ['--upstream-proxy', openProxy.url],
    });
    expect(good.code, describeRun(good)).toBe(0);
    const [first, second] = good.stdout.split('\n');
    expect(JSON.parse(first!)).toMatchObject({ path: '/from-jail', servername: API });
    expect(JSON.parse(second!)).toMatchObject({ path: '/opaque-tcp' });
    expect(openProxy.connects()).toContain(`${API}:${https.port}`);
    expect(openProxy.connects()).toContain(`${TCP}:${plain.port}`);
    const bad = await runInJailCli({
      cwd,
      caDir,
      policyYaml,
      command: ['curl', '-sS', '--max-time', '15', '-o', '/dev/null', '-w', '%{http_code}', https.url('/from-jail-proxy-down')],
      upstreamCa: [pki.ca.certPath],
      resolveToLoopback: [API],
      extraArgs: ['--upstream-proxy', deadProxyUrl],
    });
    expect(bad.stdout, describeRun(bad)).toBe('502');
    expect(bad.audit).toContainEqual(expect.objectContaining({ kind: 'request', status: 502, code: 'upstream-proxy-refused' }));
    expect(bad.stderr).toContain('allowed, but the upstream failed');
    expect(bad.stderr).toContain('the upstream proxy could not be reached');
  });
});
