import { describe, expect, it } from 'vitest';
import { connectionNominatedHeaders, isGrpcContentType, splitAuthority } from './exchange.js';

describe('splitAuthority', () => {
  it.each([
    ['api.example.test', { host: 'api.example.test', port: null }],
    ['api.example.test:8443', { host: 'api.example.test', port: 8443 }],
    ['[::1]:443', { host: '::1', port: 443 }],
    ['[::1]', { host: '::1', port: null }],
    ['127.0.0.1:80', { host: '127.0.0.1', port: 80 }],
  ])('%s splits into host and port', (input, expected) => {
    expect(splitAuthority(input)).toEqual(expected);
  });

  it.each(['', ':443', 'a:0', 'a:65536', 'a:12x', '::1', '[::1', '[::1]x', 'a:b:c', 'a:-1'])('%j is refused', (input) => {
    expect(splitAuthority(input)).toBeNull();
  });
});

describe('connectionNominatedHeaders', () => {
  it('collects lower-cased tokens from every Connection value', () => {
    expect([...connectionNominatedHeaders(['keep-alive, X-Secret', 'Upgrade'])]).toEqual(['keep-alive', 'x-secret', 'upgrade']);
  });
});

describe('isGrpcContentType', () => {
  it.each([
    ['application/grpc', true],
    ['application/grpc+proto', true],
    ['Application/GRPC; charset=utf-8', true],
    ['application/grpc-web', false],
    ['application/grpc-web+proto', false],
    ['application/grpcx', false],
    ['application/json', false],
    [undefined, false],
  ])('%s → %s', (value, expected) => {
    expect(isGrpcContentType(value)).toBe(expected);
  });
});
