// Cost of one policy decision, the step every request passes (a measurement, not a test: the
// speed follows the machine). Run: npx vitest bench --run --project unit policies/match.bench.ts
import { bench, describe } from 'vitest';
import { parsePolicy } from './loader.js';
import { compilePolicy } from './match.js';
import type { RequestFacts } from './types.js';

const compiled = compilePolicy(
  parsePolicy(`
version: 1
rules:
  - { id: api-read, host: api.example.test, methods: [GET, HEAD], paths: ["/v1/**"] }
  - { id: api-upload, host: api.example.test, port: 443, methods: [POST], paths: ["/v1/upload", "/v1/files/*"] }
  - { id: block-admin, host: api.example.test, paths: ["/v1/admin/**"], action: deny }
  - { id: cdn, host: "*.cdn.example.test", methods: [GET] }
`),
);
const hosts = ['api.example.test', 'img.cdn.example.test', 'evil.test', '203.0.113.9'];
const paths = ['/v1/models?x=1', '/v1/files/a', '/a/b/c.png', '/v1/%2e%2e/admin'];
const requests: RequestFacts[] = hosts.map((host, i) => ({ host, port: 443, method: 'GET', path: paths[i]! }));
let next = 0;

describe('policy decision', () => {
  bench('decide (4 hosts, allow, deny and default deny)', () => {
    compiled.decide(requests[next++ % requests.length]!);
  });
});
