// The request pipeline: ordered steps, each able to end the exchange, and the step that
// decided is recorded in the audit event:
//   framing (400) → authority (421) → policy (403) → upstream (502 or the upstream's answer).
import type http from 'node:http';
import type http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import { pipeline, Transform, type Duplex } from 'node:stream';
import { normalizePath } from '../policies/path.js';
import type { CompiledPolicy } from '../policies/match.js';
import { formatAuthority, type ConnectionContext } from './connection-context.js';
import type { GatewayEvents, HttpProtocol, RequestEvent } from './events.js';
import type { ExchangeHead, ExchangeReadResult } from './exchange.js';
import { readHttp1Exchange } from './http1-exchange.js';
import { readHttp2Exchange } from './http2-exchange.js';
import { denialResponse, upstreamFailureResponse, writeRawResponse, type GatewayResponse } from './responses.js';
import type { ResponseSink, UpstreamClient, UpstreamTarget } from './upstream-client.js';
import { classifyUpstreamError } from './upstream-errors.js';

export interface PipelineDependencies {
  /** Read once per request, so a reload never shows a request half of each policy. */
  currentPolicy(): CompiledPolicy;
  upstream: UpstreamClient;
  events: GatewayEvents;
  /** Report mode: policy denials are logged as such but let through. */
  monitor: boolean;
}

type ClientRequest = http.IncomingMessage | http2.Http2ServerRequest;
type ClientResponse = http.ServerResponse | http2.Http2ServerResponse;

type Verdict =
  | { kind: 'reject'; step: RequestEvent['step']; status: number; rule: string | null; reason: string }
  | { kind: 'forward'; target: UpstreamTarget; path: string; headers: string[]; rule: string; reason: string; policyDenied: boolean };

const MAX_LOGGED_PATH = 512;

export class RequestPipeline {
  constructor(private readonly deps: PipelineDependencies) {}

  /** Handles one request from an HTTP/1.1 connection or one HTTP/2 stream. */
  handleRequest(req: ClientRequest, res: ClientResponse, connection: ConnectionContext | null, connId: string): void {
    const started = performance.now();
    const isH2 = req.httpVersionMajor === 2;
    const read: ExchangeReadResult = isH2 ? readHttp2Exchange(req as http2.Http2ServerRequest) : readHttp1Exchange(req as http.IncomingMessage);
    const protocol: HttpProtocol = isH2 ? 'h2' : 'http/1.1';
    const verdict = this.evaluate(read, connection);
    const event = this.eventFor(read, connection, connId, protocol, verdict);

    if (verdict.kind === 'reject') {
      const response = verdict.status === 502 ? upstreamFailureResponse(verdict.reason) : denialResponse(verdict.status, verdict.rule, verdict.reason);
      // Framing and authority failures end an HTTP/1.1 connection: its remaining bytes can't be trusted.
      if (!isH2 && verdict.step !== 'policy') response.headers.connection = 'close';
      sendGatewayResponse(res, response);
      req.resume();
      this.finish(event, started, verdict.status, 0);
      return;
    }

    const head = (read as { ok: true; head: ExchangeHead }).head;
    let bytesIn = 0;
    let body: Transform | null = null;
    if (head.hasBody) {
      body = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          bytesIn += chunk.length;
          callback(null, chunk);
        },
      });
      pipeline(req, body, () => undefined);
    }
    this.deps.upstream
      .forward(verdict.target, { method: head.method, path: verdict.path, headers: verdict.headers, body }, res as unknown as ResponseSink)
      .then((result) => {
        if (result.ok) {
          this.finish(event, started, result.status, bytesIn, result.bytesOut);
          return;
        }
        event.decision = 'error';
        event.step = 'upstream';
        event.reason = result.failure.reason;
        event.upstreamError = result.failure.kind;
        if (!result.headersSent && !res.headersSent) {
          sendGatewayResponse(res, upstreamFailureResponse(result.failure.reason));
          this.finish(event, started, 502, bytesIn, 0);
        } else {
          res.destroy();
          this.finish(event, started, 502, bytesIn, result.bytesOut);
        }
      }, (error: unknown) => {
        res.destroy(error as Error);
      });
  }

  /** Handles an HTTP/1.1 Upgrade (WebSocket): checked like any request, then relayed byte for byte. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, connection: ConnectionContext | null, connId: string): void {
    const started = performance.now();
    const read = readHttp1Exchange(req);
    let verdict = this.evaluate(read, connection);
    if (read.ok && verdict.kind === 'forward' && read.head.upgrade !== 'websocket') {
      verdict = { kind: 'reject', step: 'framing', status: 400, rule: null, reason: 'only WebSocket upgrades are supported' };
    }
    const event = this.eventFor(read, connection, connId, 'http/1.1', verdict);
    if (verdict.kind === 'reject') {
      writeRawResponse(socket, denialResponse(verdict.status, verdict.rule, verdict.reason));
      this.finish(event, started, verdict.status, 0);
      return;
    }
    const forward = verdict;
    this.deps.upstream
      .upgrade(forward.target, { method: 'GET', path: forward.path, headers: forward.headers }, 'websocket')
      .then(({ headers, socket: upstreamSocket }) => {
        let response = 'HTTP/1.1 101 Switching Protocols\r\n';
        for (const [name, value] of Object.entries(headers)) {
          for (const item of Array.isArray(value) ? value : [value]) response += `${name}: ${item}\r\n`;
        }
        socket.write(response + '\r\n');
        if (head.length > 0) upstreamSocket.write(head);
        let bytesIn = head.length;
        let bytesOut = 0;
        socket.on('data', (chunk: Buffer) => (bytesIn += chunk.length));
        upstreamSocket.on('data', (chunk: Buffer) => (bytesOut += chunk.length));
        let ended = false;
        const end = () => {
          if (ended) return;
          ended = true;
          socket.destroy();
          upstreamSocket.destroy();
          this.finish(event, started, 101, bytesIn, bytesOut);
        };
        pipeline(socket, upstreamSocket, end);
        pipeline(upstreamSocket, socket, end);
      })
      .catch((error: unknown) => {
        const failure = classifyUpstreamError(error, forward.target.host);
        // undici reports a non-101 answer as a socket error; say what actually happened.
        const refusedUpgrade = (error as { code?: string }).code === 'UND_ERR_SOCKET' && /bad upgrade/i.test((error as Error).message);
        const reason = refusedUpgrade ? `${forward.target.host} refused the WebSocket upgrade` : failure.reason;
        event.upstreamError = failure.kind;
        event.decision = 'error';
        event.step = 'upstream';
        event.reason = reason;
        writeRawResponse(socket, upstreamFailureResponse(reason));
        this.finish(event, started, 502, 0);
      });
  }

  private evaluate(read: ExchangeReadResult, connection: ConnectionContext | null): Verdict {
    if (!read.ok) return { kind: 'reject', step: 'framing', status: 400, rule: null, reason: read.reason };
    const head = read.head;
    const host = head.authorityHost!;
    let target: UpstreamTarget;
    if (connection) {
      // SECURITY: every request on a tunnel must name the tunnel's host (and port, if it names
      // one), else domain fronting — test/e2e/fronting.test.ts
      if (host !== connection.host || (head.authorityPort !== null && head.authorityPort !== connection.port)) {
        return {
          kind: 'reject',
          step: 'authority',
          status: 421,
          rule: null,
          reason: `request names ${formatAuthority(host, head.authorityPort ?? connection.port)} but the connection is for ${formatAuthority(connection.host, connection.port)}`,
        };
      }
      target = { scheme: connection.scheme, host: connection.host, port: connection.port };
    } else {
      if (head.scheme === null) {
        return { kind: 'reject', step: 'framing', status: 400, rule: null, reason: 'srt-gw is a proxy: send absolute-form requests (http://host/path) or use CONNECT' };
      }
      target = { scheme: head.scheme, host, port: head.authorityPort ?? (head.scheme === 'https' ? 443 : 80) };
    }

    const queryStart = head.target.indexOf('?');
    const rawPath = queryStart < 0 ? head.target : head.target.slice(0, queryStart);
    const normalized = normalizePath(rawPath);
    if ('error' in normalized) return { kind: 'reject', step: 'framing', status: 400, rule: null, reason: normalized.error };
    const path = normalized.path;

    const decision = this.deps.currentPolicy().decide({ host: target.host, port: target.port, method: head.method, path });
    const policyDenied = decision.action === 'deny';
    if (policyDenied && !this.deps.monitor) {
      return { kind: 'reject', step: 'policy', status: 403, rule: decision.ruleId, reason: decision.reason };
    }
    // Upstream sees exactly the path the policy saw (normalised), with the original query.
    const forwardPath = queryStart < 0 ? path : path + head.target.slice(queryStart);
    const defaultPort = target.scheme === 'https' ? 443 : 80;
    const headers = ['host', formatAuthority(target.host, target.port, defaultPort), ...head.forwardHeaders];
    return { kind: 'forward', target, path: forwardPath, headers, rule: decision.ruleId, reason: decision.reason, policyDenied };
  }

  private eventFor(read: ExchangeReadResult, connection: ConnectionContext | null, connId: string, protocol: HttpProtocol, verdict: Verdict): RequestEvent {
    const head = read.ok ? read.head : null;
    const target = head?.target ?? '';
    const queryStart = target.indexOf('?');
    const path = (queryStart < 0 ? target : target.slice(0, queryStart)).slice(0, MAX_LOGGED_PATH);
    const event: RequestEvent = {
      kind: 'request',
      conn: connId,
      protocol,
      method: head?.method ?? '-',
      host: connection?.host ?? head?.authorityHost ?? '-',
      port: connection?.port ?? head?.authorityPort ?? 0,
      path,
      decision: verdict.kind === 'reject' ? 'deny' : verdict.policyDenied ? 'deny' : 'allow',
      rule: verdict.rule,
      reason: verdict.reason,
      step: verdict.kind === 'reject' ? verdict.step : 'policy',
      status: 0,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
    };
    if (verdict.kind === 'forward' && verdict.policyDenied) event.monitored = true;
    return event;
  }

  private finish(event: RequestEvent, started: number, status: number, bytesIn: number, bytesOut = 0): void {
    event.status = status;
    event.bytesIn = bytesIn;
    event.bytesOut = bytesOut;
    event.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    this.deps.events.emit('request', event);
  }
}

function sendGatewayResponse(res: ClientResponse, response: GatewayResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(response.status, response.headers);
  res.end(response.body);
}
