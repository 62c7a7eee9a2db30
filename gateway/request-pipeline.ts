// The request pipeline: ordered steps, each able to end the exchange, and the step that
// decided is recorded in the audit event:
//   framing (400) → authority (421) → policy (403) → credentials (403) → budget (429)
//   → destination (403: the address the host resolved to is private) → upstream (502 or the
//   upstream's answer).
import type http from 'node:http';
import type http2 from 'node:http2';
import { finished, Transform, pipeline, type Duplex, type TransformCallback } from 'node:stream';
import { findAmbiguousEncoding, normalizePath } from '../policies/path.js';
import { applyCredentials } from '../policies/credential-rewrite.js';
import type { CompiledPolicy } from '../policies/match.js';
import type { Rule } from '../policies/types.js';
import { formatAuthority, type ConnectionContext } from './connection-context.js';
import { EMPTY_RULE_CREDENTIALS, type RuleCredentials } from './credential-secrets.js';
import type { BudgetAccount, EgressBudgets } from './egress-budget.js';
import type { CredentialOutcomeField, GatewayEvents, HttpProtocol, RequestEvent, RequestStep } from './events.js';
import type { ExchangeHead, ExchangeReadResult } from './exchange.js';
import { readHttp1Exchange } from './http1-exchange.js';
import { readHttp2Exchange } from './http2-exchange.js';
import { createMaskingResponseSink, type MaskingResponseSink } from './masked-response.js';
import { denialResponse, upstreamFailureResponse, writeRawResponse, type GatewayResponse } from './responses.js';
import { maskText, type MaskPair } from './secret-masker.js';
import { createWebSocketMaskingTransform, WebSocketMaskingError } from './websocket-masker.js';
import { UPSTREAM_SOCKET_HIGH_WATER_MARK, type ResponseSink, type UpstreamClient, type UpstreamTarget } from './upstream-client.js';
import { classifyUpstreamError } from './upstream-errors.js';

export interface PipelineDependencies {
  /** Read once per request, so a reload never shows a request half of each policy. */
  currentPolicy(): CompiledPolicy;
  upstream: UpstreamClient;
  events: GatewayEvents;
  /**
   * The credential rules (secrets resolved) of the policy in force, read together with
   * currentPolicy() so one request never sees the rules of one policy and the secrets of another.
   */
  currentCredentials?(): RuleCredentials;
  /** Per-rule egress byte counts; absent = budgets are not enforced. */
  budgets?: EgressBudgets;
  /** Report mode: policy, credential and budget denials are logged as such but let through. */
  monitor: boolean;
}

type ClientRequest = http.IncomingMessage | http2.Http2ServerRequest;
type ClientResponse = http.ServerResponse | http2.Http2ServerResponse;

type Verdict =
  | { kind: 'reject'; step: RequestStep; status: number; rule: string | null; reason: string; credential?: CredentialOutcomeField }
  | {
      kind: 'forward';
      target: UpstreamTarget;
      path: string;
      headers: string[];
      rule: string;
      reason: string;
      /** A denial --monitor lets through: by which step, and why. */
      monitoredDenial: { step: RequestStep; reason: string } | null;
      credential?: CredentialOutcomeField;
      /** Injected secrets to mask in the response; empty when nothing was injected. */
      masks: MaskPair[];
      /** The rule's budget, when it has one and the body is counted as it streams. */
      budget: BudgetAccount | null;
    };

const MAX_LOGGED_PATH = 512;

/** The error a request body stream ends with when it crosses its rule's budget. */
class BudgetExceeded extends Error {}

/**
 * What the client sends upstream (a request body, WebSocket frames), counted and charged to the
 * rule's budget when it has one. The chunk that would cross the budget is never passed on: the
 * stream errors with BudgetExceeded after `onRefused`; in --monitor mode it is passed on and the
 * event marked as a would-deny.
 */
class BudgetedUpload extends Transform {
  bytes = 0;

  constructor(
    private readonly account: BudgetAccount | null,
    private readonly monitor: boolean,
    private readonly event: RequestEvent,
    private readonly onRefused: (refusal: string) => void,
  ) {
    // A 16 KiB chunk (one TLS record) into a 16 KiB buffer reports "full" on every write, and the
    // client's socket was paused and resumed for each chunk; 64 KiB lets a few through.
    super({ highWaterMark: UPSTREAM_SOCKET_HIGH_WATER_MARK });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.account !== null) {
      const refusal = this.account.tryCharge(chunk.length);
      if (refusal !== null) {
        if (!this.monitor) {
          this.onRefused(refusal);
          callback(new BudgetExceeded(refusal));
          return;
        }
        this.account.charge(chunk.length);
        if (!this.event.monitored) markMonitored(this.event, 'budget', refusal);
      }
    }
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

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
    let budgetRefusal: string | null = null;
    if (head.hasBody) {
      const account = verdict.budget;
      const monitor = this.deps.monitor;
      // SECURITY: the chunk that would cross the budget is never forwarded; the upstream request
      // is aborted — test/e2e/credentials.test.ts "budgets".
      body = new BudgetedUpload(account, monitor, event, (refusal) => (budgetRefusal = refusal));
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
          event.decision = 'deny';
          event.step = 'budget';
          event.reason = budgetRefusal;
          if (!res.headersSent) {
            sendGatewayResponse(res, denialResponse(429, verdict.rule, budgetRefusal));
            this.finish(event, started, 429, bytesIn(), 0);
          } else {
            res.destroy();
            this.finish(event, started, 429, bytesIn(), result.bytesOut);
          }
          return;
        }
        if (result.failure.kind === 'destination') {
          this.denyDestination(event, result.failure.reason);
          if (!res.headersSent) sendGatewayResponse(res, denialResponse(403, verdict.rule, result.failure.reason));
          else res.destroy();
          this.finish(event, started, 403, bytesIn(), 0);
          return;
        }
        event.decision = 'error';
        event.step = 'upstream';
        event.reason = masking?.refusal ?? result.failure.reason;
        event.upstreamError = masking?.refusal ? 'other' : result.failure.kind;
        if (!result.headersSent && !res.headersSent) {
          sendGatewayResponse(res, upstreamFailureResponse(event.reason));
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
        const outbound = new BudgetedUpload(account, monitor, event, (refusal) => {
          // A WebSocket has no status left to send: the budget ends the connection.
          event.decision = 'deny';
          event.step = 'budget';
          event.reason = refusal;
        });
        if (head.length > 0) socket.unshift(head);
        upstreamSocket.on('data', (chunk: Buffer) => (bytesOut += chunk.length));
        let ended = false;
        const end = (error?: Error | null) => {
          if (ended) return;
          ended = true;
          if (error instanceof WebSocketMaskingError) {
            event.decision = 'error';
            event.step = 'upstream';
            event.upstreamError = 'other';
            event.reason = error.message;
          }
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
          writeRawResponse(socket, denialResponse(403, forward.rule, failure.reason));
          this.finish(event, started, 403, 0);
          return;
        }
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
    // SECURITY: a path a decoding upstream would read differently is refused, not forwarded —
    // test/e2e/path-traversal.test.ts
    const ambiguous = findAmbiguousEncoding(rawPath);
    if (ambiguous !== null) return { kind: 'reject', step: 'framing', status: 400, rule: null, reason: `request path ${ambiguous}` };
    const normalized = normalizePath(rawPath);
    if ('error' in normalized) return { kind: 'reject', step: 'framing', status: 400, rule: null, reason: normalized.error };
    const path = normalized.path;

    const policy = this.deps.currentPolicy();
    const credentials = this.deps.currentCredentials?.() ?? EMPTY_RULE_CREDENTIALS;
    const monitor = this.deps.monitor;
    const decision = policy.decide({ host: target.host, port: target.port, method: head.method, path });
    const policyDenied = decision.action === 'deny';
    if (policyDenied && !monitor) {
      return { kind: 'reject', step: 'policy', status: 403, rule: decision.ruleId, reason: decision.reason };
    }
    // Upstream sees exactly the path the policy saw (normalised), with the original query.
    let query = queryStart < 0 ? '' : head.target.slice(queryStart);
    const defaultPort = target.scheme === 'https' ? 443 : 80;
    let headers = ['host', formatAuthority(target.host, target.port, defaultPort), ...head.forwardHeaders];
    let monitoredDenial: { step: RequestStep; reason: string } | null = policyDenied ? { step: 'policy', reason: decision.reason } : null;
    let credential: CredentialOutcomeField | undefined;
    let masks: MaskPair[] = [];
    let budget: BudgetAccount | null = null;

    const rule = policyDenied ? undefined : ruleById(policy, decision.ruleId);
    const ruleCredentials = policyDenied ? undefined : credentials.get(decision.ruleId);
    // SECURITY: a secret is only ever sent inside TLS; injecting it into a plain-HTTP request
    // would hand it to anyone on the path — test/e2e/credentials.test.ts "plain HTTP".
    const injects = ruleCredentials?.some((entry) => entry.kind === 'inject') === true;
    if (injects && target.scheme !== 'https') {
      const reason = `rule ${decision.ruleId} injects a credential, which srt-gw sends only over https; use https://${formatAuthority(target.host, target.port, 443)}`;
      if (!monitor) return { kind: 'reject', step: 'credentials', status: 403, rule: decision.ruleId, reason, credential: 'refused' };
      monitoredDenial = { step: 'credentials', reason };
      credential = 'refused';
    } else if (ruleCredentials !== undefined && ruleCredentials.length > 0) {
      const result = applyCredentials(decision.ruleId, ruleCredentials, headers, query);
      if (!result.ok) {
        if (!monitor) return { kind: 'reject', step: 'credentials', status: 403, rule: decision.ruleId, reason: result.reason, credential: 'refused' };
        // Report mode: logged as a denial, forwarded as sent — nothing injected.
        monitoredDenial = { step: 'credentials', reason: result.reason };
        credential = 'refused';
      } else {
        headers = result.headers;
        query = result.query;
        masks = result.masks;
        if (result.outcome !== null) credential = result.outcome;
        // A secret echoed in a compressed body could not be found to be masked.
        if (masks.length > 0) headers = withoutCompression(headers, head);
      }
    }

    if (rule?.budget !== undefined && this.deps.budgets !== undefined) {
      const account = this.deps.budgets.account(rule.id, rule.budget);
      const contentLength = head.upgrade !== null ? null : declaredContentLength(head);
      // SECURITY: the request line and headers count, not only the body: a long query or header
      // carries data out as well as a body, and body-less requests are unlimited in number —
      // test/e2e/credentials.test.ts "budgets". Judged before anything is forwarded: the head with
      // a declared body (the whole request or nothing), or the head alone when the body streams
      // or it is a WebSocket (then counted as it flows: BudgetedUpload, handleUpgrade).
      const upFront = requestHeadBytes(head) + (contentLength ?? 0);
      const refusal = account.tryCharge(upFront);
      if (refusal !== null) {
        if (!monitor) return { kind: 'reject', step: 'budget', status: 429, rule: rule.id, reason: refusal, ...(credential ? { credential } : {}) };
        account.charge(upFront);
        monitoredDenial ??= { step: 'budget', reason: refusal };
      }
      if (contentLength === null) budget = account;
    }

    return {
      kind: 'forward',
      target,
      path: path + query,
      headers,
      rule: decision.ruleId,
      reason: decision.reason,
      monitoredDenial,
      ...(credential ? { credential } : {}),
      masks,
      budget,
    };
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
      method: head?.method ?? (read.ok ? '-' : (read.method ?? '-')),
      host: connection?.host ?? head?.authorityHost ?? '-',
      port: connection?.port ?? head?.authorityPort ?? 0,
      path,
      decision: verdict.kind === 'reject' ? 'deny' : 'allow',
      rule: verdict.rule,
      reason: verdict.reason,
      step: verdict.kind === 'reject' ? verdict.step : 'policy',
      status: 0,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
    };
    if (verdict.credential !== undefined) event.credential = verdict.credential;
    if (verdict.kind === 'forward' && verdict.monitoredDenial !== null) markMonitored(event, verdict.monitoredDenial.step, verdict.monitoredDenial.reason);
    return event;
  }

  /** The host resolved to a private address the policy does not open: denied, --monitor or not. */
  private denyDestination(event: RequestEvent, reason: string): void {
    event.decision = 'deny';
    event.step = 'destination';
    event.reason = reason;
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

/** Records a denial that --monitor let through: the decision is deny, the exchange went on. */
function markMonitored(event: RequestEvent, step: RequestStep, reason: string): void {
  event.decision = 'deny';
  event.monitored = true;
  event.step = step;
  event.reason = reason;
}

const rulesByPolicy = new WeakMap<CompiledPolicy, ReadonlyMap<string, Rule>>();

function ruleById(policy: CompiledPolicy, id: string): Rule | undefined {
  let rules = rulesByPolicy.get(policy);
  if (rules === undefined) {
    rules = new Map(policy.policy.rules.map((rule) => [rule.id, rule]));
    rulesByPolicy.set(policy, rules);
  }
  return rules.get(id);
}

/**
 * The bytes of the request line and headers as the client sent them, in HTTP/1.1 framing whatever
 * the protocol. Headers the gateway does not forward (Host, hop-by-hop) are left out: they do not
 * leave.
 */
function requestHeadBytes(head: ExchangeHead): number {
  // "METHOD target HTTP/1.1\r\n" and the blank line that ends the head.
  let bytes = head.method.length + head.target.length + 13;
  for (let i = 0; i < head.forwardHeaders.length; i += 2) bytes += head.forwardHeaders[i]!.length + head.forwardHeaders[i + 1]!.length + 4;
  return bytes;
}

/** The body length the client declared (Content-Length), or null when it streams without one. */
function declaredContentLength(head: ExchangeHead): number | null {
  for (let i = 0; i < head.forwardHeaders.length; i += 2) {
    if (head.forwardHeaders[i] === 'content-length') {
      const value = Number(head.forwardHeaders[i + 1]);
      return Number.isSafeInteger(value) && value >= 0 ? value : null;
    }
  }
  return head.hasBody ? null : 0;
}

/** Asks for an uncompressed response (for WebSocket, no permessage-deflate; for gRPC, uncompressed messages). */
function withoutCompression(headers: string[], head: ExchangeHead): string[] {
  const upgrade = head.upgrade !== null;
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name === 'accept-encoding' || (head.grpc && name === 'grpc-accept-encoding') || (upgrade && name === 'sec-websocket-extensions')) continue;
    kept.push(name, headers[i + 1]!);
  }
  if (!upgrade) kept.push('accept-encoding', 'identity');
  // gRPC compresses each message inside the body, whatever the body's own encoding.
  if (head.grpc) kept.push('grpc-accept-encoding', 'identity');
  return kept;
}

function sendGatewayResponse(res: ClientResponse, response: GatewayResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(response.status, response.headers);
  res.end(response.body);
}
