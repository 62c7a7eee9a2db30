// The CONNECT client of --upstream-proxy: the proxy's answer read however it is split into packets,
// the bytes after it handed on to what runs inside the tunnel (plain or TLS), each failure of the
// proxy turned into its kind, the settings checked, and --no-upstream-proxy-for matched.
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestPki } from '../../test/support/test-pki.js';
import { bypassesProxy, ConnectResponseReader, parseUpstreamProxy, plainTunnel, tlsThroughTunnel, UpstreamProxy, UpstreamProxyError } from './upstream-proxy.js';

describe('ConnectResponseReader', () => {
  it('reads a head that arrives in one packet', () => {
    const head = new ConnectResponseReader().push(Buffer.from('HTTP/1.1 200 Connection established\r\nVia: 1.1 proxy\r\n\r\n'));
    expect(head).toMatchObject({ status: 200, statusText: 'Connection established' });
    expect(head?.headers.get('via')).toBe('1.1 proxy');
    expect(head?.rest.length).toBe(0);
  });

  it('reads a head split across packets, even inside the blank line', () => {
    const reader = new ConnectResponseReader();
    expect(reader.push(Buffer.from('HTTP/1.0 2'))).toBeNull();
    expect(reader.push(Buffer.from('00 OK\r\nProxy-Agent: x\r'))).toBeNull();
    expect(reader.push(Buffer.from('\n\r'))).toBeNull();
    const head = reader.push(Buffer.from('\n'));
    expect(head).toMatchObject({ status: 200 });
    expect(head?.headers.get('proxy-agent')).toBe('x');
  });

  it('hands on the bytes after the head: they are the first bytes of the tunnel', () => {
    const head = new ConnectResponseReader().push(Buffer.from('HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01tls-bytes'));
    expect(head?.rest.toString('latin1')).toBe('\x16\x03\x01tls-bytes');
  });

  it.each([
    ['not HTTP', 'SSH-2.0-OpenSSH\r\n\r\n'],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nbroken\r\n\r\n'],
    ['HTTP/2 in the status line', 'HTTP/2 200\r\n\r\n'],
  ])('refuses %s', (_name, text) => {
    expect(() => new ConnectResponseReader().push(Buffer.from(text))).toThrow(UpstreamProxyError);
  });

  it('refuses a head that never ends before the size bound', () => {
    const reader = new ConnectResponseReader();
    reader.push(Buffer.from('HTTP/1.1 200 OK\r\n'));
    expect(() => {
      for (let i = 0; i < 100; i++) reader.push(Buffer.from(`X-Filler-${i}: ${'a'.repeat(300)}\r\n`));
    }).toThrow(/too large/);
  });
});

describe('parseUpstreamProxy', () => {
  it('reads the scheme, host and port, and the default port of each scheme', () => {
    expect(parseUpstreamProxy({ url: 'http://proxy.corp:3128' })).toMatchObject({ secure: false, host: 'proxy.corp', port: 3128, authorization: null });
    expect(parseUpstreamProxy({ url: 'https://proxy.corp' })).toMatchObject({ secure: true, port: 443 });
    expect(parseUpstreamProxy({ url: 'http://[::1]:8080' })).toMatchObject({ host: '::1', port: 8080 });
  });

  it('takes credentials from auth before the URL, and says when they came from the URL', () => {
    const fromEnv = parseUpstreamProxy({ url: 'http://u:p@proxy:1', auth: 'alice:s3cret' });
    expect(fromEnv.authorization).toBe(`Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
    const fromUrl = parseUpstreamProxy({ url: 'http://bob:pa%40ss@proxy:1' });
    expect(fromUrl.authorization).toBe(`Basic ${Buffer.from('bob:pa@ss').toString('base64')}`);
    expect(fromUrl.credentialsInUrl).toBe(true);
  });

  it.each([
    ['socks5://proxy:1080', /scheme socks5: is not supported/],
    ['proxy:3128', /not supported|not a URL/],
    ['http://proxy:3128/path', /only scheme:\/\/host:port/],
  ])('refuses %s', (url, message) => {
    expect(() => parseUpstreamProxy({ url })).toThrow(message);
  });

  it('refuses credentials without a colon, and never shows the URL credentials in its messages', () => {
    expect(() => parseUpstreamProxy({ url: 'http://proxy:1', auth: 'justauser' })).toThrow(/user:password/);
    expect(() => parseUpstreamProxy({ url: 'http://user:hunter2@proxy:1/x' })).toThrow(expect.objectContaining({ message: expect.not.stringContaining('hunter2') }));
  });
});

describe('bypassesProxy', () => {
  const bypass = parseUpstreamProxy({ url: 'http://p:1', bypass: ['internal.corp, .svc', '*.lan'] }).bypass;
  it.each([
    ['internal.corp', true],
    ['git.internal.corp', true],
    ['notinternal.corp', false],
    ['svc', false],
    ['api.svc', true],
    ['printer.lan', true],
    ['api.github.com', false],
  ])('%s → %s', (host, expected) => {
    expect(bypassesProxy(bypass, host)).toBe(expected);
  });

  it('"*" sends every host directly', () => {
    expect(bypassesProxy(['*'], 'anything.example')).toBe(true);
  });
});

/** A one-shot proxy that answers the first CONNECT with `answer` (chunks written apart), recording what it got. */
async function scriptedProxy(answer: (socket: net.Socket, request: string) => void): Promise<{ port: number; requests: string[]; close: () => Promise<void> }> {
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let text = '';
    socket.on('data', (chunk) => {
      if (text.includes('\r\n\r\n')) return;
      text += chunk.toString('latin1');
      if (text.includes('\r\n\r\n')) {
        requests.push(text);
        answer(socket, text);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function proxyTo(port: number, auth?: string): UpstreamProxy {
  return new UpstreamProxy(parseUpstreamProxy({ url: `http://127.0.0.1:${port}`, ...(auth ? { auth } : {}) }), () => tls.createSecureContext());
}

describe('UpstreamProxy.openTunnel', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('sends CONNECT host:port with Basic credentials, and the first bytes after a split answer come out of the tunnel first', async () => {
    const proxy = await scriptedProxy((socket) => {
      socket.write('HTTP/1.1 200 Conn');
      setTimeout(() => socket.write('ection established\r\n\r\nfirst-bytes|'), 20);
      setTimeout(() => socket.write('then-more'), 40);
    });
    cleanups.push(proxy.close);
    const tunnel = await proxyTo(proxy.port, 'alice:pw').openTunnel('api.example.test', 443, 5000);
    const socket = plainTunnel(tunnel);
    cleanups.push(async () => void socket.destroy());
    let received = '';
    await new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString();
        if (received.includes('then-more')) resolve();
      });
    });
    expect(received).toBe('first-bytes|then-more');
    expect(proxy.requests[0]).toBe(`CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\nProxy-Authorization: Basic ${Buffer.from('alice:pw').toString('base64')}\r\n\r\n`);
  });

  it('hands the bytes after the head to TLS inside the tunnel, ahead of what follows', async () => {
    const pki = createTestPki(['api.example.test']);
    cleanups.push(async () => pki.cleanup());
    const server = tls.createServer({ cert: pki.server.cert, key: pki.server.key }, (socket) => socket.end('over-tls'));
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as AddressInfo;
    // A TLS server never speaks before the client's hello, so what a proxy could send after its
    // 200 is at best noise: it must reach TLS (which then fails), not vanish. The same tunnel
    // without it completes the handshake.
    const handshake = async (head: Buffer): Promise<string> => {
      const raw = net.connect(port, '127.0.0.1');
      await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
      raw.pause();
      const client = tlsThroughTunnel({ socket: raw, head }, { servername: 'api.example.test', ca: pki.ca.cert, ALPNProtocols: ['http/1.1'] });
      cleanups.push(async () => void client.destroy());
      return new Promise<string>((resolve) => {
        client.once('secureConnect', () => resolve('ok'));
        client.once('error', (error: Error & { code?: string }) => resolve(error.code ?? error.message));
      });
    };
    expect(await handshake(Buffer.alloc(0))).toBe('ok');
    expect(await handshake(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'))).toMatch(/^ERR_SSL_/);
  });

  it.each([
    [407, 'auth-failed'],
    [403, 'denied'],
    [504, 'timeout'],
    [502, 'error'],
  ] as const)('a %s answer to CONNECT is a %s failure', async (status, kind) => {
    const proxy = await scriptedProxy((socket) => socket.end(`HTTP/1.1 ${status} No\r\nContent-Length: 0\r\n\r\n`));
    cleanups.push(proxy.close);
    await expect(proxyTo(proxy.port).openTunnel('api.example.test', 443, 5000)).rejects.toMatchObject({ kind });
  });

  it('a proxy that is not listening is a refused failure', async () => {
    const proxy = await scriptedProxy(() => undefined);
    await proxy.close();
    await expect(proxyTo(proxy.port).openTunnel('api.example.test', 443, 5000)).rejects.toMatchObject({ kind: 'refused' });
  });

  it('a proxy that never answers is a timeout failure', async () => {
    const proxy = await scriptedProxy(() => undefined);
    cleanups.push(proxy.close);
    await expect(proxyTo(proxy.port).openTunnel('api.example.test', 443, 100)).rejects.toMatchObject({ kind: 'timeout' });
  });

  it('an https:// proxy: TLS to the proxy verified against the given trust, then CONNECT inside it; an untrusted one is a certificate failure', async () => {
    const pki = createTestPki(['localhost']);
    cleanups.push(async () => pki.cleanup());
    const server = tls.createServer({ cert: pki.server.cert, key: pki.server.key }, (socket) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (text.endsWith('\r\n\r\n')) socket.write('HTTP/1.1 200 OK\r\n\r\nhello-through-tls');
      });
      socket.on('error', () => undefined);
    });
    server.on('tlsClientError', () => undefined);
    // Every local address: "localhost" may resolve to ::1 or 127.0.0.1.
    await new Promise<void>((resolve) => server.listen(0, resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as AddressInfo;
    const trusted = new UpstreamProxy(parseUpstreamProxy({ url: `https://localhost:${port}` }), () => tls.createSecureContext({ ca: pki.ca.cert }));
    const socket = plainTunnel(await trusted.openTunnel('api.example.test', 443, 5000));
    cleanups.push(async () => void socket.destroy());
    expect((socket as tls.TLSSocket).encrypted).toBe(true);
    const first = await new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    expect(first).toBe('hello-through-tls');
    const untrusted = new UpstreamProxy(parseUpstreamProxy({ url: `https://localhost:${port}` }), () => tls.createSecureContext());
    await expect(untrusted.openTunnel('api.example.test', 443, 5000)).rejects.toMatchObject({ kind: 'certificate' });
  });

  it('TLS to the upstream runs inside a tunnel that is itself TLS to an https:// proxy', async () => {
    const pki = createTestPki(['localhost', 'api.example.test']);
    cleanups.push(async () => pki.cleanup());
    const open = new Set<net.Socket>();
    const upstream = tls.createServer({ cert: pki.server.cert, key: pki.server.key }, (socket) => socket.end(`upstream saw ${socket.servername}`));
    upstream.on('connection', (socket: net.Socket) => open.add(socket));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => upstream.close(() => resolve())));
    const upstreamPort = (upstream.address() as AddressInfo).port;
    const proxy = tls.createServer({ cert: pki.server.cert, key: pki.server.key }, (socket) => {
      socket.once('data', () => {
        const onward = net.connect(upstreamPort, '127.0.0.1', () => {
          socket.write('HTTP/1.1 200 OK\r\n\r\n');
          socket.pipe(onward).pipe(socket);
        });
        onward.on('error', () => socket.destroy());
      });
      socket.on('error', () => undefined);
    });
    proxy.on('connection', (socket: net.Socket) => open.add(socket));
    await new Promise<void>((resolve) => proxy.listen(0, resolve));
    cleanups.push(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    cleanups.push(async () => {
      for (const socket of open) socket.destroy();
    });
    const through = new UpstreamProxy(parseUpstreamProxy({ url: `https://localhost:${(proxy.address() as AddressInfo).port}` }), () => tls.createSecureContext({ ca: pki.ca.cert }));
    const client = tlsThroughTunnel(await through.openTunnel('api.example.test', 443, 5000), { servername: 'api.example.test', ca: pki.ca.cert });
    cleanups.push(async () => void client.destroy());
    let text = '';
    await new Promise<void>((resolve, reject) => {
      client.on('data', (chunk: Buffer) => (text += chunk.toString()));
      client.on('end', resolve);
      client.on('error', reject);
    });
    expect(text).toBe('upstream saw api.example.test');
  });

  it('a proxy that hangs up before answering is a refused failure', async () => {
    const proxy = await scriptedProxy((socket) => socket.end());
    cleanups.push(proxy.close);
    await expect(proxyTo(proxy.port).openTunnel('api.example.test', 443, 5000)).rejects.toMatchObject({ kind: 'refused' });
  });
});
