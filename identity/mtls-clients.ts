// Client-certificate clients (`mtls:` in `clients:`): who a verified peer certificate is, by its
// subject's common name or its one URI subject alternative name (a SPIFFE id, say), matched
// against each client's glob in policy order.
import type { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import type { ClientCredential, PolicyClient } from '../policies/types.js';
import { compileSubjectGlob, type SubjectMatcher } from './subject-glob.js';

/** A certificate the client presented on a TLS listener. */
export interface PresentedCertificate {
  /** As the TLS socket gives it: getPeerCertificate() or getPeerX509Certificate(). */
  readonly certificate: PeerCertificate | X509Certificate;
  /**
   * socket.authorized: the chain verified against the listener's client CA. An unverified
   * certificate names no one: anyone can make one with any name.
   */
  readonly authorized: boolean;
}

export interface CertificateIdentity {
  /** The subject's one common name, if it has exactly one. */
  readonly commonName?: string;
  /** Every URI subject alternative name, in certificate order. */
  readonly uris: readonly string[];
}

type MtlsCredential = Extract<ClientCredential, { kind: 'mtls' }>;

/** The names a certificate carries, or why they cannot be read. */
export function certificateIdentity(certificate: PeerCertificate | X509Certificate): CertificateIdentity | { readonly error: string } {
  const legacy: Partial<PeerCertificate> = 'toLegacyObject' in certificate ? certificate.toLegacyObject() : certificate;
  if (legacy.subject === undefined && legacy.raw === undefined) return { error: 'no certificate was presented' };
  const cn: unknown = legacy.subject?.CN;
  const uris: string[] = [];
  if (typeof legacy.subjectaltname === 'string' && legacy.subjectaltname !== '') {
    const names = parseSubjectAltNames(legacy.subjectaltname);
    if (names === undefined) return { error: 'its subject alternative names cannot be read' };
    for (const { type, value } of names) if (type === 'URI') uris.push(value);
  }
  return { ...(typeof cn === 'string' ? { commonName: cn } : {}), uris };
}

/**
 * Node's subjectaltname text: "DNS:a.example, URI:spiffe://corp/x, IP Address:10.0.0.1", where a
 * value holding a comma, quote or other special character is written as a JSON string
 * (URI:"spiffe://corp/a,b"). Undefined when the text is not in that form.
 */
export function parseSubjectAltNames(text: string): { type: string; value: string }[] | undefined {
  const names: { type: string; value: string }[] = [];
  let at = 0;
  while (at < text.length) {
    const colon = text.indexOf(':', at);
    if (colon === -1) return undefined;
    const type = text.slice(at, colon);
    let end: number;
    let value: string;
    if (text[colon + 1] === '"') {
      let close = colon + 2;
      while (close < text.length && text[close] !== '"') close += text[close] === '\\' ? 2 : 1;
      if (close >= text.length) return undefined;
      try {
        value = JSON.parse(text.slice(colon + 1, close + 1)) as string;
      } catch {
        return undefined;
      }
      end = close + 1;
    } else {
      const separator = text.indexOf(', ', colon + 1);
      end = separator === -1 ? text.length : separator;
      value = text.slice(colon + 1, end);
    }
    names.push({ type, value });
    if (end === text.length) break;
    if (!text.startsWith(', ', end)) return undefined;
    at = end + 2;
  }
  return names;
}

export type MtlsMatch = { readonly ok: true; readonly clientId: string } | { readonly ok: false; readonly reason: 'unverified' | 'not-allowed'; readonly detail: string };

export class MtlsClients {
  private readonly clients: readonly { readonly id: string; readonly field: 'cn' | 'uri'; readonly matches: SubjectMatcher }[];

  constructor(clients: readonly (PolicyClient & { readonly credential: MtlsCredential })[]) {
    this.clients = clients.map(({ id, credential }) => ({ id, field: credential.field, matches: compileSubjectGlob(credential.pattern) }));
  }

  get size(): number {
    return this.clients.length;
  }

  /** The first client, in policy order, that the certificate names. */
  match(presented: PresentedCertificate): MtlsMatch {
    // SECURITY: an unverified certificate could carry any name — identity/mtls-clients.test.ts "unverified".
    if (!presented.authorized) return { ok: false, reason: 'unverified', detail: 'the client certificate did not verify against the client CA' };
    const identity = certificateIdentity(presented.certificate);
    if ('error' in identity) return { ok: false, reason: 'not-allowed', detail: `the client certificate cannot be used: ${identity.error}` };
    // SPIFFE: an X.509 SVID has exactly one URI SAN; with several, which one names the client is unclear.
    const uri = identity.uris.length === 1 ? identity.uris[0] : undefined;
    for (const client of this.clients) {
      const name = client.field === 'cn' ? identity.commonName : uri;
      if (name !== undefined && client.matches(name)) return { ok: true, clientId: client.id };
    }
    return { ok: false, reason: 'not-allowed', detail: `no client matches the certificate (${describeIdentity(identity)})` };
  }
}

function describeIdentity(identity: CertificateIdentity): string {
  const parts = [identity.commonName === undefined ? 'no single common name' : `CN=${JSON.stringify(identity.commonName).slice(0, 130)}`];
  if (identity.uris.length === 1) parts.push(`URI ${JSON.stringify(identity.uris[0]).slice(0, 200)}`);
  else parts.push(identity.uris.length === 0 ? 'no URI name' : `${identity.uris.length} URI names`);
  return parts.join(', ');
}
