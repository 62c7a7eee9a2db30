// The fixture most e2e suites share: a test PKI for `names`, an HTTPS upstream (optionally also a
// plain HTTP one) for the first name, and a gateway process that trusts the test CA and resolves
// every name to 127.0.0.1.
import { readFileSync } from 'node:fs';
import { startGatewayProcess, type GatewayProcess } from './gateway-process.js';
import { createTestPki, type TestPki } from './test-pki.js';
import { startUpstream, type Upstream } from './upstream.js';

export interface GatewayFixtureOptions {
  policyYaml: string;
  /** Names the test certificates are for; the first is also the upstreams' name. */
  names: string[];
  /** Also start a plain HTTP upstream; default false. */
  plainUpstream?: boolean;
  /** Extra gateway arguments, after --upstream-ca and the --resolve pairs. */
  args?: string[];
  /** Pass `--resolve NAME=127.0.0.1` for every name; default true. */
  resolve?: boolean;
  /** Extra environment for the gateway (the variables injected secrets are read from). */
  env?: Record<string, string>;
}

export interface GatewayFixture {
  pki: TestPki;
  upstream: Upstream;
  plainUpstream: Upstream | null;
  gateway: GatewayProcess;
  /** PEM text of the gateway's own CA certificate. */
  gatewayCa: string;
  /** Stop the gateway, close the upstreams and remove the PKI. */
  close(): Promise<void>;
}

export async function startGatewayFixture(options: GatewayFixtureOptions): Promise<GatewayFixture> {
  const { names } = options;
  const first = names[0];
  if (first === undefined) throw new Error('startGatewayFixture needs at least one name');
  let pki: TestPki | undefined;
  let upstream: Upstream | undefined;
  let plainUpstream: Upstream | null = null;
  let gateway: GatewayProcess | undefined;
  const close = async (): Promise<void> => {
    await gateway?.stop();
    await upstream?.close();
    await plainUpstream?.close();
    pki?.cleanup();
  };
  try {
    pki = createTestPki(names);
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [first] });
    if (options.plainUpstream === true) plainUpstream = await startUpstream({ plain: true, names: [first] });
    const resolve = options.resolve === false ? [] : names.flatMap((name) => ['--resolve', `${name}=127.0.0.1`]);
    gateway = await startGatewayProcess({
      policyYaml: options.policyYaml,
      args: ['--upstream-ca', pki.ca.certPath, ...resolve, ...(options.args ?? [])],
      ...(options.env ? { env: options.env } : {}),
    });
    const gatewayCa = readFileSync(gateway.caPath, 'utf8');
    return { pki, upstream, plainUpstream, gateway, gatewayCa, close };
  } catch (error) {
    await close();
    throw error;
  }
}
