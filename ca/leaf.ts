// Leaf certificates for the hosts the gateway terminates TLS for. All leaves of one CA instance
// share one in-memory P-256 key, so a never-seen name costs one ECDSA signature, not a key
// generation (per-host RSA keygen is ~170 ms on the event loop; docs/design.md, "Certificates").
import crypto from 'node:crypto';
import net from 'node:net';
import type { Asn1 } from './asn1.js';
import {
  authorityKeyIdentifier,
  basicConstraints,
  distinguishedName,
  extendedKeyUsage,
  KeyUsageBits,
  keyUsage,
  Oids,
  randomSerial,
  signCertificate,
  subjectAltName,
  subjectPublicKeyInfo,
  toPem,
  type CertificateSigner,
  type Extension,
  type SubjectAltName,
} from './x509-builder.js';

export interface LeafCertificate {
  /** The host the leaf is for, as passed in (a normalised DNS name or an IP literal). */
  host: string;
  certPem: string;
  /** PKCS#8 PEM of the shared leaf key (the same for every leaf of one CA instance). */
  keyPem: string;
  notAfter: Date;
}

/** Backdated so a client whose clock is a little behind still accepts a fresh leaf. */
export const LEAF_BACKDATE_MS = 60 * 60 * 1000;
/** Short-lived: a leaf that escapes is useless within a week, and the cache re-issues freely. */
export const LEAF_LIFETIME_MS = 7 * 24 * 60 * 60 * 1000;
/** X.520 ub-common-name. The SAN carries the full name; CN is informational. */
const MAX_COMMON_NAME = 64;

const DNS_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const NUMERIC_LABEL = /^[0-9]+$/;

/**
 * The SAN entry for `host`, or an error message when `host` is not a normalised DNS name
 * (lower case, no trailing dot, LDH labels, underscores tolerated, no wildcard) or an IP literal.
 */
export function leafSubjectAltName(host: string): SubjectAltName | string {
  if (net.isIPv4(host)) return { kind: 'ip', address: Buffer.from(host.split('.').map(Number)) };
  // Only a name with ":" can be IPv6: the first net.isIPv6 call compiles node's IPv6 pattern,
  // ~9 ms of a start-up whose one leaf (the CA probe) is for a DNS name.
  if (host.includes(':') && net.isIPv6(host)) {
    const address = ipv6Bytes(host);
    return address ? { kind: 'ip', address } : `"${printable(host)}" is not a plain IPv6 address (no zone id or brackets)`;
  }
  if (host.length === 0) return 'host name is empty';
  if (host.length > 253) return `host name is longer than 253 characters (${host.length})`;
  const labels = host.split('.');
  for (const label of labels) {
    if (!DNS_LABEL.test(label)) return `"${printable(host)}" is not a normalised DNS name (label "${printable(label)}")`;
  }
  // "1.2.3" or "999.1.1.1" would be read as an address by some resolvers; never a name
  if (NUMERIC_LABEL.test(labels[labels.length - 1]!)) return `"${host}" is neither a DNS name nor an IP address`;
  return { kind: 'dns', name: host };
}

/** Whether `host` can be the name of a leaf certificate. */
export function isValidLeafHost(host: string): boolean {
  return typeof leafSubjectAltName(host) !== 'string';
}

function printable(text: string): string {
  return JSON.stringify(text.slice(0, 80)).slice(1, -1);
}

/** 16 network-order bytes for an address net.isIPv6 accepted, or null for forms with a zone id. */
function ipv6Bytes(text: string): Buffer | null {
  if (text.includes('%') || text.includes('[')) return null;
  let head = text;
  let tail = '';
  const gap = text.indexOf('::');
  if (gap !== -1) {
    head = text.slice(0, gap);
    tail = text.slice(gap + 2);
  }
  const groups = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const [a, b, c, d] = piece.split('.').map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else {
        out.push(parseInt(piece, 16));
      }
    }
    return out;
  };
  const front = groups(head);
  const back = groups(tail);
  const zeros = gap === -1 ? 0 : 8 - front.length - back.length;
  const all = [...front, ...new Array<number>(zeros).fill(0), ...back];
  if (all.length !== 8 || all.some((group) => !Number.isInteger(group) || group < 0 || group > 0xffff)) return null;
  const bytes = Buffer.alloc(16);
  all.forEach((group, index) => bytes.writeUInt16BE(group, index * 2));
  return bytes;
}

export interface LeafIssuerOptions {
  /** The CA's subject Name, byte for byte as in its certificate (becomes the leaf's issuer). */
  issuerName: Asn1;
  /** The CA's subjectKeyIdentifier, if it has one (becomes the leaf's authorityKeyIdentifier). */
  issuerKeyId: Buffer | undefined;
  issuerNotAfter: Date;
  signer: CertificateSigner;
}

/** Issues leaves signed by one CA, all for one shared key generated here and kept in memory. */
export class LeafIssuer {
  readonly keyPem: string;
  private readonly publicKeyInfo: Asn1;
  private readonly fixedExtensions: Extension[];

  constructor(private readonly options: LeafIssuerOptions) {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    // Exported once: every SecureContext gets this same string, never a fresh export.
    this.keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    this.publicKeyInfo = subjectPublicKeyInfo(publicKey);
    this.fixedExtensions = [
      basicConstraints(false),
      keyUsage([KeyUsageBits.digitalSignature]),
      extendedKeyUsage([Oids.serverAuth]),
      ...(options.issuerKeyId ? [authorityKeyIdentifier(options.issuerKeyId)] : []),
    ];
  }

  /** Throws (TypeError) when `host` is not a normalised DNS name or IP literal. */
  issue(host: string, now: Date = new Date()): LeafCertificate {
    const altName = leafSubjectAltName(host);
    if (typeof altName === 'string') throw new TypeError(`cannot issue a leaf certificate: ${altName}`);
    const notBefore = new Date(now.getTime() - LEAF_BACKDATE_MS);
    // never outlive the CA: a chain with an expired issuer fails anyway, and clearly so
    const notAfter = new Date(Math.min(now.getTime() + LEAF_LIFETIME_MS, this.options.issuerNotAfter.getTime()));
    const certificate = signCertificate(
      {
        serial: randomSerial(),
        issuer: this.options.issuerName,
        subject: distinguishedName([[Oids.commonName, host.slice(0, MAX_COMMON_NAME)]]),
        notBefore,
        notAfter,
        subjectPublicKeyInfo: this.publicKeyInfo,
        extensions: [subjectAltName([altName]), ...this.fixedExtensions],
      },
      this.options.signer,
    );
    return { host, certPem: toPem(certificate), keyPem: this.keyPem, notAfter: truncateToSeconds(notAfter) };
  }
}

/** Certificates carry whole seconds; report the time the certificate actually says. */
function truncateToSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}
