// The request pipeline: ordered steps, each able to end the exchange, and the step that
// decided is recorded in the audit event:
//   framing (400) → authority (421) → policy (403) → credentials (403) → budget (429)
//   (request-verdict.ts) → destination (403: the address the host resolved to is private)
//   → upstream (502 or the upstream's answer), streamed both ways from here.
import type http from 'node:http';
import type http2 from 'node:http2';
import { finished, pipeline, type Duplex } from 'node:stream';
import { upstreamFailureCode, type ReasonCode, type UpstreamFailureKind } from '../../reason-codes.js';
import type { GatewayEvents, HttpProtocol, RequestEvent } from '../audit/events.js';
import type { ConnectionContext } from '../connection-context.js';
import { createMaskingResponseSink, type MaskingResponseSink } from '../credentials/masked-response.js';
import { maskText } from '../credentials/secret-masker.js';
import { createWebSocketMaskingTransform, WebSocketMaskingError } from '../credentials/websocket-masker.js';
import type { ResponseSink, UpstreamClient } from '../upstream/upstream-client.js';
import { classifyUpstreamError } from '../upstream/upstream-errors.js';
import type { BudgetRefusal } from '../credentials/egress-budget.js';
import { BudgetedUpload, markMonitored } from './budgeted-upload.js';
import type { ExchangeHead, ExchangeReadResult } from './exchange.js';
import { readHttp1Exchange } from './http1-exchange.js';
import { readHttp2Exchange } from './http2-exchange.js';
import { evaluateRequest, settleSharedBudget, type Verdict, type VerdictDependencies } from './request-verdict.js';
import { denialResponse, upstreamFailureResponse, writeRawResponse, type GatewayResponse } from './responses.js';

export interface PipelineDependencies extends VerdictDependencies {
  upstream: UpstreamClient;
  events: GatewayEvents;
}

/** A request whose verdict waited for the shared budget: judged once, then handled. */
interface JudgedRequest {
  started: number;
  read: ExchangeReadResult;
  verdict: Verdict;
}

type ClientRequest = http.IncomingMessage | http2.Http2ServerRequest;
type ClientResponse = http.ServerResponse | http2.Http2ServerResponse;

const MAX_LOGGED_PATH = 512;

export class RequestPipeline {
  constructor(private readonly deps: PipelineDependencies) {}

  /** Handles one request from an HTTP/1.1 connection or one HTTP/2 stream. */
  handleRequest(req: ClientRequest, res: ClientResponse, connection: ConnectionContext | null, connId: string, clientId?: string, judged?: JudgedRequest): void {
    const started = judged?.started ?? performance.now();
    const isH2 = req.httpVersionMajor === 2;
    const read: ExchangeReadResult = judged?.read ?? (isH2 ? readHttp2Exchange(req as http2.Http2ServerRequest) : readHttp1Exchange(req as http.IncomingMessage));
    const protocol: HttpProtocol = isH2 ? 'h2' : 'http/1.1';
    const verdict = judged?.verdict ?? evaluateRequest(read, connection, this.deps, clientId);
    if (verdict.kind === 'forward' && verdict.pendingBudget !== undefined) {
      // serve --state: the shared budget answers over the network (within its command deadline);
      // the request waits for it, its body unread.
      void settleSharedBudget(verdict, this.deps.monitor).then((settled) => this.handleRequest(req, res, connection, connId, clientId, { started, read, verdict: settled }));
      return;
    }
    const event = this.eventFor(read, connection, connId, protocol, verdict, clientId);

    if (verdict.kind === 'reject') {
      const response = denialResponse(verdict.status, verdict.rule, verdict.reason, verdict.code);
      // Framing and authority failures end an HTTP/1.1 connection: its remaining bytes can't be
      // trusted. Policy, credential and budget refusals keep it: the unread body is discarded
      // (never forwarded), and closing while the client still sends would reset the connection
      // before it reads the answer.
      if (!isH2 && (verdict.step === 'framing' || verdict.step === 'authority')) response.headers.connection = 'close';
      sendGatewayResponse(res, response);
      req.resume();
      this.finish(event, started, verdict.status, 0);
      return;
    }

    const head = (read as { ok: true; head: ExchangeHead }).head;
    let body: BudgetedUpload | null = null;
    const bytesIn = () => body?.bytes ?? 0;
    let budgetRefusal: { reason: string; code: BudgetRefusal['code'] } | null = null;
    if (head.hasBody) {
      const account = verdict.budget;
      const monitor = this.deps.monitor;
      // SECURITY: the chunk that would cross the budget is never forwarded; the upstream request
      // is aborted — test/e2e/credentials.test.ts "budgets".
      body = new BudgetedUpload(account, monitor, event, (reason, code) => (budgetRefusal = { reason, code }));
      // Not pipeline(): a budget refusal errors the body, and that must not destroy the client
      // request before the 429 is written.
      const upload = body;
      req.pipe(upload);
      finished(req as NodeJS.ReadableStream, (error) => {
        if (error && !upload.destroyed) upload.destroy(error);
      });
      upload.on('error', () => undefined); // undici reports it; a budget refusal is handled below
      // Whatever ends the upload early (budget, upstream failure), the rest of the client's body
      // is read and dropped, so the client can still receive the answer.
      upload.on('close', () => {
        req.unpipe(upload);
        req.resume();
      });
    }
    // SECURITY: an upstream that echoes the injected secret (headers, error messages) must not
    // hand it to the sandbox — test/e2e/credentials.test.ts "its echo comes back with the placeholder".
    const masking: MaskingResponseSink | null = verdict.masks.length > 0 ? createMaskingResponseSink(res, verdict.masks, verdict.target.host, { grpc: head.grpc }) : null;
    const sink = masking ?? (res as unknown as ResponseSink);
    this.deps.upstream
      .forward(verdict.target, { method: head.method, path: verdict.path, headers: verdict.headers, body, grpc: head.grpc }, sink)
      .then((result) => {
        if (result.ok) {
          if (result.grpcStatus !== undefined) event.grpcStatus = result.grpcStatus;
          this.finish(event, started, result.status, bytesIn(), result.bytesOut);
          return;
        }
        if (budgetRefusal !== null) {
          denyOverBudget(event, budgetRefusal.reason, budgetRefusal.code);
          if (!res.headersSent) {
            sendGatewayResponse(res, denialResponse(429, verdict.rule, budgetRefusal.reason, budgetRefusal.code));
            this.finish(event, started, 429, bytesIn(), 0);
          } else {
            res.destroy();
            this.finish(event, started, 429, bytesIn(), result.bytesOut);
          }
          return;
        }
        if (result.failure.kind === 'destination') {
          this.denyDestination(event, result.failure.reason);
          if (!res.headersSent) sendGatewayResponse(res, denialResponse(403, verdict.rule, result.failure.reason, 'private-destination'));
          else res.destroy();
          this.finish(event, started, 403, bytesIn(), 0);
          return;
        }
        if (masking?.refusal) failUpstream(event, masking.refusal, 'other');
        else failUpstream(event, result.failure.reason, result.failure.kind);
        if (!result.headersSent && !res.headersSent) {
          sendGatewayResponse(res, upstreamFailureResponse(event.reason, event.code));
          this.finish(event, started, 502, bytesIn(), 0);
        } else {
          res.destroy();
          this.finish(event, started, 502, bytesIn(), result.bytesOut);
        }
      }, (error: unknown) => {
        res.destroy(error as Error);
      });
  }

  /** Handles an HTTP/1.1 Upgrade (WebSocket): checked like any request, then relayed byte for byte. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, connection: ConnectionContext | null, connId: string, clientId?: string): void {
    const started = performance.now();
    const read = readHttp1Exchange(req);
    const verdict = evaluateRequest(read, connection, this.deps, clientId);
    if (verdict.kind === 'forward' && verdict.pendingBudget !== undefined) {
      // serve --state: an upgrade is judged by the shared budget before anything is forwarded.
      void settleSharedBudget(verdict, this.deps.monitor).then((settled) => this.upgradeJudged(req, socket, head, connection, connId, clientId, started, read, settled));
      return;
    }
    this.upgradeJudged(req, socket, head, connection, connId, clientId, started, read, verdict);
  }

  private upgradeJudged(req: http.IncomingMessage, socket: Duplex, head: Buffer, connection: ConnectionContext | null, connId: string, clientId: string | undefined, started: number, read: ExchangeReadResult, judged: Verdict): void {
    let verdict = judged;
    if (read.ok && verdict.kind === 'forward' && read.head.upgrade !== 'websocket') {
      verdict = { kind: 'reject', step: 'framing', status: 400, rule: null, reason: 'only WebSocket upgrades are supported', code: 'upgrade-not-supported' };
    }
    const event = this.eventFor(read, connection, connId, 'http/1.1', verdict, clientId);
    if (verdict.kind === 'reject') {
      writeRawResponse(socket, denialResponse(verdict.status, verdict.rule, verdict.reason, verdict.code));
      this.finish(event, started, verdict.status, 0);
      return;
    }
    const forward = verdict;
    this.deps.upstream
      .upgrade(forward.target, { method: 'GET', path: forward.path, headers: forward.headers }, 'websocket')
      .then(({ headers, socket: upstreamSocket }) => {
        const masks = forward.masks;
        let response = 'HTTP/1.1 101 Switching Protocols\r\n';
        for (const [name, value] of Object.entries(headers)) {
          for (const item of Array.isArray(value) ? value : [value]) response += `${name}: ${masks.length > 0 ? maskText(item, masks) : item}\r\n`;
        }
        socket.write(response + '\r\n');
        let bytesOut = 0;
        const account = forward.budget;
        const monitor = this.deps.monitor;
        // Client → upstream: counted, and against the rule's budget when it has one.
        // A WebSocket has no status left to send: the budget ends the connection.
        const outbound = new BudgetedUpload(account, monitor, event, (reason, code) => denyOverBudget(event, reason, code));
        if (head.length > 0) socket.unshift(head);
        upstreamSocket.on('data', (chunk: Buffer) => (bytesOut += chunk.length));
        let ended = false;
        const end = (error?: Error | null) => {
          if (ended) return;
          ended = true;
          if (error instanceof WebSocketMaskingError) failUpstream(event, error.message, 'other');
          socket.destroy();
          upstreamSocket.destroy();
          this.finish(event, started, 101, outbound.bytes, bytesOut);
        };
        pipeline(socket, outbound, upstreamSocket, end);
        // Upstream → client: an echoed secret is masked in every message, frame by frame (no
        // compression was negotiated for a request with an injected secret).
        if (masks.length > 0) pipeline(upstreamSocket, createWebSocketMaskingTransform(masks), socket, end);
        else pipeline(upstreamSocket, socket, end);
      })
      .catch((error: unknown) => {
        const failure = classifyUpstreamError(error, forward.target.host);
        if (failure.kind === 'destination') {
          this.denyDestination(event, failure.reason);
          writeRawResponse(socket, denialResponse(403, forward.rule, failure.reason, 'private-destination'));
          this.finish(event, started, 403, 0);
          return;
        }
        // undici reports a non-101 answer as a socket error; say what actually happened.
        const refusedUpgrade = (error as { code?: string }).code === 'UND_ERR_SOCKET' && /bad upgrade/i.test((error as Error).message);
        const reason = refusedUpgrade ? `${forward.target.host} refused the WebSocket upgrade` : failure.reason;
        failUpstream(event, reason, failure.kind);
        writeRawResponse(socket, upstreamFailureResponse(reason, event.code));
        this.finish(event, started, 502, 0);
      });
  }

  /**
   * The audit event of a request that did not authenticate as a policy client (407): nothing was
   * read past its head, nothing forwarded.
   */
  refuseUnauthenticated(req: ClientRequest, connId: string, destination: { host: string; port: number } | null, code: ReasonCode, reason: string): void {
    // The path only, like every request line: an absolute-form target loses scheme and authority.
    const url = req.url ?? '';
    const target = url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '');
    const queryStart = target.indexOf('?');
    const event: RequestEvent = {
      kind: 'request',
      conn: connId,
      protocol: req.httpVersionMajor === 2 ? 'h2' : 'http/1.1',
      method: req.method ?? '-',
      host: destination?.host ?? '-',
      port: destination?.port ?? 0,
      path: (queryStart < 0 ? target : target.slice(0, queryStart)).slice(0, MAX_LOGGED_PATH),
      decision: 'deny',
      rule: null,
      reason,
      code,
      step: 'authentication',
      status: 407,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
    };
    this.deps.events.emit('request', event);
  }

  private eventFor(read: ExchangeReadResult, connection: ConnectionContext | null, connId: string, protocol: HttpProtocol, verdict: Verdict, requestClientId?: string): RequestEvent {
    const head = read.ok ? read.head : null;
    const target = head?.target ?? '';
    const queryStart = target.indexOf('?');
    const path = (queryStart < 0 ? target : target.slice(0, queryStart)).slice(0, MAX_LOGGED_PATH);
    const clientId = connection?.clientId ?? requestClientId;
    const event: RequestEvent = {
      kind: 'request',
      conn: connId,
      protocol,
      method: head?.method ?? (read.ok ? '-' : (read.method ?? '-')),
      host: connection?.host ?? head?.authorityHost ?? '-',
      port: connection?.port ?? head?.authorityPort ?? 0,
      path,
      decision: verdict.kind === 'reject' ? 'deny' : 'allow',
      rule: verdict.rule,
      reason: verdict.reason,
      code: verdict.code,
      step: verdict.kind === 'reject' ? verdict.step : 'policy',
      status: 0,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
    };
    if (clientId !== undefined) event.clientId = clientId;
    if (verdict.credential !== undefined) event.credential = verdict.credential;
    if (verdict.kind === 'forward' && verdict.monitoredDenial !== null) markMonitored(event, verdict.monitoredDenial);
    return event;
  }

  /** The host resolved to a private address the policy does not open: denied, --monitor or not. */
  private denyDestination(event: RequestEvent, reason: string): void {
    event.decision = 'deny';
    event.step = 'destination';
    event.reason = reason;
    event.code = 'private-destination';
    // Nothing was let through, so this is no monitored denial.
    delete event.monitored;
  }

  private finish(event: RequestEvent, started: number, status: number, bytesIn: number, bytesOut = 0): void {
    event.status = status;
    event.bytesIn = bytesIn;
    event.bytesOut = bytesOut;
    event.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    this.deps.events.emit('request', event);
  }
}

/** The rule's budget ended the exchange part-way (the body or a WebSocket crossed it). */
function denyOverBudget(event: RequestEvent, refusal: string, code: BudgetRefusal['code']): void {
  event.decision = 'deny';
  event.step = 'budget';
  event.reason = refusal;
  event.code = code;
}

/** The upstream failed the exchange (or sent what cannot be masked): a 502, or the connection cut. */
function failUpstream(event: RequestEvent, reason: string, kind: UpstreamFailureKind): void {
  event.decision = 'error';
  event.step = 'upstream';
  event.reason = reason;
  event.code = upstreamFailureCode(kind);
  event.upstreamError = kind;
}

function sendGatewayResponse(res: ClientResponse, response: GatewayResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(response.status, response.headers);
  res.end(response.body);
}
