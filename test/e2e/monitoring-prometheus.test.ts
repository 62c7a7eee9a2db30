// The monitoring files are usable as shipped: a real Prometheus scrapes a gateway that served
// allowed and denied traffic, and every PromQL expression of the Grafana dashboard and of the
// alert rules returns data there, so no panel or alert names a metric or label that does not
// exist. Also: promtool accepts the rules and the scrape config, the dashboard passes its
// import schema, docker-compose.test.yml parses and points at files and ports that exist.
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parsePolicy } from '../../policies/loader.js';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { curlThroughProxy, REPO_ROOT, type AuditLine, type GatewayProcess } from '../support/gateway-process.js';
import { startPrometheus, type PrometheusServer } from '../support/prometheus.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import type { Upstream } from '../support/upstream.js';

const run = promisify(execFile);
const skip = capabilityGate(missingCommand('prometheus'), missingCommand('promtool'), missingCommand('curl'), missingCommand('dig'), missingCommand('redis-server'));

const DASHBOARD_PATH = join(REPO_ROOT, 'dashboards', 'grafana', 'srt-gw.json');
const DASHBOARD_SCHEMA_PATH = join(REPO_ROOT, 'dashboards', 'grafana', 'dashboard.schema.json');
const ALERTS_PATH = join(REPO_ROOT, 'dashboards', 'prometheus', 'alerts.yml');
const SCRAPE_CONFIG_PATH = join(REPO_ROOT, 'dashboards', 'prometheus', 'prometheus.yml');
const COMPOSE_PATH = join(REPO_ROOT, 'docker-compose.test.yml');
const AUDIT_SCHEMA_PATH = join(REPO_ROOT, 'docs', 'audit-log.schema.json');

interface DashboardPanel {
  title: string;
  targets?: { expr?: string }[];
}
interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as { panels: DashboardPanel[] };
const alertGroups = (parse(readFileSync(ALERTS_PATH, 'utf8')) as { groups: { name: string; rules: AlertRule[] }[] }).groups;

/** Grafana's built-in variables, replaced by what Grafana would send for a 1 h dashboard. */
function withGrafanaVariables(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s').replaceAll('$__range', '1h');
}

/** Every dashboard panel query, named by panel title and refId position. */
const DASHBOARD_EXPRESSIONS: [string, string][] = dashboard.panels.flatMap((panel) =>
  (panel.targets ?? []).map((target, index): [string, string] => [`${panel.title} #${index + 1}`, withGrafanaVariables(target.expr ?? '')]),
);

/** A trailing comparison with a number (`> 0`, `== 0`): alerts fire on it, data is what is before it. */
const TRAILING_COMPARISON = /\s*(==|!=|>=|<=|>|<)\s*-?[0-9.]+(e[+-]?[0-9]+)?\s*$/;

/** Every alert rule's expression without its trailing threshold. */
const ALERT_EXPRESSIONS: [string, string][] = alertGroups.flatMap((group) =>
  group.rules.map((rule): [string, string] => [`${group.name}/${rule.alert ?? rule.record ?? '?'}`, rule.expr.replace(TRAILING_COMPARISON, '')]),
);

const API = 'api.example.test';
const BAD_CERT = 'badcert.example.test';
const UNLISTED = 'unlisted.test';

const POLICY = `
version: 1
rules:
  - id: api-read
    host: ${API}
    methods: [GET, POST]
    paths: ["/v1/**"]
  - id: api-admin-deny
    host: ${API}
    paths: ["/admin/**"]
    action: deny
  - id: badcert
    host: ${BAD_CERT}
  - id: api-keyed
    host: ${API}
    paths: ["/keyed/**"]
    credentials: { header: x-api-key, inject: { command: [printf, "%s", monitoring-secret-0123456789] } }
    budget: { requestBytesPerRun: 1000 }
`;

describe('monitoring files (static)', () => {
  it('the dashboard has expressions and every alert has a threshold to strip', () => {
    expect(DASHBOARD_EXPRESSIONS.length).toBeGreaterThan(10);
    for (const [, expr] of DASHBOARD_EXPRESSIONS) expect(expr).not.toBe('');
    for (const group of alertGroups) {
      for (const rule of group.rules) expect(TRAILING_COMPARISON.test(rule.expr), rule.alert).toBe(true);
    }
  });

  it('the dashboard validates against dashboards/grafana/dashboard.schema.json, and a broken one does not', () => {
    const schema = JSON.parse(readFileSync(DASHBOARD_SCHEMA_PATH, 'utf8')) as object;
    const validate = new Ajv2020({ allErrors: true, strict: true }).compile(schema);
    const valid = validate(dashboard);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
    const full = dashboard as unknown as { title: string; uid: string; schemaVersion: number; panels: { id: number; targets: { datasource: unknown }[] }[] };
    expect(full.title).toBe('srt-gw egress');
    expect(new Set(full.panels.map((panel) => panel.id)).size).toBe(full.panels.length);
    const broken = structuredClone(full);
    const firstTarget = broken.panels[0]?.targets[0];
    if (firstTarget) firstTarget.datasource = { type: 'prometheus', uid: 'some-fixed-uid' };
    expect(validate(broken)).toBe(false);
    expect(validate({ ...full, schemaVersion: 30 })).toBe(false);
  });

  it('docker-compose.test.yml parses, mounts files that exist, and its ports and names agree', () => {
    interface Service { image?: string; command?: string[] | string; volumes?: string[]; networks?: unknown }
    const compose = parse(readFileSync(COMPOSE_PATH, 'utf8')) as { services: Record<string, Service> };
    expect(Object.keys(compose.services).sort()).toEqual(['gateway', 'grafana', 'prometheus', 'traffic', 'upstream']);
    for (const [name, service] of Object.entries(compose.services)) {
      expect(service.image, name).toEqual(expect.any(String));
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0] ?? '';
        if (source.startsWith('./')) expect(existsSync(join(REPO_ROOT, source)), `${name}: ${source}`).toBe(true);
      }
    }
    const gatewayCommand = compose.services.gateway?.command as string[];
    expect(gatewayCommand.slice(0, 3)).toEqual(['node', '/app/dist/bin/srt-gw.js', 'serve']);
    const flag = (name: string) => gatewayCommand[gatewayCommand.indexOf(name) + 1];
    const metricsPort = flag('--metrics')?.split(':').pop();
    // The example scrape config is the one compose mounts: its target is the gateway's --metrics.
    const scrape = parse(readFileSync(SCRAPE_CONFIG_PATH, 'utf8')) as { rule_files: string[]; scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[] };
    expect(scrape.scrape_configs[0]?.job_name).toBe('srt-gw');
    expect(scrape.scrape_configs[0]?.static_configs[0]?.targets).toEqual([`gateway:${metricsPort}`]);
    expect(compose.services.prometheus?.volumes).toEqual(
      expect.arrayContaining(['./dashboards/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro', './dashboards/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro']),
    );
    expect(scrape.rule_files).toEqual(['alerts.yml']);
    // The mounted policy is a valid policy.
    const policyMount = (compose.services.gateway?.volumes ?? []).find((v) => v.endsWith(':/etc/srt-gw/policy.yaml:ro')) ?? '';
    expect(flag('--policy')).toBe('/etc/srt-gw/policy.yaml');
    expect(() => parsePolicy(readFileSync(join(REPO_ROOT, policyMount.split(':')[0] ?? ''), 'utf8'))).not.toThrow();
    // Grafana: the dashboard provider reads the folder the dashboard is mounted into; the datasource is compose's Prometheus.
    const provider = parse(readFileSync(join(REPO_ROOT, 'dashboards/grafana/provisioning/dashboards/srt-gw.yml'), 'utf8')) as { providers: { options: { path: string } }[] };
    const dashboardMount = (compose.services.grafana?.volumes ?? []).find((v) => v.startsWith('./dashboards/grafana/srt-gw.json:')) ?? '';
    expect(dashboardMount.split(':')[1]).toBe(`${provider.providers[0]?.options.path}/srt-gw.json`);
    const datasources = parse(readFileSync(join(REPO_ROOT, 'dashboards/grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as { datasources: { type: string; url: string }[] };
    expect(datasources.datasources[0]).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090' });
  });
});

describe.skipIf(skip !== null)('monitoring with a real Prometheus', () => {
  let fixture: GatewayFixture | undefined;
  let upstream: Upstream;
  let gateway: GatewayProcess;
  let prometheus: PrometheusServer;
  let redis: RedisServer | undefined;
  let auditLines: AuditLine[] = [];
  const statuses: Record<string, number> = {};

  beforeAll(async () => {
    // BAD_CERT resolves to the upstream too, whose certificate is not for that name. The shared
    // state (--state) is there for the alert on its health to have data.
    redis = await startRedisServer();
    fixture = await startGatewayFixture({
      policyYaml: POLICY,
      names: [API],
      args: ['--resolve', `${BAD_CERT}=127.0.0.1`, '--metrics', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--state', redis.url],
    });
    ({ upstream, gateway } = fixture);
    // The state connects in the background; budgeted requests before that would get 429.
    for (const deadline = Date.now() + 15_000; !/^srtgw_state_backend_up 1$/m.test(await (await fetch(gateway.metricsUrl!)).text()); ) {
      if (Date.now() > deadline) throw new Error('the gateway did not connect to redis-server');
      await new Promise((r) => setTimeout(r, 50));
    }
    statuses.allowed = (await curlThroughProxy(gateway, ['--http1.1', upstream.url('/v1/items')])).status;
    statuses.allowedH2 = (await curlThroughProxy(gateway, ['--http2', upstream.url('/v1/items-h2')])).status;
    statuses.upload = (await curlThroughProxy(gateway, [upstream.url('/v1/upload')], { input: randomBytes(4000) })).status;
    statuses.deniedPath = (await curlThroughProxy(gateway, [upstream.url('/admin/users')])).status;
    statuses.unlisted = (await curlThroughProxy(gateway, [upstream.url('/v1/x', UNLISTED)])).connectStatus;
    statuses.badCert = (await curlThroughProxy(gateway, [upstream.url('/anything', BAD_CERT)])).status;
    statuses.keyed = (await curlThroughProxy(gateway, [upstream.url('/keyed/a')])).status;
    statuses.overBudget = (await curlThroughProxy(gateway, [upstream.url('/keyed/upload')], { input: randomBytes(5000) })).status;
    const long = randomBytes(36).toString('base64url').replace(/[-_]/g, 'q');
    for (const name of [API, `exfil-${long}.${UNLISTED}`, `denied.${UNLISTED}`]) {
      execFileSync('dig', ['@127.0.0.1', '-p', String(gateway.dnsPort), '+tries=1', '+time=2', name, 'A'], { stdio: 'ignore' });
    }
    // A broken policy file and SIGHUP: the reload fails and the old policy stays.
    writeFileSync(gateway.policyPath, 'version: 1\nrules:\n  - id: broken\n    host: [\n');
    process.kill(gateway.pid, 'SIGHUP');
    await gateway.waitForAudit((line) => line.kind === 'policy-reload' && line.outcome === 'failed');
    statuses.afterReload = (await curlThroughProxy(gateway, ['--http1.1', upstream.url('/v1/after-reload')])).status;
    auditLines = await gateway.auditLines();

    const metricsAddress = new URL(gateway.metricsUrl ?? '').host;
    prometheus = await startPrometheus({ job: 'srt-gw', target: metricsAddress, ruleFiles: [ALERTS_PATH] });
    await prometheus.waitForScrapes(4);
  }, 90_000);

  afterAll(async () => {
    await prometheus?.stop();
    await fixture?.close();
    await redis?.stop();
  });

  it('the traffic behind these assertions went as expected', () => {
    expect(statuses).toEqual({ allowed: 200, allowedH2: 200, upload: 200, deniedPath: 403, unlisted: 403, badCert: 502, keyed: 200, overBudget: 429, afterReload: 200 });
  });

  it('the failed reload has a policy-reload audit line at level 50 that validates against the audit schema', () => {
    const validate = new Ajv2020({ allErrors: true, strict: false }).compile(JSON.parse(readFileSync(AUDIT_SCHEMA_PATH, 'utf8')) as object);
    const reload = auditLines.find((line) => line.kind === 'policy-reload');
    expect(reload).toMatchObject({ kind: 'policy-reload', outcome: 'failed', level: 50 });
    const invalid = auditLines.filter((line) => !validate(line)).map((line) => ({ line, errors: validate.errors }));
    expect(invalid).toEqual([]);
  });

  it('promtool check rules accepts dashboards/prometheus/alerts.yml', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', ALERTS_PATH]);
    expect(stdout).toMatch(/SUCCESS/);
  });

  it('promtool check config accepts the example scrape config (with its alerts.yml)', async () => {
    const { stdout } = await run('promtool', ['check', 'config', SCRAPE_CONFIG_PATH]);
    expect(stdout).toMatch(/is valid prometheus config file syntax/);
  });

  it('Prometheus loaded the alert rules without errors', async () => {
    const res = await fetch(`${prometheus.url}/api/v1/rules`);
    const body = (await res.json()) as { data: { groups: { rules: { name: string; health: string }[] }[] } };
    const rules = body.data.groups.flatMap((group) => group.rules);
    expect(rules.map((rule) => rule.name).sort()).toEqual(ALERT_EXPRESSIONS.map(([name]) => name.split('/')[1]).sort());
  });

  it.each([
    ['an upstream connect was timed (undici diagnostics channels)', 'sum(srtgw_upstream_connect_duration_seconds_count{outcome="ok"})', 1],
    ['the failed reload was counted', 'sum(srtgw_policy_reloads_total{outcome="failed"})', 1],
    ['the bad upstream certificate was counted', 'sum(srtgw_upstream_errors_total{kind="certificate"})', 1],
    ['the denied path was counted', 'sum(srtgw_denied_requests_total{reason="policy"})', 1],
    ['the refused CONNECT was counted', 'sum(srtgw_denied_requests_total{reason="connect"})', 1],
    ['the denied DNS names were counted', 'sum(srtgw_dns_queries_total{decision="denied"})', 2],
    ['the long label raised a tunnelling signal', 'sum(srtgw_dns_tunnel_signals_total{signal="long-label"})', 1],
    ['the uploaded body was counted as bytes up', 'sum(srtgw_bytes_total{direction="up", rule="api-read"})', 4000],
    ['the injected credential was counted', 'sum(srtgw_credential_injections_total{rule="api-keyed"})', 1],
    ['the over-budget upload was counted', 'sum(srtgw_budget_rejections_total{rule="api-keyed"})', 1],
  ])('Prometheus sees real values: %s', async (_name, expr, atLeast) => {
    const result = await prometheus.query(expr);
    expect(result.samples, expr).toHaveLength(1);
    expect(Number(result.samples[0]?.value[1])).toBeGreaterThanOrEqual(atLeast);
  });

  const everyExpression = [
    ...DASHBOARD_EXPRESSIONS.map(([name, expr]) => [`dashboard: ${name}`, expr] as const),
    ...ALERT_EXPRESSIONS.map(([name, expr]) => [`alert: ${name}`, expr] as const),
  ];
  it.each(everyExpression)('%s returns data', async (_name, expr) => {
    const result = await prometheus.query(expr);
    expect(result.error).toBeUndefined();
    expect(result.status).toBe('success');
    expect(result.samples.length, `${expr} returned no series`).toBeGreaterThan(0);
  });
});
