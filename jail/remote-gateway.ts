// `srt-gw run --gateway URL`: the jail's traffic is decided by a remote `srt-gw serve` (a fleet's
// central policy, audit log and metrics) instead of a gateway embedded in this process. This side
// decides nothing and terminates no TLS: the jail's DNS gets a synthetic address for every name
// (no query leaves the machine), and each connection the jail's redirector hands over becomes one
// authenticated `CONNECT name:port` to the remote, whose bytes are then spliced. The remote
// answers 403 (its policy) or 407 (its clients:) and the connection is closed; its reasons are
// collected for the run's summary.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { normalizeHost } from '../policies/host.js';
import { formatAuthority } from '../gateway/connection-context.js';
import { DnsResponder } from '../gateway/dns/responder.js';
import { serveDnsOverUnixSocket } from '../gateway/dns/server.js';
import { SyntheticAddressPool } from '../gateway/dns/synthetic-pool.js';
import type { JailEndpoints } from '../gateway/gateway.js';
import type { OriginalDestination } from '../gateway/listeners/proxy-protocol-header.js';
import { REASON_HEADER } from '../gateway/http/responses.js';
import { loadUpstreamTrust } from '../gateway/tls/trust-store.js';
import { ConnectResponseReader, type ConnectResponseHead } from '../gateway/upstream/upstream-proxy.js';
import type { Denial } from './denial-summary.js';

/** The environment variable the token is read from (preferred to --token, which `ps` shows). */
export const GATEWAY_TOKEN_ENV = 'SRT_GW_GATEWAY_TOKEN';

/** The name the start-up probe CONNECTs to: reserved (RFC 2606), so no rule allows it and no resolver is asked. */
export const PROBE_TARGET = { host: 'srt-gw-probe.invalid', port: 443 } as const;

/** Bound on the body of a refusal read for its reason. */
const MAX_REFUSAL_BODY_BYTES = 8 * 1024;
/** Denial groups kept for the summary; later ones are only counted. */
const MAX_DENIAL_GROUPS = 200;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/**
 * Connections of the jail open at once; beyond, new ones are closed. Each holds a connection to
 * the remote too: a command that opens connections without end must not exhaust this process's
 * descriptors (the remote has limits of its own).
 */
const MAX_OPEN_CONNECTIONS = 1024;

export interface RemoteGatewayOptions {
  /** `https://host:port` (TLS to the remote, the usual) or `http://host:port`. */
  url: string;
  /** The bearer token of one of the remote policy's `clients:`. */
  token: string;
  /**
   * PEM files: the CA of the remote's --tls-cert (added to the system roots for the connection to
   * the remote) and the remote's interception CA (which the jail's clients must trust, since the
   * remote terminates their TLS). Both go into the jail's trust bundle; neither holds a secret.
   */
  caFiles: readonly string[];
  connectTimeoutMs?: number;
}

interface RemoteGatewayConfig {
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  /** The URL as messages show it (no credentials: parseRemoteGatewayUrl refuses them). */
  readonly display: string;
}

/** Why the remote refused or failed one CONNECT. */
export interface RemoteRefusal {
  /** The remote's status, or null when no answer came (unreachable, TLS failure, timeout). */
  readonly status: number | null;
  readonly rule: string | null;
  readonly reason: string;
}

type TunnelOutcome = { ok: true; socket: net.Socket | tls.TLSSocket; head: Buffer } | { ok: false; refusal: RemoteRefusal };

function configError(message: string): SrtGwError {
  return new SrtGwError(ErrorCodes.CONFIG_INVALID, `--gateway: ${message}`);
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function parseRemoteGatewayUrl(text: string): RemoteGatewayConfig {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw configError(`"${text}" is not a URL (expected https://host:port)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw configError(`scheme ${url.protocol} is not supported (use https://host:port)`);
  if (url.hostname === '') throw configError('the URL names no host');
  // A token in the URL would be in `ps` and in shell history: it comes from the environment.
  if (url.username !== '' || url.password !== '') throw configError(`put no credentials in the URL; give the token in ${GATEWAY_TOKEN_ENV}`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') throw configError('the URL must be only scheme://host:port');
  const secure = url.protocol === 'https:';
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  // The token travels with every CONNECT: in the clear only to this machine itself.
  if (!secure && !isLoopbackHost(host)) throw configError(`http:// would send the token to ${host} in the clear; use https://${formatAuthority(host, port)}`);
  return { secure, host, port, display: `${url.protocol}//${formatAuthority(host, port)}` };
}

function readCaFile(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--gateway-ca ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
  }
  // SECURITY: the file is copied into the jail's trust bundle; a key in it would be a secret inside.
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--gateway-ca ${file}: it holds a private key; give the certificate only`);
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--gateway-ca ${file}: no PEM certificate in it`);
  return pem;
}

/** A remote `srt-gw serve` this run's jail goes through. */
export class RemoteGateway {
  private readonly groups = new Map<string, { -readonly [K in keyof Denial]: Denial[K] }>();
  private omitted = 0;
  private trustContext: tls.SecureContext | null = null;

  private constructor(
    private readonly config: RemoteGatewayConfig,
    private readonly authorization: string,
    /** The --gateway-ca certificates, for the connection to the remote and the jail's trust bundle. */
    readonly caPem: string,
    private readonly connectTimeoutMs: number,
  ) {}

  /** Checks the settings and probes the remote once: fails with an actionable error when it is unreachable or refuses the token. */
  static async connect(options: RemoteGatewayOptions): Promise<RemoteGateway> {
    const config = parseRemoteGatewayUrl(options.url);
    if (options.token === '') throw configError(`no token: set ${GATEWAY_TOKEN_ENV} (or --token) to a token of the remote's clients:`);
    if (/[\s]/.test(options.token)) throw configError('the token contains white space or a line break');
    // The remote terminates the jail's TLS with its CA: without that certificate every client in
    // the jail would refuse every connection.
    if (options.caFiles.length === 0) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, "--gateway needs --gateway-ca FILE: the remote's interception CA (its ca.pem; srt-gw ca path on the remote prints where), and the CA of its TLS certificate unless the system trusts it");
    const caPem = options.caFiles.map(readCaFile).join('\n');
    const remote = new RemoteGateway(config, `Bearer ${options.token}`, caPem, options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    if (config.secure) {
      try {
        remote.secureContext();
      } catch (error) {
        throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--gateway-ca: a certificate could not be read (${(error as Error).message})`, { cause: error });
      }
    }
    await remote.probe();
    return remote;
  }

  get url(): string {
    return this.config.display;
  }

  /**
   * One CONNECT to a reserved name no rule can allow: a 407 means the remote refused the token, a
   * 403 that it authenticated it (or has no clients:), a 200 that it lets everything through (report
   * mode). No answer, TLS that does not verify, or another status means the remote cannot be used.
   */
  private async probe(): Promise<void> {
    const outcome = await this.openTunnel(PROBE_TARGET.host, PROBE_TARGET.port);
    if (outcome.ok) {
      outcome.socket.destroy();
      return;
    }
    const { status, reason } = outcome.refusal;
    if (status === 407 || status === 401) {
      throw new SrtGwError(ErrorCodes.REMOTE_GATEWAY, `the gateway ${this.url} refused the token (${status}: ${reason}); check ${GATEWAY_TOKEN_ENV} against its clients: (srt-gw token issue)`);
    }
    if (status === null) throw new SrtGwError(ErrorCodes.REMOTE_GATEWAY, `the gateway ${this.url} cannot be used: ${reason}`);
    // srt-gw serve denies the reserved name (403); any other answer is not its proxy port.
    if (status !== 403) {
      throw new SrtGwError(ErrorCodes.REMOTE_GATEWAY, `the gateway ${this.url} answered the probe CONNECT ${PROBE_TARGET.host}:${PROBE_TARGET.port} with ${status} (${reason}); is it the proxy port of srt-gw serve?`);
    }
  }

  /** A tunnel to `host:port` through the remote, or the remote's refusal. Never rejects. */
  openTunnel(host: string, port: number): Promise<TunnelOutcome> {
    const target = formatAuthority(host, port);
    const { config } = this;
    return new Promise<TunnelOutcome>((resolve) => {
      let done = false;
      let socket: net.Socket | tls.TLSSocket;
      const finish = (outcome: TunnelOutcome) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('end', onEnd);
        if (!outcome.ok) socket.destroy();
        resolve(outcome);
      };
      const fail = (reason: string, status: number | null = null, rule: string | null = null) => finish({ ok: false, refusal: { status, rule, reason } });
      const timer = setTimeout(() => fail(`no answer to CONNECT ${target} within ${Math.round(this.connectTimeoutMs / 1000)} s`), this.connectTimeoutMs);
      const sendConnect = () => {
        // SECURITY: the token goes only to the remote, never into the jail (the jail's environment
        // drops GATEWAY_TOKEN_ENV; its own /proc shows no process of the host) — test/e2e/run-remote-gateway.test.ts
        socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: ${this.authorization}\r\n\r\n`);
      };
      if (config.secure) {
        socket = tls.connect({
          host: config.host,
          port: config.port,
          ...(net.isIP(config.host) === 0 ? { servername: config.host } : {}),
          secureContext: this.secureContext(),
          rejectUnauthorized: true,
          ALPNProtocols: ['http/1.1'],
        });
        socket.once('secureConnect', sendConnect);
      } else {
        socket = net.connect({ host: config.host, port: config.port });
        socket.once('connect', sendConnect);
      }
      socket.setNoDelay(true);
      const reader = new ConnectResponseReader();
      let refused: ConnectResponseHead | null = null;
      let body: Buffer = Buffer.alloc(0);
      const refusal = () => {
        const answer = refused!;
        let rule: string | null = null;
        let reason = answer.headers.get(REASON_HEADER) ?? '';
        try {
          const parsed = JSON.parse(body.toString('utf8')) as { rule?: unknown; reason?: unknown; code?: unknown };
          if (typeof parsed.rule === 'string') rule = parsed.rule;
          if (typeof parsed.reason === 'string' && parsed.reason !== '') reason = parsed.reason;
          else if (reason === '' && typeof parsed.code === 'string') reason = parsed.code;
        } catch {
          // Not the remote's JSON: the header (or the status) says why.
        }
        fail(reason === '' ? `${answer.status} ${answer.statusText}`.trim() : reason, answer.status, rule);
      };
      const onData = (chunk: Buffer) => {
        if (refused !== null) {
          body = Buffer.concat([body, chunk]);
          if (body.length >= Math.min(MAX_REFUSAL_BODY_BYTES, Number(refused.headers.get('content-length') ?? MAX_REFUSAL_BODY_BYTES))) refusal();
          return;
        }
        let head: ConnectResponseHead | null;
        try {
          head = reader.push(chunk);
        } catch {
          fail(`the gateway did not answer CONNECT ${target} with HTTP/1.x`);
          return;
        }
        if (head === null) return;
        if (head.status >= 200 && head.status <= 299) {
          socket.pause();
          finish({ ok: true, socket, head: head.rest });
          return;
        }
        refused = head;
        body = head.rest;
        onData(Buffer.alloc(0));
      };
      const onEnd = () => (refused !== null ? refusal() : fail(`the gateway closed the connection before answering CONNECT ${target}`));
      socket.on('data', onData);
      socket.on('end', onEnd);
      socket.on('error', (error: NodeJS.ErrnoException) => {
        const code = error.code ?? '';
        if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /CERT|SIGNATURE|ISSUER/.test(code)) {
          fail(`its TLS certificate did not verify (${code}); give the CA that issued it with --gateway-ca`);
        } else if (done) {
          // A tunnel's error after the CONNECT: the splice closes both sides.
        } else {
          fail(`it could not be reached (${code || error.message})`);
        }
      });
    });
  }

  private secureContext(): tls.SecureContext {
    this.trustContext ??= tls.createSecureContext({ ca: [...loadUpstreamTrust(), ...(this.caPem === '' ? [] : [this.caPem])] });
    return this.trustContext;
  }

  /** The jail's DNS (every name gets a synthetic address) and its door for redirected connections. */
  async openJailEndpoints(dnsSocket: string, clientLabel: string): Promise<JailEndpoints> {
    const pool = new SyntheticAddressPool();
    // SECURITY: no name is resolved here or asked of any server: the answer is a synthetic address
    // whatever the name, and the remote decides on the name when the program connects. A name that
    // only travels in a DNS query reaches nobody — test/e2e/run-remote-gateway.test.ts
    const responder = new DnsResponder({ admission: { couldAllowHost: () => true }, pool, onQuery: () => undefined });
    const dns = await serveDnsOverUnixSocket(responder, dnsSocket, { clientLabel });
    const owned = new Set<net.Socket>();
    let open = 0;
    let closing: Promise<void> | null = null;
    const acceptRedirected = (socket: net.Socket, destination: OriginalDestination): void => {
      if (closing !== null || open >= MAX_OPEN_CONNECTIONS) {
        socket.destroy();
        return;
      }
      open++;
      owned.add(socket);
      socket.once('close', () => {
        open--;
        owned.delete(socket);
      });
      socket.on('error', () => undefined);
      socket.pause();
      // A synthetic address stands for its name; any other is an IP literal the remote's rules
      // must name, as for its own jails.
      const host = pool.nameFor(destination.address) ?? normalizeHost(destination.address);
      if (!host) {
        socket.destroy();
        return;
      }
      void this.openTunnel(host, destination.port).then((outcome) => {
        if (!outcome.ok) {
          this.recordRefusal(host, destination.port, outcome.refusal);
          socket.destroy();
          return;
        }
        const upstream = outcome.socket;
        if (socket.destroyed || closing !== null) {
          upstream.destroy();
          return;
        }
        owned.add(upstream);
        upstream.once('close', () => owned.delete(upstream));
        upstream.on('error', () => socket.destroy());
        socket.on('error', () => upstream.destroy());
        if (outcome.head.length > 0) socket.write(outcome.head);
        socket.pipe(upstream);
        upstream.pipe(socket);
        socket.once('close', () => upstream.destroy());
        upstream.once('close', () => socket.destroy());
        socket.resume();
        upstream.resume();
      });
    };
    return {
      clientLabel,
      dnsSocket,
      acceptRedirected,
      close() {
        closing ??= (async () => {
          for (const socket of owned) socket.destroy();
          await dns.close();
        })();
        return closing;
      },
    };
  }

  private recordRefusal(host: string, port: number, refusal: RemoteRefusal): void {
    const kind: Denial['kind'] = refusal.status === null || refusal.status >= 500 ? 'upstream' : 'connection';
    const reason = refusal.status === null ? `the gateway ${this.url}: ${refusal.reason}` : `the gateway ${this.url} answered ${refusal.status}: ${refusal.reason}`;
    const key = `${kind}\0${host}\0${port}\0${refusal.rule ?? ''}\0${reason}`;
    const group = this.groups.get(key);
    if (group) {
      group.count++;
      return;
    }
    if (this.groups.size >= MAX_DENIAL_GROUPS) {
      this.omitted++;
      return;
    }
    this.groups.set(key, { kind, host, port, rule: refusal.rule, reason, count: 1, monitored: false });
  }

  /** What the remote refused this run, grouped as the local summary groups its own denials. */
  denials(): { denials: Denial[]; omitted: number } {
    return { denials: [...this.groups.values()].map((group) => ({ ...group })), omitted: this.omitted };
  }
}
