// The explicit proxy listener: CONNECT host:port (tunnels, checked before anything is resolved)
// and absolute-form plain HTTP requests. Everything after the tunnel opens is the terminator's.
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import type { ClientAuthentication, ClientAuthenticationInput } from '../../identity/authenticate-client.js';
import type { Duplex } from 'node:stream';
import { normalizeHost } from '../../policies/host.js';
import type { ReasonCode } from '../../reason-codes.js';
import type { CompiledPolicy } from '../../policies/match.js';
import { describeClient, newConnectionId, type ConnectionContext } from '../connection-context.js';
import type { ConnectEvent, GatewayEvents } from '../audit/events.js';
import { splitAuthority } from '../http/exchange.js';
import type { GatewayLimits } from '../limits.js';
import type { RequestPipeline } from '../http/request-pipeline.js';
import { denialResponse, proxyAuthenticationResponse, writeRawResponse } from '../http/responses.js';
import type { PolicyClients } from '../policy-clients.js';
import { answerParseError } from '../http/parse-errors.js';
import type { TunnelTerminator } from '../tls/tunnel-terminator.js';
import { isUnknownHost, type UnknownHostQuestions } from '../unknown-host.js';

export interface ExplicitProxyOptions {
  currentPolicy(): CompiledPolicy;
  terminator: TunnelTerminator;
  pipeline: RequestPipeline;
  events: GatewayEvents;
  limits: GatewayLimits;
  monitor: boolean;
  /** Asks about hosts no rule mentions (the library's onUnknownHost); null: they are denied. */
  unknownHosts?: UnknownHostQuestions | null;
  /** The policy's clients when requests must authenticate (`clients:`); null or absent: none do. */
  clients?: () => PolicyClients | null;
  /** Listen with TLS (an HTTPS proxy); with `ca`, client certificates are asked for and checked against it. */
  tls?: ExplicitProxyTls;
}

export interface ExplicitProxyTls {
  cert: string | Buffer;
  key: string | Buffer;
  /** CA certificates client certificates must chain to (mTLS clients). */
  ca?: string | Buffer;
}

export function createExplicitProxyServer(options: ExplicitProxyOptions): http.Server {
  const { events, limits } = options;
  const connectionIds = new WeakMap<object, string>();
  const clientsInForce = options.clients ?? noClients;
  const serverOptions: http.ServerOptions = {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: 0,
    noDelay: true,
    // SECURITY: node checks headersTimeout only every connectionsCheckingInterval (30 s by
    // default), which let a slowloris client keep a connection 3x longer than the limit —
    // test/e2e/slowloris.test.ts
    connectionsCheckingInterval: 1000,
  };
  // An HTTPS proxy: node's https server answers CONNECT like the http one, and the tunnel's own
  // TLS (to the gateway's leaf) runs inside this TLS. A client certificate that does not verify
  // is let through the handshake so that the refusal is a 407 with a reason, not a reset.
  const server: http.Server = options.tls
    ? (https.createServer({ ...serverOptions, cert: options.tls.cert, key: options.tls.key, ...(options.tls.ca ? { ca: options.tls.ca, requestCert: true, rejectUnauthorized: false } : {}) }))
    : http.createServer(serverOptions);
  server.maxConnections = limits.maxConnections;
  server.setTimeout(limits.idleTimeoutMs, (socket) => socket.destroy());

  server.on('connection', (socket: net.Socket) => {
    socket.on('error', () => undefined);
    connectionIds.set(socket, newConnectionId());
    events.emit('connections', { delta: 1 });
    socket.once('close', () => events.emit('connections', { delta: -1 }));
  });
  // On an HTTPS proxy, requests and CONNECTs come on the TLS socket, not the TCP one counted above.
  if (options.tls) {
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      socket.on('error', () => undefined);
      connectionIds.set(socket, newConnectionId());
    });
  }

  server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const connId = connectionIds.get(socket) ?? newConnectionId();
    const client = describeClient(socket as net.Socket);
    const target = parseConnectTarget(req.url ?? '');
    if (!target) {
      const reason = 'CONNECT target must be host:port';
      events.emit('connect', { kind: 'connect', conn: connId, client, host: '-', port: 0, decision: 'deny', rule: null, reason, code: 'malformed-request' });
      writeRawResponse(socket, denialResponse(400, null, reason, 'malformed-request'));
      return;
    }
    const clients = clientsInForce();
    if (clients === null) {
      decideConnect(socket, head, connId, client, target, undefined);
      return;
    }
    // SECURITY: the tunnel is authenticated once, here, and every request inside it (which
    // carries no Proxy-Authorization) is the client's — test/e2e/serve-clients.test.ts
    authenticateClient(clients, req, socket, (authentication) => {
      if (authentication.ok) {
        decideConnect(socket, head, connId, client, target, authentication.clientId);
        return;
      }
      events.emit('connect', { kind: 'connect', conn: connId, client, host: target.host, port: target.port, decision: 'deny', rule: null, reason: authentication.reason, code: authentication.code });
      writeRawResponse(socket, proxyAuthenticationResponse(authentication.code, authentication.challenge));
    });
  });

  const decideConnect = (socket: Duplex, head: Buffer, connId: string, client: string, target: { host: string; port: number }, clientId: string | undefined) => {
    // SECURITY: decide on the name alone, before any lookup, so a denied name never reaches a
    // DNS server (no DNS exfiltration through the proxy) — test/e2e/no-dns-on-deny.test.ts
    const fullPolicy = options.currentPolicy();
    const policy = clientId === undefined ? fullPolicy : (clientsInForce()?.policyFor(clientId) ?? fullPolicy);
    const admitted = policy.couldAllowHost(target.host, target.port);
    const open = (rule: string | null, reason: string, code: ReasonCode) => {
      const event: ConnectEvent = { kind: 'connect', conn: connId, client, host: target.host, port: target.port, decision: admitted || rule !== null ? 'allow' : 'deny', rule, reason, code };
      const context: ConnectionContext = { id: connId, client, host: target.host, port: target.port, scheme: 'https' };
      if (clientId !== undefined) event.clientId = context.clientId = clientId;
      events.emit('connect', event);
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      options.terminator.accept(socket, context, head);
    };
    if (!admitted && !options.monitor) {
      const reason = `no rule allows host ${target.host} on port ${target.port}`;
      const refuse = (why: string, code: ReasonCode = 'host-not-allowed') => {
        const event: ConnectEvent = { kind: 'connect', conn: connId, client, host: target.host, port: target.port, decision: 'deny', rule: 'default-deny', reason: why, code };
        if (clientId !== undefined) event.clientId = clientId;
        events.emit('connect', event);
        writeRawResponse(socket, denialResponse(403, 'default-deny', why, code));
      };
      if (policy !== fullPolicy && fullPolicy.couldAllowHost(target.host, target.port)) {
        refuse(`rules allow host ${target.host} on port ${target.port}, but none client ${clientId} may use (its rules: in clients:)`, 'rule-not-for-client');
        return;
      }
      const unknownHosts = options.unknownHosts;
      if (unknownHosts && isUnknownHost(policy, target.host, target.port)) {
        // The client waits for the CONNECT answer while the harness is asked; nothing is
        // resolved or connected before a yes.
        void unknownHosts.ask(target.host, target.port).then((answer) => {
          if (socket.destroyed) return;
          if (answer.approved) open(answer.ruleId, 'approved for this run by onUnknownHost; each request is checked', 'approved-unknown-host');
          else refuse(`${reason}, and ${answer.reason}`);
        });
        return;
      }
      refuse(reason);
      return;
    }
    if (admitted) open(null, 'some rule may allow requests to this host; each request is checked', 'checked-per-request');
    else open(null, 'monitor mode: no rule allows this host', 'monitor-mode');
  };

  /** An absolute-form request or upgrade of a policy with clients: authenticated on its own. */
  const handleAuthenticated = (clients: PolicyClients, req: http.IncomingMessage, socket: Duplex, handle: (clientId: string) => void, refuse: (code: ReasonCode, challenge: string) => void) => {
    authenticateClient(clients, req, socket, (authentication) => {
      if (authentication.ok) {
        handle(authentication.clientId);
        return;
      }
      options.pipeline.refuseUnauthenticated(req, connectionIds.get(socket) ?? '-', absoluteFormTarget(req.url ?? ''), authentication.code, authentication.reason);
      refuse(authentication.code, authentication.challenge);
    });
  };

  // Absolute-form requests for a host no rule mentions wait for onUnknownHost's answer; the
  // pipeline then decides as always (an approval is a rule of the policy by then).
  const afterAsking = (req: http.IncomingMessage, handle: () => void) => {
    const target = options.unknownHosts && !options.monitor ? absoluteFormTarget(req.url ?? '') : null;
    if (!target || !options.unknownHosts || !isUnknownHost(options.currentPolicy(), target.host, target.port)) {
      handle();
      return;
    }
    void options.unknownHosts.ask(target.host, target.port).then(() => {
      if (!req.socket.destroyed) handle();
    });
  };
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const clients = clientsInForce();
    // Without clients: the path as it always was, no authentication work and nothing allocated for it.
    if (clients === null) {
      afterAsking(req, () => options.pipeline.handleRequest(req, res, null, connectionIds.get(req.socket) ?? '-'));
      return;
    }
    handleAuthenticated(
      clients,
      req,
      req.socket,
      (clientId) => afterAsking(req, () => options.pipeline.handleRequest(req, res, null, connectionIds.get(req.socket) ?? '-', clientId)),
      (code, challenge) => {
        const response = proxyAuthenticationResponse(code, challenge);
        res.writeHead(response.status, response.headers).end(response.body);
        req.resume();
      },
    );
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const clients = clientsInForce();
    if (clients === null) {
      afterAsking(req, () => options.pipeline.handleUpgrade(req, socket, head, null, connectionIds.get(socket) ?? '-'));
      return;
    }
    handleAuthenticated(
      clients,
      req,
      socket,
      (clientId) => afterAsking(req, () => options.pipeline.handleUpgrade(req, socket, head, null, connectionIds.get(socket) ?? '-', clientId)),
      (code, challenge) => writeRawResponse(socket, proxyAuthenticationResponse(code, challenge)),
    );
  });
  server.on('clientError', (error: Error & { code?: string }, socket: Duplex) => {
    answerParseError(error, socket, undefined, events);
  });
  return server;
}

const noClients = (): null => null;

/**
 * Asks the authenticator who sent `req`: synchronously when it can tell (static tokens,
 * certificates, recently verified JWTs), else once its answer comes, if the client is still there.
 */
function authenticateClient(clients: PolicyClients, req: http.IncomingMessage, socket: Duplex, settle: (authentication: ClientAuthentication) => void): void {
  const input = authenticationInput(req, socket);
  const known = clients.authenticator.authenticateSync(input);
  if (known !== undefined) {
    settle(known);
    return;
  }
  void clients.authenticator.authenticate(input).then((authentication) => {
    if (!socket.destroyed) settle(authentication);
  });
}

function authenticationInput(req: http.IncomingMessage, socket: Duplex): ClientAuthenticationInput {
  // SECURITY: every Proxy-Authorization value, from rawHeaders (node's headers keeps only the
  // first), so that a second one is refused rather than ignored — test/e2e/serve-clients.test.ts
  const values: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 19 && raw[i]!.toLowerCase() === 'proxy-authorization') values.push(raw[i + 1]!);
  }
  const tlsSocket = socket as Partial<tls.TLSSocket>;
  const certificate = typeof tlsSocket.getPeerX509Certificate === 'function' ? tlsSocket.getPeerX509Certificate() : undefined;
  return {
    proxyAuthorization: values.length === 0 ? undefined : values.length === 1 ? values[0] : values,
    peerCertificate: certificate === undefined ? undefined : { certificate, authorized: tlsSocket.authorized === true },
  };
}

function parseConnectTarget(target: string): { host: string; port: number } | null {
  const parts = splitAuthority(target);
  if (!parts || parts.port === null) return null;
  const host = normalizeHost(parts.host);
  return host ? { host, port: parts.port } : null;
}

/** host and port of an absolute-form request target (http://host[:port]/...), else null (the pipeline judges it). */
function absoluteFormTarget(target: string): { host: string; port: number } | null {
  const match = /^(https?|wss?):\/\/([^/?#]*)/i.exec(target);
  if (!match || match[2]!.includes('@')) return null;
  const parts = splitAuthority(match[2]!);
  const host = parts && normalizeHost(parts.host);
  if (!parts || !host) return null;
  const scheme = match[1]!.toLowerCase();
  return { host, port: parts.port ?? (scheme === 'https' || scheme === 'wss' ? 443 : 80) };
}
