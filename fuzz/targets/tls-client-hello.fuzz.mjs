// A client's first TLS flight (the ClientHello and whatever follows), as the tunnel terminator
// receives it. No JavaScript parses the ClientHello: node's TLS (OpenSSL) does, and hands the
// server name to the SNI check, which this target runs as gateway/tls/tunnel-terminator.ts does
// (normalizeHost, then equality with the tunnel's host). So this target covers the bytes → SNI →
// normalizeHost path, OpenSSL included, with coverage counted on the JavaScript side.
// Contract: the SNI check never throws, a name it accepts is the tunnel host exactly, and the
// connection closes once the client has sent everything (no hang).
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { normalizeHost } from '../../dist/policies/host.js';
import { expect, expectEqual, violation, withinDeadline } from '../target-contract.mjs';

const TUNNEL_HOST = 'api.example.com';
const DEADLINE_MS = 3000;

// A throwaway self-signed P-256 leaf, made once per run: the handshake must get past certificate
// selection for the server to read the whole ClientHello.
const pem = execFileSync(
  'openssl',
  ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${TUNNEL_HOST}`, '-days', '1', '-keyout', '-', '-out', '-'],
  { stdio: ['ignore', 'pipe', 'ignore'] },
).toString();
const secureContext = tls.createSecureContext({ key: pem, cert: pem, minVersion: 'TLSv1.2' });

let failure = null;

function sniCheck(servername, callback) {
  try {
    expect(typeof servername === 'string', 'OpenSSL hands the SNI callback a string');
    const name = normalizeHost(servername);
    if (name !== TUNNEL_HOST) {
      callback(new Error(`TLS server name ${servername.slice(0, 253)} does not match the tunnel host ${TUNNEL_HOST}`));
      return;
    }
    expectEqual(normalizeHost(name), name, 'accepted SNI normalises to itself');
    callback(null);
  } catch (error) {
    failure ??= error instanceof Error && error.name === 'FuzzContractViolation' ? error : violation(`SNI check threw: ${error}`, error);
    callback(error);
  }
}

class ClientConnection extends Duplex {
  _read() {}
  _write(_chunk, _encoding, callback) {
    callback();
  }
}

export async function fuzz(data) {
  failure = null;
  const transport = new ClientConnection();
  const socket = new tls.TLSSocket(transport, {
    isServer: true,
    secureContext,
    ALPNProtocols: ['h2', 'http/1.1'],
    SNICallback: sniCheck,
  });
  socket.on('error', () => undefined);
  socket.on('secure', () => socket.destroy());
  const closed = new Promise((resolve) => socket.once('close', resolve));
  transport.push(data);
  transport.push(null);
  // The server answers and then waits for the client's next flight, which never comes: the end of
  // input must close it.
  socket.on('end', () => socket.destroy());
  setImmediate(() => socket.end());
  try {
    await withinDeadline(closed, DEADLINE_MS, 'the TLS connection after the client sent everything');
  } finally {
    socket.destroy();
    transport.destroy();
  }
  if (failure) throw failure;
}
