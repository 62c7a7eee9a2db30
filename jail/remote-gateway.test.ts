import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { remoteGatewayFromFlags } from '../cli/remote-gateway-flags.js';
import { isSrtGwError } from '../errors.js';
import { parseRemoteGatewayUrl, PROBE_TARGET, RemoteGateway } from './remote-gateway.js';

/** A fake remote: answers each CONNECT with what `answer` returns for its target, written in pieces. */
async function fakeRemote(answer: (target: string, authorization: string | undefined) => string[]): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let head = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      head += chunk;
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      const lines = head.slice(0, end).split('\r\n');
      const target = lines[0]!.split(' ')[1]!;
      const authorization = lines.find((line) => line.toLowerCase().startsWith('proxy-authorization:'))?.slice('proxy-authorization:'.length).trim();
      head = '';
      const pieces = answer(target, authorization);
      // One piece per write, a turn apart: the reader must put a head and body back together.
      const writeNext = () => {
        const piece = pieces.shift();
        if (piece === undefined) return;
        socket.write(piece, 'latin1', () => setImmediate(writeNext));
      };
      writeNext();
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const refusal = (status: number, reason: string, body: object) => {
  const text = JSON.stringify(body);
  return [`HTTP/1.1 ${status} Forbidden\r\ncontent-type: application/json\r\n`, `content-length: ${text.length}\r\nx-srt-gw-reason: ${reason}\r\n\r\n`, text.slice(0, 5), text.slice(5)];
};

describe('parseRemoteGatewayUrl', () => {
  it.each([
    ['https://gw.internal:8443', { secure: true, host: 'gw.internal', port: 8443 }],
    ['https://gw.internal', { secure: true, host: 'gw.internal', port: 443 }],
    ['http://[::1]:8080', { secure: false, host: '::1', port: 8080 }],
    ['http://127.0.0.1:8080', { secure: false, host: '127.0.0.1', port: 8080 }],
  ])('%s', (url, expected) => {
    expect(parseRemoteGatewayUrl(url)).toMatchObject(expected);
  });

  it.each([
    ['gw internal', /not a URL/],
    ['gw.internal:8443', /scheme gw.internal: is not supported \(use https:\/\/host:port\)/],
    ['socks5://gw:1080', /not supported/],
    ['https://user:secret@gw:8443', /no credentials in the URL/],
    ['https://gw:8443/path', /only scheme:\/\/host:port/],
    ['http://gw.internal:8080', /token to gw.internal in the clear; use https:\/\/gw.internal:8080/],
    ['http://10.0.0.5:8080', /in the clear/],
  ])('refuses %s', (url, message) => {
    expect(() => parseRemoteGatewayUrl(url)).toThrow(message);
  });
});

describe('RemoteGateway', () => {
  let caFile = '';
  beforeAll(() => {
    // Any certificate will do: the fake remote speaks plain HTTP.
    const dir = mkdtempSync(join(tmpdir(), 'srt-gw-remote-gateway-'));
    caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, `-----BEGIN CERTIFICATE-----\n${Buffer.from('not parsed for http://').toString('base64')}\n-----END CERTIFICATE-----\n`);
    return () => rmSync(dir, { recursive: true, force: true });
  });

  it('needs --gateway-ca, and refuses a file with a private key', async () => {
    await expect(RemoteGateway.connect({ url: 'http://127.0.0.1:1', token: 't', caFiles: [] })).rejects.toThrow(/--gateway needs --gateway-ca FILE/);
    const keyFile = join(dirname(caFile), 'with-key.pem');
    writeFileSync(keyFile, '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n');
    await expect(RemoteGateway.connect({ url: 'http://127.0.0.1:1', token: 't', caFiles: [keyFile] })).rejects.toThrow(/holds a private key/);
  });

  let closeRemote: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await closeRemote?.();
    closeRemote = null;
  });

  it('probes with the bearer token and reads a refusal split over packets: status, rule and reason', async () => {
    const seen: [string, string | undefined][] = [];
    const remote = await fakeRemote((target, authorization) => {
      seen.push([target, authorization]);
      return refusal(403, 'no rule allows it', { error: 'denied', code: 'host-not-allowed', rule: 'default-deny', reason: `no rule allows host ${target}` });
    });
    closeRemote = () => remote.close();
    const gateway = await RemoteGateway.connect({ url: remote.url, token: 'tok-1', caFiles: [caFile] });
    expect(seen).toEqual([[`${PROBE_TARGET.host}:${PROBE_TARGET.port}`, 'Bearer tok-1']]);
    const outcome = await gateway.openTunnel('evil.example.test', 443);
    expect(outcome).toEqual({ ok: false, refusal: { status: 403, rule: 'default-deny', reason: 'no rule allows host evil.example.test:443' } });
  });

  it('a 407 at the probe is an error naming the reason code and the token variable', async () => {
    const remote = await fakeRemote(() => refusal(407, 'client-token-invalid', { error: 'proxy-authentication-required', code: 'client-token-invalid' }));
    closeRemote = () => remote.close();
    const error = await RemoteGateway.connect({ url: remote.url, token: 'bad', caFiles: [caFile] }).catch((caught: unknown) => caught);
    expect(isSrtGwError(error)).toBe(true);
    expect((error as Error).message).toMatch(/refused the token \(407: client-token-invalid\).*SRT_GW_GATEWAY_TOKEN/);
  });

  it('a 200 gives the tunnel with the bytes the remote sent past its head', async () => {
    const remote = await fakeRemote((target) => (target.startsWith(PROBE_TARGET.host) ? refusal(403, 'no', {}) : ['HTTP/1.1 200 Connection Established\r\n\r\nfirst-bytes']));
    closeRemote = () => remote.close();
    const gateway = await RemoteGateway.connect({ url: remote.url, token: 't', caFiles: [caFile] });
    const outcome = await gateway.openTunnel('api.example.test', 443);
    expect(outcome.ok).toBe(true);
    if (outcome.ok) {
      // The head may come with the status line or in a later packet.
      const head = outcome.head.length > 0 ? outcome.head.toString() : await new Promise<string>((resolve) => outcome.socket.once('data', (chunk: Buffer) => resolve(chunk.toString())).resume());
      expect(head).toBe('first-bytes');
      outcome.socket.destroy();
    }
  });

  it('a probe answered with anything but 403 or 407 is not srt-gw serve: an error', async () => {
    const remote = await fakeRemote(() => ['HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n']);
    closeRemote = () => remote.close();
    await expect(RemoteGateway.connect({ url: remote.url, token: 't', caFiles: [caFile] })).rejects.toThrow(/answered the probe CONNECT srt-gw-probe\.invalid:443 with 400 .*proxy port of srt-gw serve/);
  });

  it('an unreachable remote is an error at connect', async () => {
    const remote = await fakeRemote(() => []);
    await remote.close();
    await expect(RemoteGateway.connect({ url: remote.url, token: 't', caFiles: [caFile] })).rejects.toThrow(/could not be reached \(ECONNREFUSED\)/);
  });
});

describe('remoteGatewayFromFlags', () => {
  const none = { gatewayCa: [], allow: [], upstreamCa: [], resolve: [], dnsUpstream: [], monitor: false };

  it('takes the token from the environment unless --token gives one', () => {
    expect(remoteGatewayFromFlags({ ...none, gateway: 'https://gw:1' }, { SRT_GW_GATEWAY_TOKEN: 'env' }).token).toBe('env');
    expect(remoteGatewayFromFlags({ ...none, gateway: 'https://gw:1', token: 'flag' }, { SRT_GW_GATEWAY_TOKEN: 'env' }).token).toBe('flag');
  });

  it('refuses a run without a token, and the flags of a local gateway', () => {
    expect(() => remoteGatewayFromFlags({ ...none, gateway: 'https://gw:1' }, {})).toThrow(/no token; set SRT_GW_GATEWAY_TOKEN/);
    expect(() => remoteGatewayFromFlags({ ...none, gateway: 'https://gw:1', allow: ['x'], monitor: true }, { SRT_GW_GATEWAY_TOKEN: 't' })).toThrow(/--allow, --monitor configure the local gateway/);
  });
});
