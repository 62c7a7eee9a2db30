// The explicit proxy listener: CONNECT host:port (tunnels, checked before anything is resolved)
// and absolute-form plain HTTP requests. Everything after the tunnel opens is the terminator's.
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { normalizeHost } from '../../policies/host.js';
import type { ReasonCode } from '../../reason-codes.js';
import type { CompiledPolicy } from '../../policies/match.js';
import { describeClient, newConnectionId, type ConnectionContext } from '../connection-context.js';
import type { GatewayEvents } from '../audit/events.js';
import { splitAuthority } from '../http/exchange.js';
import type { GatewayLimits } from '../limits.js';
import type { RequestPipeline } from '../http/request-pipeline.js';
import { denialResponse, writeRawResponse } from '../http/responses.js';
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
}

export function createExplicitProxyServer(options: ExplicitProxyOptions): http.Server {
  const { events, limits } = options;
  const connectionIds = new WeakMap<object, string>();
  const server = http.createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: 0,
    noDelay: true,
    // SECURITY: node checks headersTimeout only every connectionsCheckingInterval (30 s by
    // default), which let a slowloris client keep a connection 3x longer than the limit —
    // test/e2e/slowloris.test.ts
    connectionsCheckingInterval: 1000,
  });
  server.maxConnections = limits.maxConnections;
  server.setTimeout(limits.idleTimeoutMs, (socket) => socket.destroy());

  server.on('connection', (socket: net.Socket) => {
    socket.on('error', () => undefined);
    connectionIds.set(socket, newConnectionId());
    events.emit('connections', { delta: 1 });
    socket.once('close', () => events.emit('connections', { delta: -1 }));
  });

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
    // SECURITY: decide on the name alone, before any lookup, so a denied name never reaches a
    // DNS server (no DNS exfiltration through the proxy) — test/e2e/no-dns-on-deny.test.ts
    const policy = options.currentPolicy();
    const admitted = policy.couldAllowHost(target.host, target.port);
    const open = (rule: string | null, reason: string, code: ReasonCode) => {
      events.emit('connect', { kind: 'connect', conn: connId, client, host: target.host, port: target.port, decision: admitted || rule !== null ? 'allow' : 'deny', rule, reason, code });
      const context: ConnectionContext = { id: connId, client, host: target.host, port: target.port, scheme: 'https' };
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      options.terminator.accept(socket, context, head);
    };
    if (!admitted && !options.monitor) {
      const reason = `no rule allows host ${target.host} on port ${target.port}`;
      const refuse = (why: string) => {
        events.emit('connect', { kind: 'connect', conn: connId, client, host: target.host, port: target.port, decision: 'deny', rule: 'default-deny', reason: why, code: 'host-not-allowed' });
        writeRawResponse(socket, denialResponse(403, 'default-deny', why, 'host-not-allowed'));
      };
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
  });

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
    afterAsking(req, () => options.pipeline.handleRequest(req, res, null, connectionIds.get(req.socket) ?? '-'));
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    afterAsking(req, () => options.pipeline.handleUpgrade(req, socket, head, null, connectionIds.get(socket) ?? '-'));
  });
  server.on('clientError', (error: Error & { code?: string }, socket: Duplex) => {
    answerParseError(error, socket, undefined, events);
  });
  return server;
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
