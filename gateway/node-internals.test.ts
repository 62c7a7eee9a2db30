// The checks of node's private internals: each passes on the node that runs the tests, and each
// notices a node without the internal, failing closed (a NodeInternalsError that names it) where
// node has no public way, or reporting "not available" where the caller has one.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../errors.js';
import {
  canSetDefaultSecureContext,
  canSetV8Flags,
  checkTlsSocketWrapping,
  checkWrappedSocket,
  NodeInternalsError,
  replaceableCertificateOf,
  setDefaultSecureContext,
  setV8Flag,
  startHeaderTimeoutChecks,
  wrappedSocketOf,
} from './node-internals.js';

describe('the HTTP servers that never listen', () => {
  it("start node's connection check timer on 'listening' (the header timeout)", () => {
    for (const server of [http.createServer(), http2.createSecureServer({ allowHTTP1: true })]) {
      expect(() => startHeaderTimeoutChecks(server, 1000)).not.toThrow();
      server.close();
    }
  });

  it('fail closed on a server that starts no timer', () => {
    const server = { emit: () => true };
    expect(() => startHeaderTimeoutChecks(server, 1000)).toThrow(NodeInternalsError);
    expect(() => startHeaderTimeoutChecks(server, 1000)).toThrow(expect.objectContaining({ code: ErrorCodes.NODE_UNSUPPORTED, message: expect.stringMatching(/slowloris/) }));
  });
});

describe("the TLS server's default credentials (_sharedCreds)", () => {
  it('are a SecureContext on node 20, and can be set', () => {
    const server = http2.createSecureServer({ allowHTTP1: true });
    expect(canSetDefaultSecureContext(server)).toBe(true);
    const context = tls.createSecureContext();
    setDefaultSecureContext(server, context);
    expect((server as unknown as { _sharedCreds: unknown })._sharedCreds).toBe(context);
  });

  it('are reported missing (the SNICallback then hands out the leaf) when absent or of another type', () => {
    expect(canSetDefaultSecureContext({})).toBe(false);
    expect(canSetDefaultSecureContext({ _sharedCreds: { context: {} } })).toBe(false);
    expect(canSetDefaultSecureContext({ _sharedCreds: 'creds' })).toBe(false);
  });
});

describe('the socket a TLS connection wraps (_parent)', () => {
  it("is the raw socket on node 20 (checkTlsSocketWrapping's probe passes)", () => {
    expect(() => checkTlsSocketWrapping(tls.createSecureContext())).not.toThrow();
    const raw = new net.Socket();
    const wrapped = new tls.TLSSocket(raw, { isServer: true, secureContext: tls.createSecureContext() });
    try {
      expect(wrappedSocketOf(wrapped)).toBe(raw);
      expect(() => checkWrappedSocket(wrapped, raw)).not.toThrow();
    } finally {
      wrapped.destroy();
      raw.destroy();
    }
  });

  it('fails closed when the TLS socket does not name it', () => {
    const raw = {};
    expect(wrappedSocketOf({})).toBeUndefined();
    expect(() => checkWrappedSocket({}, raw)).toThrow(/TLSSocket\._parent/);
    expect(() => checkWrappedSocket({ _parent: {} }, raw)).toThrow(NodeInternalsError);
  });
});

describe("a SecureContext's native setCert", () => {
  it('is found on node 20, and missing means the public path (null)', () => {
    expect(replaceableCertificateOf(tls.createSecureContext())).not.toBeNull();
    expect(replaceableCertificateOf({})).toBeNull();
    expect(replaceableCertificateOf({ context: { setCert: 'no' } })).toBeNull();
  });
});

describe('V8 flags at run time', () => {
  it('are set through setFlagsFromString when node has it, and skipped otherwise', () => {
    const set: string[] = [];
    expect(setV8Flag({ setFlagsFromString: (flag: string) => set.push(flag) }, '--heap-growing-percent=100')).toBe(true);
    expect(set).toEqual(['--heap-growing-percent=100']);
    expect(canSetV8Flags({})).toBe(false);
    expect(setV8Flag({}, '--heap-growing-percent=100')).toBe(false);
    expect(canSetV8Flags(process.getBuiltinModule('node:v8'))).toBe(true);
  });
});
