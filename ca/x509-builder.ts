// Builds X.509 certificates as DER with node-forge's ASN.1 encoder and signs them with node's
// native crypto. forge's own certificate code is RSA-only and signs in JavaScript (~30 ms), so it
// is not used; forge never parses anything that came from the network (see readCaCertificate).
import crypto from 'node:crypto';
import { asn1, type Asn1 } from './asn1.js';

export const Oids = {
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  sha256WithRsaEncryption: '1.2.840.113549.1.1.11',
} as const;

/** KeyUsage bits (RFC 5280 4.2.1.3), numbered from the most significant bit of the first byte. */
export const KeyUsageBits = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

const oidDerCache = new Map<string, string>();

export function oid(dotted: string): Asn1 {
  let bytes = oidDerCache.get(dotted);
  if (bytes === undefined) {
    bytes = asn1.oidToDer(dotted).getBytes();
    oidDerCache.set(dotted, bytes);
  }
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, bytes);
}

export function sequence(items: Asn1[]): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
}

function octetString(bytes: string): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, bytes);
}

function boolean(value: boolean): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BOOLEAN, false, value ? '\xff' : '\x00');
}

/** A non-negative INTEGER from big-endian bytes (callers pass minimal, positive encodings). */
function integer(bytes: Buffer): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, bytes.toString('binary'));
}

export function der(node: Asn1): Buffer {
  return Buffer.from(asn1.toDer(node).getBytes(), 'binary');
}

type FromDer = (bytes: string, options: { strict: boolean; parseAllBytes: boolean; decodeBitStrings: boolean }) => Asn1;

/**
 * Parses DER that node itself produced or already validated (its own key exports, the operator's
 * CA certificate); never network input. BIT STRINGs stay opaque so they re-encode byte for byte.
 */
export function fromTrustedDer(bytes: Buffer): Asn1 {
  return (asn1.fromDer as unknown as FromDer)(bytes.toString('binary'), { strict: true, parseAllBytes: true, decodeBitStrings: false });
}

/** A random positive serial: 16 bytes, top bit clear (positive), first byte non-zero (minimal DER). */
export function randomSerial(): Buffer {
  const serial = crypto.randomBytes(16);
  serial[0] = serial[0]! & 0x7f || 0x01;
  return serial;
}

/** A Name of UTF8String attributes, one per RDN, in the order given. */
export function distinguishedName(attributes: ReadonlyArray<readonly [oid: string, value: string]>): Asn1 {
  return sequence(
    attributes.map(([type, value]) =>
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [
        sequence([oid(type), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTF8, false, Buffer.from(value, 'utf8').toString('binary'))]),
      ]),
    ),
  );
}

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, Zulu. */
function time(date: Date): Asn1 {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z';
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, digits.slice(2));
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, digits);
}

export interface Extension {
  oid: string;
  critical: boolean;
  value: Asn1;
}

function extension({ oid: type, critical, value }: Extension): Asn1 {
  // critical is BOOLEAN DEFAULT FALSE, so DER omits it when false
  const items = [oid(type)];
  if (critical) items.push(boolean(true));
  items.push(octetString(asn1.toDer(value).getBytes()));
  return sequence(items);
}

export function basicConstraints(ca: boolean, pathLength?: number): Extension {
  const items: Asn1[] = [];
  if (ca) {
    items.push(boolean(true));
    if (pathLength !== undefined) items.push(integer(Buffer.from([pathLength])));
  }
  return { oid: Oids.basicConstraints, critical: true, value: sequence(items) };
}

export function keyUsage(bits: number[]): Extension {
  const bytes = Buffer.alloc(2);
  for (const bit of bits) bytes[bit >> 3] = bytes[bit >> 3]! | (0x80 >> (bit & 7));
  const used = bytes[1] === 0 ? bytes.subarray(0, 1) : bytes;
  const last = used[used.length - 1]!;
  let unusedBits = 0;
  while (unusedBits < 7 && (last & (1 << unusedBits)) === 0) unusedBits += 1;
  const contents = String.fromCharCode(unusedBits) + used.toString('binary');
  return { oid: Oids.keyUsage, critical: true, value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, contents) };
}

export function extendedKeyUsage(purposes: string[]): Extension {
  return { oid: Oids.extKeyUsage, critical: false, value: sequence(purposes.map(oid)) };
}

export function subjectKeyIdentifier(keyId: Buffer): Extension {
  return { oid: Oids.subjectKeyIdentifier, critical: false, value: octetString(keyId.toString('binary')) };
}

export function authorityKeyIdentifier(keyId: Buffer): Extension {
  const keyIdentifier = asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, keyId.toString('binary'));
  return { oid: Oids.authorityKeyIdentifier, critical: false, value: sequence([keyIdentifier]) };
}

export type SubjectAltName = { kind: 'dns'; name: string } | { kind: 'ip'; address: Buffer };

export function subjectAltName(names: SubjectAltName[]): Extension {
  const generalNames = names.map((name) =>
    name.kind === 'dns'
      ? asn1.create(asn1.Class.CONTEXT_SPECIFIC, 2, false, name.name) // dNSName [2] IA5String
      : asn1.create(asn1.Class.CONTEXT_SPECIFIC, 7, false, name.address.toString('binary')), // iPAddress [7]
  );
  return { oid: Oids.subjectAltName, critical: false, value: sequence(generalNames) };
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING contents. */
export function keyIdentifierOf(publicKey: crypto.KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const bitString = fromTrustedDer(spki).value[1] as Asn1;
  const keyBits = Buffer.from((bitString.value as string).slice(1), 'binary'); // minus the unused-bits byte
  return crypto.createHash('sha1').update(keyBits).digest();
}

/** The SubjectPublicKeyInfo exactly as node exports it; checked to survive forge's re-encoding. */
export function subjectPublicKeyInfo(publicKey: crypto.KeyObject): Asn1 {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const node = fromTrustedDer(spki);
  if (!der(node).equals(spki)) throw new Error('SubjectPublicKeyInfo does not round-trip through the ASN.1 encoder');
  return node;
}

/** How a CA key signs: digest and the AlgorithmIdentifier that names it in the certificate. */
export interface CertificateSigner {
  key: crypto.KeyObject;
  digest: 'sha256' | 'sha384';
  algorithm: () => Asn1;
}

/** Supported CA keys: EC P-256 (what srt-gw creates), EC P-384, RSA (an imported CA). */
export function signerFor(key: crypto.KeyObject): CertificateSigner {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    // ECDSA AlgorithmIdentifiers have no parameters field at all (RFC 5758 3.2)
    if (curve === 'prime256v1') return { key, digest: 'sha256', algorithm: () => sequence([oid(Oids.ecdsaWithSha256)]) };
    if (curve === 'secp384r1') return { key, digest: 'sha384', algorithm: () => sequence([oid(Oids.ecdsaWithSha384)]) };
    throw new Error(`unsupported EC curve ${curve ?? 'unknown'} (use P-256 or P-384)`);
  }
  if (type === 'rsa') {
    const nullParameters = () => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '');
    return { key, digest: 'sha256', algorithm: () => sequence([oid(Oids.sha256WithRsaEncryption), nullParameters()]) };
  }
  throw new Error(`unsupported key type ${type ?? 'unknown'} (use EC P-256, EC P-384 or RSA)`);
}

export interface CertificateFields {
  serial: Buffer;
  issuer: Asn1;
  subject: Asn1;
  notBefore: Date;
  notAfter: Date;
  subjectPublicKeyInfo: Asn1;
  extensions: Extension[];
}

/** Encodes the TBSCertificate, signs it natively, and returns the Certificate DER. */
export function signCertificate(fields: CertificateFields, signer: CertificateSigner): Buffer {
  const version = asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [integer(Buffer.from([2]))]); // v3
  const tbs = sequence([
    version,
    integer(fields.serial),
    signer.algorithm(),
    fields.issuer,
    sequence([time(fields.notBefore), time(fields.notAfter)]),
    fields.subject,
    fields.subjectPublicKeyInfo,
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 3, true, [sequence(fields.extensions.map(extension))]),
  ]);
  const tbsDer = der(tbs);
  // ECDSA: node returns the DER Ecdsa-Sig-Value that X.509 expects (dsaEncoding 'der' is the default)
  const signature = crypto.sign(signer.digest, tbsDer, signer.key);
  const signatureBits = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\x00' + signature.toString('binary'));
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }; the signed
  // TBS bytes are spliced in as they are rather than re-encoded.
  const body = Buffer.concat([tbsDer, der(signer.algorithm()), der(signatureBits)]);
  return Buffer.concat([sequenceHeader(body.length), body]);
}

/** SEQUENCE tag and DER definite length (short form below 128, else long form). */
function sequenceHeader(length: number): Buffer {
  if (length < 0x80) return Buffer.from([0x30, length]);
  const lengthBytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) lengthBytes.unshift(rest & 0xff);
  return Buffer.from([0x30, 0x80 | lengthBytes.length, ...lengthBytes]);
}

export function toPem(certificateDer: Buffer): string {
  const base64 = certificateDer.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE-----\n${base64}${base64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`;
}
