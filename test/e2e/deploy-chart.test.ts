// The Helm chart (deploy/helm/srt-gw): `npm run check:deploy` passes, and fails on a broken chart
// (a value of the wrong type, a field the schema does not have, a template outside the renderer's
// subset, a stale copy of the alert rules); the rendered Deployment keeps the properties a fleet
// gateway needs (replicas, disruption budget, non-root, read-only root, probes, the image's command),
// and the NetworkPolicy lets agent pods reach the gateway's proxy port and nothing else.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ensureBuilt, REPO_ROOT } from '../support/srt-gw-run.js';

const execFileAsync = promisify(execFile);
const CHART = join(REPO_ROOT, 'deploy', 'helm', 'srt-gw');
const CHECK = join(REPO_ROOT, 'scripts', 'check-deploy.mjs');
const RENDER = join(REPO_ROOT, 'scripts', 'render-chart.mjs');

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function node(args: string[]): Promise<Outcome> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, args, { cwd: REPO_ROOT, maxBuffer: 1 << 24, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

/** Parsed YAML, walked as plain data: check-deploy validates the shapes against the schemas. */
type Data = ReturnType<typeof JSON.parse>;
type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: Data; data?: Record<string, string> };

async function renderManifests(valuesFiles: string[] = []): Promise<Manifest[]> {
  const result = await node([RENDER, CHART, '--name', 'srt-gw', '--namespace', 'srt-gw', ...valuesFiles.flatMap((file) => ['-f', file])]);
  expect(result.code, result.stderr).toBe(0);
  return YAML.parseAllDocuments(result.stdout, { version: '1.1' })
    .map((document) => document.toJS() as Manifest | null)
    .filter((manifest): manifest is Manifest => manifest !== null);
}

function one(manifests: Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.filter((manifest) => manifest.kind === kind && (name === undefined || manifest.metadata.name === name));
  expect(found, `one ${kind}${name ? `/${name}` : ''}`).toHaveLength(1);
  return found[0]!;
}

/** The Dockerfile's ENTRYPOINT and CMD (exec form), and its numeric USER. */
function dockerfileImage(): { cmd: string[]; uid: number } {
  const text = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(text)![1]!) as string[];
  const uid = Number(/^USER (\d+)/m.exec(text)![1]);
  return { cmd, uid };
}

let scratch: string;
beforeAll(() => {
  ensureBuilt(); // check-deploy runs `srt-gw policy check` on the policy ConfigMap
  scratch = mkdtempSync(join(tmpdir(), 'srt-gw-deploy-chart-'));
});
afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('npm run check:deploy', () => {
  it('passes: both scenarios render, every manifest is valid, the rules and dashboard match their sources', async () => {
    const result = await node([CHECK]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^default values: \d+ manifests valid: .*Deployment\/srt-gw/m);
    expect(result.stdout).toMatch(/^ci\/everything-values\.yaml: \d+ manifests valid: .*PrometheusRule\/srt-gw.*ServiceMonitor\/srt-gw/m);
    expect(result.stdout).toContain('PrometheusRule/srt-gw rules = dashboards/prometheus/alerts.yml');
    expect(result.stdout).toContain('= dashboards/grafana/srt-gw.json');
    expect(result.stdout).toContain('policy.yaml passes srt-gw policy check');
    expect(result.stdout).toContain('check-deploy: ok');
  });

  it('rejects a value of the wrong type (replicaCount: "two"), naming the manifest and the schema error', async () => {
    const values = join(scratch, 'replicas-two.yaml');
    writeFileSync(values, 'replicaCount: two\n');
    const result = await node([CHECK, '--values', values]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Deployment/srt-gw (srt-gw/templates/deployment.yaml): /spec/replicas must be integer');
  });

  it('rejects a field the Kubernetes schema does not have, as kubectl apply would', async () => {
    const values = join(scratch, 'unknown-field.yaml');
    writeFileSync(values, 'env:\n  - name: TOKEN\n    secret: not-a-field\n');
    const result = await node([CHECK, '--values', values]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/Deployment\/srt-gw \(srt-gw\/templates\/deployment\.yaml\): spec\.template\.spec\.containers\[0\]\.env\[0\]\.secret: .*'"secret"' does not exist in type 'IEnvVar'/);
  });

  it('rejects a policy that srt-gw would refuse', async () => {
    const values = join(scratch, 'bad-policy.yaml');
    writeFileSync(values, 'policy:\n  content: |\n    version: 1\n    rules:\n      - host: no-id.example.test\n');
    const result = await node([CHECK, '--values', values]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('ConfigMap/srt-gw-policy (srt-gw/templates/configmap-policy.yaml): policy.yaml fails srt-gw policy check');
  });

  it('rejects a chart whose template leaves the renderer subset, with file:line', async () => {
    const chart = join(scratch, 'chart-outside-subset');
    cpSync(CHART, chart, { recursive: true });
    appendFileSync(join(chart, 'templates', 'service.yaml'), '  sessionAffinity: {{ .Values.service.type | lower }}\n');
    const result = await node([CHECK, '--chart', chart, '--renderer', 'subset']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/render-chart: srt-gw\/templates\/service\.yaml:\d+: function "lower" is not in the subset/);
  });

  it('rejects a chart whose copy of the alert rules is stale', async () => {
    const chart = join(scratch, 'chart-stale-rules');
    cpSync(CHART, chart, { recursive: true });
    appendFileSync(join(chart, 'files', 'alerts.yml'), '# edited in the chart only\n');
    const result = await node([CHECK, '--chart', chart]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('files/alerts.yml differs from dashboards/prometheus/alerts.yml');
  });
});

describe('the chart with its default values', () => {
  let manifests: Manifest[];
  let pod: Data;
  let gateway: Data;
  beforeAll(async () => {
    manifests = await renderManifests();
    const deployment = one(manifests, 'Deployment');
    pod = deployment.spec.template.spec;
    gateway = pod.containers.find((container: { name: string }) => container.name === 'gateway');
  });

  it('runs two or more replicas, spread across nodes, with a disruption budget', () => {
    expect(one(manifests, 'Deployment').spec.replicas).toBeGreaterThanOrEqual(2);
    expect(pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey).toBe('kubernetes.io/hostname');
    const budget = one(manifests, 'PodDisruptionBudget');
    expect(budget.spec.selector).toEqual(one(manifests, 'Deployment').spec.selector);
  });

  it("runs the image's CMD as its non-root user on a read-only root file system", () => {
    const { cmd, uid } = dockerfileImage();
    expect(gateway.args).toEqual(cmd);
    expect(gateway.command).toBeUndefined();
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: uid });
    for (const container of [...pod.initContainers, ...pod.containers]) {
      expect(container.securityContext, container.name).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    }
    expect(pod.automountServiceAccountToken).toBe(false);
    // Every path the gateway writes is a volume.
    const mounts = new Map(gateway.volumeMounts.map((mount: { mountPath: string; name: string }) => [mount.mountPath, mount.name]));
    expect(mounts.get('/tmp')).toBeDefined();
    const caDir = cmd[cmd.indexOf('--ca-dir') + 1]!;
    expect([...mounts.keys()].some((path) => caDir.startsWith(`${String(path)}/`))).toBe(true);
  });

  it('probes /healthz and /readyz on the metrics port', () => {
    expect(gateway.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(gateway.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(gateway.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    const { cmd } = dockerfileImage();
    const metricsPort = Number(cmd[cmd.indexOf('--metrics') + 1]!.split(':').pop());
    expect(gateway.ports).toContainEqual({ name: 'metrics', containerPort: metricsPort, protocol: 'TCP' });
  });

  it('mounts the policy ConfigMap as a directory (no subPath, so the kubelet’s ..data swaps reach it), with a checksum annotation', () => {
    const { cmd } = dockerfileImage();
    const policyPath = cmd[cmd.indexOf('--policy') + 1]!;
    const mount = gateway.volumeMounts.find((each: { name: string }) => each.name === 'policy');
    expect(mount).toEqual({ name: 'policy', mountPath: policyPath.slice(0, policyPath.lastIndexOf('/')), readOnly: true });
    const configMap = one(manifests, 'ConfigMap', 'srt-gw-policy');
    expect(pod.volumes.find((volume: { name: string }) => volume.name === 'policy').configMap.name).toBe('srt-gw-policy');
    expect(Object.keys(configMap.data!)).toEqual([policyPath.slice(policyPath.lastIndexOf('/') + 1)]);
    const values = YAML.parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as { policy: { content: string } };
    expect(one(manifests, 'Deployment').spec.template.metadata.annotations['checksum/policy']).toBe(createHash('sha256').update(values.policy.content).digest('hex'));
  });

  it('takes the CA from one Secret shared by every replica, copied to a private directory first', () => {
    const secret = pod.volumes.find((volume: { name: string }) => volume.name === 'ca-secret').secret;
    expect(secret.secretName).toBe('srt-gw-ca');
    const copy = pod.initContainers.find((container: { name: string }) => container.name === 'ca');
    expect(copy.command.join(' ')).toMatch(/install -d -m 0700 \/var\/lib\/srt-gw \/var\/lib\/srt-gw\/ca .*install -m 0600 \S+ \/var\/lib\/srt-gw\/ca\/ca-key\.pem/s);
  });

  it('leaves out every optional part', () => {
    expect(manifests.map((manifest) => manifest.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Service', 'ServiceAccount']);
  });
});

describe('the chart with everything on', () => {
  let manifests: Manifest[];
  beforeAll(async () => {
    manifests = await renderManifests([join(CHART, 'ci', 'everything-values.yaml')]);
  });

  it('passes --state to the gateway for Redis, and leaves replicas to the HPA', () => {
    const deployment = one(manifests, 'Deployment');
    const args = deployment.spec.template.spec.containers[0].args as string[];
    expect(args.slice(args.indexOf('--state'), args.indexOf('--state') + 2)).toEqual(['--state', 'redis://srt-gw-redis.srt-gw.svc:6379/0']);
    expect(deployment.spec.replicas).toBeUndefined();
    const hpa = one(manifests, 'HorizontalPodAutoscaler');
    expect(hpa.spec.metrics[0].resource).toMatchObject({ name: 'cpu', target: { type: 'Utilization' } });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
  });

  it('scrapes with job="srt-gw", the job the alert rules select', () => {
    const monitor = one(manifests, 'ServiceMonitor');
    const service = one(manifests, 'Service');
    expect(service.metadata.labels![monitor.spec.jobLabel]).toBe('srt-gw');
    const rules = one(manifests, 'PrometheusRule');
    const down = (rules.spec.groups as { rules: { alert: string; expr: string }[] }[]).flatMap((group) => group.rules).find((rule) => rule.alert === 'SrtGwDown');
    expect(down?.expr).toContain('job="srt-gw"');
  });

  it('lets agent pods reach the gateway’s proxy port and nothing else (no DNS either)', () => {
    const egress = one(manifests, 'NetworkPolicy', 'srt-gw-agents-egress');
    expect(egress.metadata.namespace).toBe('agents');
    expect(egress.spec.policyTypes).toEqual(['Egress']);
    expect(egress.spec.egress).toEqual([
      {
        to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'srt-gw' } }, podSelector: { matchLabels: one(manifests, 'Deployment').spec.selector.matchLabels } }],
        ports: [{ protocol: 'TCP', port: 8080 }],
      },
    ]);
    const ingress = one(manifests, 'NetworkPolicy', 'srt-gw-gateway-ingress');
    expect(ingress.spec.ingress[0].from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'agents' } }, podSelector: egress.spec.podSelector }]);
  });

  it('ships the dashboard for Grafana’s sidecar and the CA certificate for agents', () => {
    const dashboard = one(manifests, 'ConfigMap', 'srt-gw-dashboard');
    expect(dashboard.metadata.labels!.grafana_dashboard).toBe('1');
    expect(JSON.parse(dashboard.data!['srt-gw.json']!)).toEqual(JSON.parse(readFileSync(join(REPO_ROOT, 'dashboards', 'grafana', 'srt-gw.json'), 'utf8')));
    const caCert = one(manifests, 'ConfigMap', 'srt-gw-ca-cert');
    expect(caCert.data!['ca.pem']).toContain('BEGIN CERTIFICATE');
    expect(JSON.stringify(manifests.filter((manifest) => manifest.kind !== 'Deployment'))).not.toContain('ca-key');
  });
});
