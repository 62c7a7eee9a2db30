import { describe, expect, it } from 'vitest';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import { classifyUpstreamError, NOT_HTTP2_CODE } from './upstream-errors.js';
import { UpstreamProxyError } from './upstream-proxy.js';

function withCode(code: string, cause?: unknown): Error {
  return Object.assign(new Error('x'), { code, cause });
}

describe('classifyUpstreamError', () => {
  it.each([
    [withCode('ENOTFOUND'), 'dns', 'could not resolve api.example.test'],
    [new SrtGwError(ErrorCodes.UPSTREAM_DNS, 'nx'), 'dns', 'could not resolve api.example.test'],
    [withCode('ECONNREFUSED'), 'refused', 'api.example.test refused the connection'],
    [withCode('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'certificate', 'upstream certificate invalid for api.example.test: UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    [withCode('ERR_TLS_CERT_ALTNAME_INVALID'), 'certificate', 'upstream certificate invalid for api.example.test: ERR_TLS_CERT_ALTNAME_INVALID'],
    [withCode('UND_ERR_CONNECT_TIMEOUT'), 'timeout', 'api.example.test did not answer in time'],
    [withCode('UND_ERR_SOCKET', withCode('ECONNRESET')), 'reset', 'api.example.test closed the connection'],
    [withCode('UND_ERR_SOCKET'), 'reset', 'api.example.test closed the connection'],
    [withCode('ERR_HTTP2_STREAM_ERROR'), 'reset', 'api.example.test closed the connection'],
    [withCode(NOT_HTTP2_CODE), 'other', 'api.example.test does not speak HTTP/2, which gRPC needs'],
    [withCode('ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL'), 'other', 'api.example.test does not speak HTTP/2, which gRPC needs'],
    [new Error('strange'), 'other', 'request to api.example.test failed'],
    [new SrtGwError(ErrorCodes.UPSTREAM_PRIVATE_DESTINATION, 'destination 127.0.0.1 is a private address'), 'destination', 'destination 127.0.0.1 is a private address'],
    [withCode('UND_ERR_SOCKET', new SrtGwError(ErrorCodes.UPSTREAM_PRIVATE_DESTINATION, 'destination ::1 is a private address')), 'destination', 'destination ::1 is a private address'],
    [new UpstreamProxyError('refused', 'the upstream proxy could not be reached (ECONNREFUSED)', { cause: withCode('ECONNREFUSED') }), 'proxy-refused', 'the upstream proxy could not be reached (ECONNREFUSED)'],
    [withCode('UND_ERR_SOCKET', new UpstreamProxyError('auth-failed', 'bad proxy credentials')), 'proxy-auth-failed', 'bad proxy credentials'],
    [new UpstreamProxyError('denied', 'proxy denied'), 'proxy-denied', 'proxy denied'],
  ])('%s → %s', (error, kind, reason) => {
    expect(classifyUpstreamError(error, 'api.example.test')).toEqual({ kind, reason });
  });

  it('never puts the error message (which may hold addresses or paths) in the reason', () => {
    const failure = classifyUpstreamError(Object.assign(new Error('connect to /secret/path 10.1.2.3 failed'), { code: 'EWEIRD' }), 'h');
    expect(failure.reason).not.toMatch(/secret|10\.1\.2\.3/);
  });
});
