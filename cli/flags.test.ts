import { describe, expect, it } from 'vitest';
import { parseDnsServer, parseListenAddress, parseResolveOverride, parseSeconds } from './flags.js';

describe('parseListenAddress', () => {
  it.each([
    ['127.0.0.1:8080', { host: '127.0.0.1', port: 8080 }],
    ['[::1]:9000', { host: '::1', port: 9000 }],
    [':0', { host: '127.0.0.1', port: 0 }],
    ['8080', { host: '127.0.0.1', port: 8080 }],
  ])('%s', (input, expected) => expect(parseListenAddress('--listen', input)).toEqual(expected));

  it.each(['example.com:80', '127.0.0.1:70000', '127.0.0.1:', 'x'])('%j is refused with the flag named', (input) => {
    expect(() => parseListenAddress('--listen', input)).toThrow(/^--listen .*expected IP:PORT/);
  });
});

describe('parseResolveOverride', () => {
  it('normalises the host and keeps every address', () => {
    expect(parseResolveOverride('API.Example.Test.=127.0.0.1,::1')).toEqual(['api.example.test', ['127.0.0.1', '::1']]);
  });
  it.each([
    ['API.example.test:443:127.0.0.1', ['api.example.test', ['127.0.0.1']]],
    ['api.example.test:8443:[::1],127.0.0.2', ['api.example.test', ['::1', '127.0.0.2']]],
    ['api.example.test:443:::1', ['api.example.test', ['::1']]],
  ])("curl's HOST:PORT:IP form %s", (input, expected) => {
    expect(parseResolveOverride(input)).toEqual(expected);
  });
  it.each(['api.example.test', 'api.example.test=', 'api.example.test=not-an-ip', '=127.0.0.1', 'api.example.test:0:127.0.0.1', 'api.example.test:443:', 'api.example.test:https:127.0.0.1'])('%j is refused', (input) => {
    expect(() => parseResolveOverride(input)).toThrow(/--resolve .*expected HOST=IP/);
  });
});

describe('parseDnsServer', () => {
  it.each(['127.0.0.1', '127.0.0.1:5353', '[::1]:53', '::1'])('%s is accepted', (input) => expect(parseDnsServer(input)).toBe(input));
  it.each(['dns.example', '127.0.0.1:0', '1.2.3.4:99999'])('%j is refused', (input) => {
    expect(() => parseDnsServer(input)).toThrow(/--dns-upstream/);
  });
});

describe('parseSeconds', () => {
  it.each([['30', 30], ['0.5', 0.5]])('%s', (input, expected) => expect(parseSeconds('--t', input)).toBe(expected));
  it.each(['0', '-1', 'ten', '1e3', '', '100000'])('%j is refused with the flag named', (input) => {
    expect(() => parseSeconds('--t', input)).toThrow(/^--t .*expected a number of seconds/);
  });
});
