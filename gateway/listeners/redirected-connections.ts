// Connections the jail redirected, however they reach the gateway (the program's own socket
// handed over by the redirector, or the transparent socket behind a PROXY v2 header), with the
// address the sandboxed program dialled. The gateway decides from that address which host the
// connection is for:
//   - a synthetic address (from the gateway's DNS) means the name it was issued for;
//   - any other address is an IP literal, allowed only where a rule names that IP or CIDR.
// HTTP(S) then goes through the tunnel terminator exactly like a CONNECT tunnel; other TCP is
// relayed only for an explicit `protocol: tcp` rule.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCodes, isSrtGwError } from '../../errors.js';
import { normalizeHost } from '../../policies/host.js';
import type { CompiledPolicy } from '../../policies/match.js';
import type { ReasonCode } from '../../reason-codes.js';
import { newConnectionId, type ConnectionContext } from '../connection-context.js';
import type { SyntheticAddressPool } from '../dns/synthetic-pool.js';
import type { ResolvedAddress, UpstreamResolver } from '../dns/upstream-resolver.js';
import type { GatewayEvents } from '../audit/events.js';
import type { GatewayLimits } from '../limits.js';
import { denialResponse, writeRawResponse } from '../http/responses.js';
import type { OriginalDestination } from './proxy-protocol-header.js';
import { TLS_HANDSHAKE_RECORD, type TunnelTerminator } from '../tls/tunnel-terminator.js';
import { isUnknownHost, type UnknownHostQuestions } from '../unknown-host.js';

export interface RedirectedConnectionOptions {
  currentPolicy(): CompiledPolicy;
  syntheticAddresses: SyntheticAddressPool;
  resolver: UpstreamResolver;
  terminator: TunnelTerminator;
  events: GatewayEvents;
  limits: GatewayLimits;
  monitor: boolean;
  /** Asks about hosts no rule mentions (the library's onUnknownHost); null: they are denied. */
  unknownHosts?: UnknownHostQuestions | null;
  /** Opaque TCP through the upstream proxy (--upstream-proxy); null (or absent): connect directly. */
  tcpThroughProxy?: (host: string, port: number) => Promise<Duplex> | null;
}

const NOTHING_READ = Buffer.alloc(0);

/** One gateway's door for redirected connections: decides each, then serves or refuses it. */
export class RedirectedConnections {
  constructor(private readonly options: RedirectedConnectionOptions) {}

  /**
   * Decides and serves one connection the jail redirected, whichever way it arrived. `rest` is
   * what was read past a PROXY header. `clientLabel` names the jail in the `client` field (a
   * gateway shared by several runs tells them apart by it).
   */
  route(socket: Duplex, destination: OriginalDestination, clientLabel: string, rest: Buffer = NOTHING_READ): void {
    const options = this.options;
    const { events } = options;
    const { address, port, source } = destination;
    const conn = newConnectionId();
    const client = `${clientLabel}:${source}`;
    const syntheticName = options.syntheticAddresses.nameFor(address);
    // SECURITY: the destination the program dialled is trusted only as a key into the synthetic
    // map; a real address stays an IP literal that a rule must name — never a place to connect to
    // on the strength of a name the client chose.
    const host = syntheticName ?? normalizeHost(address);
    if (!host) {
      socket.destroy();
      return;
    }
    const policy = options.currentPolicy();
    const deny = (reason: string, rule: string | null, code: ReasonCode) => {
      events.emit('connect', { kind: 'connect', conn, client, host, port, decision: 'deny', rule, reason, code });
      socket.destroy();
    };
    const terminate = (rule: string | null, reason: string, code: ReasonCode) => {
      events.emit('connect', { kind: 'connect', conn, client, host, port, decision: 'allow', rule, reason, code });
      const context: ConnectionContext = { id: conn, client, host, port, scheme: 'https' };
      options.terminator.accept(socket, context, rest);
    };

    const couldAllow = policy.couldAllowHost(host, port);
    if (couldAllow || options.monitor) {
      const reason = syntheticName ? `connection to ${address} is for ${host}; each request is checked` : 'a rule names this address; each request is checked';
      terminate(null, reason, couldAllow ? 'checked-per-request' : 'monitor-mode');
      return;
    }

    const tcp = policy.tcpRuleFor(host, port);
    if (tcp.action !== 'allow') {
      const reason = syntheticName ? tcp.reason : `${tcp.reason} (the program connected to an address, not a name the gateway resolved)`;
      const unknownHosts = options.unknownHosts;
      if (unknownHosts && isUnknownHost(policy, host, port)) {
        // The program's connection is held (its first bytes wait in the socket) while the harness
        // is asked; an approval is an http rule, so the connection is then terminated and checked.
        void unknownHosts.ask(host, port).then((answer) => {
          if (socket.destroyed) return;
          if (answer.approved) terminate(answer.ruleId, `approved for this run by onUnknownHost; each request is checked`, 'approved-unknown-host');
          else deny(`${reason}, and ${answer.reason}`, tcp.ruleId, tcp.code);
        });
        return;
      }
      if (policy.couldAllowHost(host)) {
        // HTTP rules name this host, on other ports only (or a deny rule covers this one): the
        // program most likely speaks HTTP, so the HTTP policy explains the refusal, and a
        // plain-HTTP client gets it as a 403 it can show instead of a bare reset.
        const http = policy.decide({ host, port, method: 'GET', path: '/' });
        const httpReason = syntheticName ? http.reason : `${http.reason} (the program connected to an address, not a name the gateway resolved)`;
        events.emit('connect', { kind: 'connect', conn, client, host, port, decision: 'deny', rule: http.ruleId, reason: httpReason, code: http.code });
        refuseWithHttpAnswer(socket, rest, http.ruleId, httpReason, http.code, options.limits.headersTimeoutMs);
        return;
      }
      deny(reason, tcp.ruleId, tcp.code);
      return;
    }
    const allow = () => events.emit('connect', { kind: 'connect', conn, client, host, port, decision: 'allow', rule: tcp.ruleId, reason: tcp.reason, code: tcp.code });
    // Resolved and checked before the decision is logged, so a refused destination is one deny line.
    options.resolver.resolveDestination(host).then(
      (addresses) => {
        if (socket.destroyed) return;
        allow();
        const tunnelled = options.tcpThroughProxy?.(host, port) ?? null;
        if (tunnelled !== null) relayThroughProxy(socket, tunnelled, rest);
        else relayTcp(socket, addresses, port, rest);
      },
      (error: unknown) => {
        if (isSrtGwError(error, ErrorCodes.UPSTREAM_PRIVATE_DESTINATION)) {
          deny(error.message, tcp.ruleId, 'private-destination');
          return;
        }
        // Not a decision: the rule allowed it, and the host did not resolve.
        allow();
        socket.destroy();
      },
    );
  }
}

/**
 * Answers a refused connection that carries plain HTTP with a 403 naming the rule and reason; a
 * TLS ClientHello (no answer is possible without terminating it) or silence is closed as before.
 */
function refuseWithHttpAnswer(socket: Duplex, rest: Buffer, rule: string, reason: string, code: ReasonCode, timeoutMs: number): void {
  // Bounds the whole exchange: a client that sends nothing, or never stops sending, is cut off.
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  socket.once('close', () => clearTimeout(timer));
  const answer = (first: Buffer) => {
    if (first[0] === TLS_HANDSHAKE_RECORD) {
      socket.destroy();
      return;
    }
    writeRawResponse(socket, denialResponse(403, rule, reason, code));
    // Whatever else the client sends (the rest of a body) is read and dropped: closing with
    // unread bytes would reset the connection before the client reads the answer.
    socket.on('data', () => undefined);
    socket.resume();
  };
  if (rest.length > 0) {
    answer(rest);
    return;
  }
  socket.once('data', answer);
  socket.resume();
}

/** Opaque TCP through a CONNECT tunnel of the upstream proxy; a proxy failure closes the connection. */
function relayThroughProxy(socket: Duplex, tunnelled: Promise<Duplex>, rest: Buffer): void {
  socket.on('error', () => undefined);
  tunnelled.then(
    (upstream) => {
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      spliceConnections(socket, upstream, rest);
    },
    () => socket.destroy(),
  );
}

/** Opaque TCP for an explicit tcp rule: connect to the addresses the gateway resolved and checked. */
function relayTcp(socket: Duplex, addresses: readonly ResolvedAddress[], port: number, rest: Buffer): void {
  // The lookup hands back the checked answer: the socket connects to exactly those addresses.
  const lookup: net.LookupFunction = (_hostname, lookupOptions, callback) => {
    if (lookupOptions.all === true) (callback as unknown as (error: null, all: readonly ResolvedAddress[]) => void)(null, addresses);
    else callback(null, addresses[0]!.address, addresses[0]!.family);
  };
  const upstream = net.connect({ host: 'upstream.invalid', port, lookup, noDelay: true });
  upstream.on('error', () => socket.destroy());
  socket.on('error', () => upstream.destroy());
  // The jail's side may go before the upstream answers.
  socket.once('close', () => upstream.destroy());
  upstream.once('connect', () => spliceConnections(socket, upstream, rest));
}

/**
 * Relays bytes both ways between the jail's connection and an open upstream, `rest` (read
 * before the decision) first; either side ending or failing ends both.
 */
function spliceConnections(socket: Duplex, upstream: Duplex, rest: Buffer): void {
  upstream.on('error', () => socket.destroy());
  socket.on('error', () => upstream.destroy());
  if (rest.length > 0) upstream.write(rest);
  socket.pipe(upstream);
  upstream.pipe(socket);
  socket.resume();
  socket.once('close', () => upstream.destroy());
  upstream.once('close', () => socket.destroy());
}
