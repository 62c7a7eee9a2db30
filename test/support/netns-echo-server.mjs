// The upstream that test/support/netns-upstream.ts runs INSIDE a private network namespace
// (`ip netns exec NS node netns-echo-server.mjs ...`): HTTPS on TCP 443, plus UDP listeners on 53
// and 9999 that only record. Every TCP connection, TLS handshake, HTTP request and UDP datagram
// is one JSON line on stdout, so a test can assert what did and did NOT arrive.
//
// usage: node netns-echo-server.mjs --cert PEM --key PEM [--host ADDR]... [--port 443] [--udp-port N]...
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';

function parseArgs(argv) {
  const options = { cert: '', key: '', hosts: [], port: 443, udpPorts: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--cert') options.cert = value;
    else if (flag === '--key') options.key = value;
    else if (flag === '--host') options.hosts.push(value);
    else if (flag === '--port') options.port = Number(value);
    else if (flag === '--udp-port') options.udpPorts.push(Number(value));
    else throw new Error(`unknown flag ${flag}`);
  }
  if (!options.cert || !options.key || options.hosts.length === 0) throw new Error('--cert, --key and at least one --host are required');
  return options;
}

const options = parseArgs(process.argv.slice(2));
const record = (event) => process.stdout.write(`${JSON.stringify({ ...event, at: Date.now() })}\n`);

const server = https.createServer({ cert: readFileSync(options.cert), key: readFileSync(options.key), ALPNProtocols: ['http/1.1'] }, (req, res) => {
  const body = [];
  req.on('data', (chunk) => body.push(chunk));
  req.on('end', () => {
    const echo = {
      event: 'request',
      method: req.method,
      path: req.url,
      host: req.headers.host ?? null,
      servername: req.socket.servername || null,
      remote: req.socket.remoteAddress,
      local: req.socket.localAddress,
      bodyBytes: Buffer.concat(body).length,
    };
    record(echo);
    const text = JSON.stringify(echo);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
});
server.on('connection', (socket) => record({ event: 'connection', remote: socket.remoteAddress, local: socket.localAddress }));
server.on('secureConnection', (socket) => record({ event: 'tls', servername: socket.servername || null, remote: socket.remoteAddress }));
server.on('tlsClientError', (error, socket) => record({ event: 'tls-error', reason: error.code ?? error.message, remote: socket?.remoteAddress ?? null }));

let pending = options.hosts.length * (1 + options.udpPorts.length);
const listened = () => {
  pending -= 1;
  if (pending === 0) record({ event: 'listening', port: options.port, udpPorts: options.udpPorts });
};
const servers = [server];
for (const [index, host] of options.hosts.entries()) {
  // One https server can listen once; further addresses get a plain net server handing over.
  if (index === 0) server.listen(options.port, host, listened);
  else {
    const extra = net.createServer((socket) => server.emit('connection', socket));
    servers.push(extra);
    extra.listen(options.port, host, listened);
  }
  for (const port of options.udpPorts) {
    const udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    udp.on('message', (message, remote) => record({ event: 'udp', port, remote: remote.address, bytes: message.length }));
    udp.bind(port, host, listened);
  }
}

process.on('SIGTERM', () => process.exit(0));
