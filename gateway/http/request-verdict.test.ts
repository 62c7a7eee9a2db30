// evaluateRequest: one case per way a request can be decided before anything is forwarded —
// framing, authority, each part of the policy, credentials, budget — and each verdict carries the
// stable code of its reason, from the one list (reason-codes.ts), in normal and report mode.
import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../policies/loader.js';
import { compilePolicy } from '../../policies/match.js';
import { isReasonCode, type ReasonCode } from '../../reason-codes.js';
import type { ConnectionContext } from '../connection-context.js';
import { loadRuleCredentials } from '../credentials/credential-secrets.js';
import { EgressBudgets } from '../credentials/egress-budget.js';
import type { ExchangeHead, ExchangeReadResult } from './exchange.js';
import { evaluateRequest, type VerdictDependencies } from './request-verdict.js';

const SECRET = 'secret-value-0123456789';
const POLICY = parsePolicy(`version: 1
rules:
  - id: api-read
    host: api.example.test
    methods: [GET]
    paths: ["/v1/**"]
  - id: api-admin-deny
    host: api.example.test
    paths: ["/v1/admin/**"]
    action: deny
  - id: keyed
    host: keyed.example.test
    credentials: { header: x-api-key, inject: { env: VERDICT_KEY } }
  - id: checked
    host: checked.example.test
    credentials: { header: x-token, require: ["sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"] }
  - id: limited
    host: limited.example.test
    budget: { requestBytesPerRun: 100 }
`);

async function dependencies(monitor: boolean): Promise<VerdictDependencies> {
  const policy = compilePolicy(POLICY);
  const credentials = await loadRuleCredentials(POLICY, { env: { VERDICT_KEY: SECRET } });
  return { currentPolicy: () => policy, currentCredentials: () => credentials, budgets: new EgressBudgets(), monitor };
}

function head(overrides: Partial<ExchangeHead>): ExchangeReadResult {
  return {
    ok: true,
    head: {
      protocol: 'http/1.1',
      method: 'GET',
      authorityHost: 'api.example.test',
      authorityPort: null,
      scheme: null,
      target: '/v1/files/a',
      forwardHeaders: [],
      hasBody: false,
      upgrade: null,
      grpc: false,
      ...overrides,
    },
  };
}

const tunnel = (host: string, scheme: 'http' | 'https' = 'https'): ConnectionContext => ({ id: 'c1', client: '127.0.0.1:1', host, port: 443, scheme });

/** [name, request, the tunnel it came on (null: absolute-form), expected code, expected verdict kind] */
const CASES: [string, ExchangeReadResult, ConnectionContext | null, ReasonCode, 'forward' | 'reject'][] = [
  ['allowed by a rule', head({}), tunnel('api.example.test'), 'allowed-by-rule', 'forward'],
  ['malformed request', { ok: false, reason: 'the request has no Host header' }, tunnel('api.example.test'), 'malformed-request', 'reject'],
  ['ambiguous path, as the reader found it', { ok: false, reason: 'request path has "%2F"', code: 'ambiguous-path' }, tunnel('api.example.test'), 'ambiguous-path', 'reject'],
  ['a path with an invalid escape', head({ target: '/v1/%zz' }), tunnel('api.example.test'), 'invalid-path', 'reject'],
  ['ambiguous path, in the target', head({ target: '/v1/%2e%2e/admin' }), tunnel('api.example.test'), 'ambiguous-path', 'reject'],
  ['a path without a leading "/"', head({ target: 'v1/files' }), tunnel('api.example.test'), 'invalid-path', 'reject'],
  ['origin-form to the explicit proxy', head({}), null, 'not-a-proxy-request', 'reject'],
  ['another host than the tunnel', head({ authorityHost: 'other.example.test' }), tunnel('api.example.test'), 'authority-mismatch', 'reject'],
  ['host no rule names', head({ authorityHost: 'evil.test', scheme: 'https', authorityPort: 443 }), null, 'host-not-allowed', 'reject'],
  ['a rule without a port allows any port', head({ scheme: 'https', authorityPort: 8443 }), null, 'allowed-by-rule', 'forward'],
  ['method no rule allows', head({ method: 'DELETE' }), tunnel('api.example.test'), 'method-not-allowed', 'reject'],
  ['path no rule allows', head({ target: '/v2/files' }), tunnel('api.example.test'), 'path-not-allowed', 'reject'],
  ['a deny rule', head({ target: '/v1/admin/users' }), tunnel('api.example.test'), 'denied-by-rule', 'reject'],
  ['an injected credential over plain http', head({ authorityHost: 'keyed.example.test', scheme: 'http', authorityPort: 80 }), null, 'credential-over-plain-http', 'reject'],
  ['a credential brought from inside', head({ authorityHost: 'keyed.example.test', forwardHeaders: ['x-api-key', 'sk-attacker'] }), tunnel('keyed.example.test'), 'credential-in-request', 'reject'],
  ['the injected credential', head({ authorityHost: 'keyed.example.test' }), tunnel('keyed.example.test'), 'allowed-by-rule', 'forward'],
  ['a required credential missing', head({ authorityHost: 'checked.example.test' }), tunnel('checked.example.test'), 'credential-missing', 'reject'],
  ['a required credential not listed', head({ authorityHost: 'checked.example.test', forwardHeaders: ['x-token', 'bar'] }), tunnel('checked.example.test'), 'credential-in-request', 'reject'],
  ['over the budget', head({ authorityHost: 'limited.example.test', target: `/${'x'.repeat(200)}` }), tunnel('limited.example.test'), 'budget-exceeded', 'reject'],
];

describe('evaluateRequest', () => {
  it.each(CASES)('%s', async (_name, read, connection, code, kind) => {
    const verdict = evaluateRequest(read, connection, await dependencies(false));
    expect(isReasonCode(verdict.code)).toBe(true);
    expect({ kind: verdict.kind, code: verdict.code }).toEqual({ kind, code });
  });

  it.each(CASES.filter(([, , , , kind]) => kind === 'reject'))('%s: report mode keeps the code of a denial it lets through', async (_name, read, connection, code) => {
    const verdict = evaluateRequest(read, connection, await dependencies(true));
    if (verdict.kind === 'reject') {
      // Framing and authority refusals stay refusals in report mode.
      expect(verdict.code).toBe(code);
      return;
    }
    expect(verdict.monitoredDenial?.code).toBe(code);
  });
});
