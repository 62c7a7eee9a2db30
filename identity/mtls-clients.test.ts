// Client-certificate clients, with certificates made by the repository's X.509 builder and
// presented over a real TLS connection on loopback: common name and URI SAN globs, policy order,
// and certificates that name no one (unverified, several names).
import crypto, { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { asn1 } from '../ca/asn1.js';
import {
  authorityKeyIdentifier,
  basicConstraints,
  distinguishedName,
  extendedKeyUsage,
  keyIdentifierOf,
  keyUsage,
  KeyUsageBits,
  Oids,
  randomSerial,
  sequence,
  signCertificate,
  signerFor,
  subjectKeyIdentifier,
  subjectPublicKeyInfo,
  toPem,
  type Extension,
} from '../ca/x509-builder.js';
import type { PolicyClient } from '../policies/types.js';
import { certificateIdentity, MtlsClients, parseSubjectAltNames, type PresentedCertificate } from './mtls-clients.js';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const DAY = 24 * 3600 * 1000;

interface Authority {
  readonly key: crypto.KeyObject;
  readonly name: ReturnType<typeof distinguishedName>;
  readonly pem: string;
}

function authority(cn: string): Authority {
  const { privateKey: key, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const name = distinguishedName([[Oids.commonName, cn]]);
  const der = signCertificate(
    {
      serial: randomSerial(),
      issuer: name,
      subject: name,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + DAY),
      subjectPublicKeyInfo: subjectPublicKeyInfo(publicKey),
      extensions: [basicConstraints(true, 0), keyUsage([KeyUsageBits.keyCertSign, KeyUsageBits.cRLSign]), subjectKeyIdentifier(keyIdentifierOf(publicKey))],
    },
    signerFor(key),
  );
  return { key, name, pem: toPem(der) };
}

/** A client certificate from `ca` with these common names and URI SANs. */
function clientCertificate(ca: Authority, commonNames: string[], uris: string[] = []): { key: string; cert: string } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const extensions: Extension[] = [
    basicConstraints(false),
    keyUsage([KeyUsageBits.digitalSignature]),
    extendedKeyUsage([CLIENT_AUTH]),
    authorityKeyIdentifier(keyIdentifierOf(crypto.createPublicKey(ca.key))),
  ];
  if (uris.length > 0) {
    // uniformResourceIdentifier [6] IA5String
    const names = uris.map((uri) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 6, false, uri));
    extensions.push({ oid: Oids.subjectAltName, critical: false, value: sequence(names) });
  }
  const der = signCertificate(
    {
      serial: randomSerial(),
      issuer: ca.name,
      subject: distinguishedName([[Oids.organizationName, 'corp'], ...commonNames.map((cn) => [Oids.commonName, cn] as const)]),
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + DAY),
      subjectPublicKeyInfo: subjectPublicKeyInfo(publicKey),
      extensions,
    },
    signerFor(ca.key),
  );
  return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), cert: toPem(der) };
}

const clientCa = authority('srt-gw test client CA');
const otherCa = authority('someone else');
const serverCa = authority('srt-gw test server');
let server: tls.Server;
let port = 0;

beforeAll(async () => {
  // A TLS listener that asks for client certificates and verifies them against clientCa, as the
  // gateway's mTLS listener will; it hands over what the socket says about the peer.
  server = tls.createServer({ key: serverCa.key.export({ type: 'pkcs8', format: 'pem' }), cert: serverCa.pem, requestCert: true, rejectUnauthorized: false, ca: [clientCa.pem] });
  server.on('secureConnection', (socket) => {
    peers.shift()?.({ peer: socket.getPeerCertificate(), x509: socket.getPeerX509Certificate(), authorized: socket.authorized });
    socket.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

type Peer = { peer: tls.PeerCertificate; x509: X509Certificate | undefined; authorized: boolean };
const peers: ((peer: Peer) => void)[] = [];

/** What the listener sees of a client that presents `certificate`. */
async function presentOverTls(certificate: { key: string; cert: string }): Promise<Peer> {
  const seen = new Promise<Peer>((resolve) => peers.push(resolve));
  const socket = tls.connect({ host: '127.0.0.1', port, ...certificate, rejectUnauthorized: false });
  socket.on('error', () => {});
  const peer = await seen;
  socket.destroy();
  return peer;
}

const mtls = (id: string, field: 'cn' | 'uri', pattern: string): PolicyClient & { credential: { kind: 'mtls'; field: 'cn' | 'uri'; pattern: string } } => ({
  id,
  credential: { kind: 'mtls', field, pattern },
});

const clients = new MtlsClients([
  mtls('runners', 'cn', 'runner-*'),
  mtls('agents', 'uri', 'spiffe://corp/ns/agents/sa/*'),
  mtls('any-runner', 'cn', '**'),
]);

describe('MtlsClients over a real TLS connection', () => {
  test('names the client by the common name of a verified certificate', async () => {
    const { peer, authorized } = await presentOverTls(clientCertificate(clientCa, ['runner-7']));
    expect(authorized).toBe(true);
    expect(clients.match({ certificate: peer, authorized })).toEqual({ ok: true, clientId: 'runners' });
  });

  test('names the client by its one URI SAN, from getPeerX509Certificate() too', async () => {
    const { peer, x509, authorized } = await presentOverTls(clientCertificate(clientCa, ['builder'], ['spiffe://corp/ns/agents/sa/builder']));
    expect(certificateIdentity(peer)).toEqual({ commonName: 'builder', uris: ['spiffe://corp/ns/agents/sa/builder'] });
    expect(clients.match({ certificate: peer, authorized })).toEqual({ ok: true, clientId: 'agents' });
    expect(clients.match({ certificate: x509!, authorized })).toEqual({ ok: true, clientId: 'agents' });
  });

  test('takes the first client in policy order', async () => {
    const { peer, authorized } = await presentOverTls(clientCertificate(clientCa, ['runner-1'], ['spiffe://corp/ns/agents/sa/builder']));
    expect(clients.match({ certificate: peer, authorized })).toEqual({ ok: true, clientId: 'runners' });
  });

  test('unverified: a certificate from another CA names no one, whatever its name', async () => {
    const { peer, authorized } = await presentOverTls(clientCertificate(otherCa, ['runner-7']));
    expect(authorized).toBe(false);
    expect(clients.match({ certificate: peer, authorized })).toEqual({ ok: false, reason: 'unverified', detail: 'the client certificate did not verify against the client CA' });
  });

  test('a certificate with two URI SANs is not matched by URI, nor one with two common names by CN', async () => {
    const only = new MtlsClients([mtls('agents', 'uri', 'spiffe://corp/**'), mtls('runners', 'cn', 'runner-*')]);
    const twoUris = await presentOverTls(clientCertificate(clientCa, ['x'], ['spiffe://corp/a', 'spiffe://corp/b']));
    expect(only.match({ certificate: twoUris.peer, authorized: twoUris.authorized })).toEqual({
      ok: false,
      reason: 'not-allowed',
      detail: 'no client matches the certificate (CN="x", 2 URI names)',
    });
    const twoNames = await presentOverTls(clientCertificate(clientCa, ['runner-1', 'runner-2']));
    expect(only.match({ certificate: twoNames.peer, authorized: twoNames.authorized })).toMatchObject({ ok: false, detail: expect.stringContaining('no single common name') });
  });

  test('a URI with a comma survives node\'s quoting', async () => {
    const { peer, authorized } = await presentOverTls(clientCertificate(clientCa, ['x'], ['spiffe://corp/ns/agents/sa/a,b']));
    expect(certificateIdentity(peer)).toMatchObject({ uris: ['spiffe://corp/ns/agents/sa/a,b'] });
    expect(clients.match({ certificate: peer, authorized })).toEqual({ ok: true, clientId: 'agents' });
  });

  test('no certificate presented', () => {
    const presented: PresentedCertificate = { certificate: {} as tls.PeerCertificate, authorized: true };
    expect(clients.match(presented)).toEqual({ ok: false, reason: 'not-allowed', detail: 'the client certificate cannot be used: no certificate was presented' });
  });
});

describe('parseSubjectAltNames', () => {
  test.each([
    ['DNS:a.example, URI:spiffe://corp/x, IP Address:10.0.0.1', [{ type: 'DNS', value: 'a.example' }, { type: 'URI', value: 'spiffe://corp/x' }, { type: 'IP Address', value: '10.0.0.1' }]],
    ['URI:"spiffe://corp/a, URI:spiffe://corp/admin", DNS:b', [{ type: 'URI', value: 'spiffe://corp/a, URI:spiffe://corp/admin' }, { type: 'DNS', value: 'b' }]],
    ['URI:"a\\"b"', [{ type: 'URI', value: 'a"b' }]],
    ['URI:"unterminated', undefined],
    ['no colon here', undefined],
    ['URI:"a"x', undefined],
  ])('%j', (text, names) => {
    expect(parseSubjectAltNames(text)).toEqual(names);
  });
});
