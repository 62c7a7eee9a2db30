#!/usr/bin/env node
// `npm run check:deploy`: renders the Helm chart (deploy/helm/srt-gw) with its default values and
// with ci/everything-values.yaml (every optional part on), and checks every manifest against the
// Kubernetes and Prometheus Operator schemas (kubernetes-models), field names included, as
// `kubectl apply` would. Also: the PrometheusRule carries exactly dashboards/prometheus/alerts.yml,
// the dashboard ConfigMap exactly dashboards/grafana/srt-gw.json, the chart's copies of both are
// in sync, the policy ConfigMap passes `srt-gw policy check`, and appVersion is package.json's.
//
//   node scripts/check-deploy.mjs                      both scenarios
//   node scripts/check-deploy.mjs --values FILE...     one scenario with these values files
//   node scripts/check-deploy.mjs --write-chart-files  copy the dashboards into the chart first
//   --renderer helm|subset                             default: helm when on PATH, else render-chart.mjs
//   --chart DIR                                        another copy of the chart (default deploy/helm/srt-gw)
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import ts from 'typescript';
import YAML from 'yaml';
import { ChartRenderError, renderChart } from './render-chart.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
let CHART = join(ROOT, 'deploy', 'helm', 'srt-gw');
const RELEASE = 'srt-gw';
const NAMESPACE = 'srt-gw';

/** Files the chart carries copies of (helm reads only inside the chart): source in the repository → copy in the chart. */
const CHART_FILE_COPIES = [
  ['dashboards/prometheus/alerts.yml', 'files/alerts.yml'],
  ['dashboards/grafana/srt-gw.json', 'files/srt-gw.json'],
];

class DeployCheckFailure extends Error {}

function fail(message) {
  throw new DeployCheckFailure(message);
}

function onPath(command) {
  return (process.env.PATH ?? '').split(delimiter).some((directory) => directory !== '' && existsSync(join(directory, command)));
}

// ---------------------------------------------------------------------------------------------
// Rendering

function renderWithHelm(valuesFiles) {
  const args = ['template', RELEASE, CHART, '--namespace', NAMESPACE, ...valuesFiles.flatMap((file) => ['-f', file])];
  const result = spawnSync('helm', args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (result.status !== 0) fail(`helm ${args.join(' ')} failed:\n${result.stderr}`);
  return result.stdout;
}

function renderWithSubset(valuesFiles) {
  try {
    const { manifests } = renderChart({ chartDir: CHART, valuesFiles, releaseName: RELEASE, namespace: NAMESPACE });
    return manifests.map(({ source, content }) => `---\n# Source: ${source}\n${content}`).join('');
  } catch (error) {
    if (error instanceof ChartRenderError) fail(`render-chart: ${error.message}`);
    throw error;
  }
}

/** The rendered stream → manifest objects, each with the template it came from. */
function parseManifests(text) {
  const manifests = [];
  for (const document of YAML.parseAllDocuments(text, { version: '1.1' })) {
    // helm's "# Source: chart/templates/x.yaml" line, which the parser keeps without its "#".
    const comment = `${document.commentBefore ?? ''}\n${document.contents?.commentBefore ?? ''}`;
    const source = /^\s*Source: (\S+)/m.exec(comment)?.[1] ?? 'the rendered chart';
    if (document.errors.length > 0) fail(`${source}: the rendered manifest is not valid YAML: ${document.errors[0].message}`);
    const object = document.toJS();
    if (object === null || object === undefined) continue;
    if (typeof object !== 'object' || Array.isArray(object)) fail(`${source}: a manifest must be a mapping, got ${JSON.stringify(object).slice(0, 80)}`);
    manifests.push({ source, object });
  }
  return manifests;
}

const label = ({ object }) => `${object.kind ?? '(no kind)'}/${object.metadata?.name ?? '(no name)'}`;

// ---------------------------------------------------------------------------------------------
// Schemas: kubernetes-models' validators (types, required fields, formats) ...

/** apiVersion → the module whose exports are that group-version's models. */
function modelModule(apiVersion) {
  if (apiVersion.startsWith('monitoring.coreos.com/')) return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  return apiVersion.includes('/') ? `kubernetes-models/${apiVersion}` : `kubernetes-models/${apiVersion}`;
}

async function validateWithModels(manifests) {
  const problems = [];
  for (const manifest of manifests) {
    const { apiVersion, kind } = manifest.object;
    if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
      problems.push(`${label(manifest)} (${manifest.source}): apiVersion and kind must be strings`);
      continue;
    }
    let models;
    try {
      models = await import(modelModule(apiVersion));
    } catch {
      problems.push(`${label(manifest)} (${manifest.source}): no schema for apiVersion ${apiVersion}`);
      continue;
    }
    const Model = models[kind];
    if (typeof Model !== 'function' || Model.apiVersion !== apiVersion || Model.kind !== kind) {
      problems.push(`${label(manifest)} (${manifest.source}): no schema for ${apiVersion} ${kind}`);
      continue;
    }
    try {
      new Model(manifest.object).validate();
    } catch (error) {
      const details = Array.isArray(error.errors)
        ? error.errors.map((entry) => `${entry.instancePath || '/'} ${entry.message}${entry.params?.additionalProperty ? ` (${entry.params.additionalProperty})` : ''}`).join('; ')
        : error.message;
      problems.push(`${label(manifest)} (${manifest.source}): ${details}`);
    }
  }
  return problems;
}

// ... and field names: the validators let unknown fields through, which `kubectl apply` (strict
// field validation) refuses and which are usually a field at the wrong level. Each manifest becomes
// a TypeScript object literal typed with kubernetes-models' interface for its kind, so the
// compiler's excess-property check names every field the schema does not have.

/** Serialises `value` as a TS literal, one property per line, recording each line's path. */
function literalWithPaths(value, path, lines, indent) {
  const pad = '  '.repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    const parts = value.map((item, index) => {
      lines.push(`${path}[${index}]`);
      return `\n${pad}  ${literalWithPaths(item, `${path}[${index}]`, lines, indent + 1)}`;
    });
    lines.push(path);
    return `[${parts.join(',')}\n${pad}]`;
  }
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0) return '{}';
    const parts = keys.map((key) => {
      const childPath = path === '' ? key : `${path}.${key}`;
      lines.push(childPath);
      return `\n${pad}  ${JSON.stringify(key)}: ${literalWithPaths(value[key], childPath, lines, indent + 1)}`;
    });
    lines.push(path);
    return `{${parts.join(',')}\n${pad}}`;
  }
  // Multi-line strings stay on one line (JSON escapes), so the line map stays exact.
  return JSON.stringify(value);
}

function typeImport(apiVersion, kind) {
  return `${modelModule(apiVersion)}/${kind}`;
}

function checkFieldNames(manifests) {
  const virtualFile = join(ROOT, '.check-deploy-manifests.ts');
  const header = [];
  const body = [];
  const lineOwners = []; // generated line (0-based) → { manifest, path }
  manifests.forEach((manifest, index) => {
    const { apiVersion, kind } = manifest.object;
    header.push(`import type { I${kind} as T${index} } from ${JSON.stringify(typeImport(apiVersion, kind))};`);
  });
  const headerLines = header.length;
  manifests.forEach((manifest, index) => {
    const paths = [];
    const literal = literalWithPaths(manifest.object, '', paths, 0);
    const startLine = headerLines + body.join('\n').split('\n').length - (body.length === 0 ? 1 : 0);
    body.push(`export const m${index}: T${index} = ${literal};`);
    // Line k of the literal (k ≥ 1) is the property or element recorded k-th; line 0 is the opener.
    lineOwners[startLine] = { manifest, path: '' };
    paths.forEach((path, offset) => {
      lineOwners[startLine + 1 + offset] = { manifest, path };
    });
  });
  const source = `${header.join('\n')}\n${body.join('\n')}\n`;
  const options = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const originalGetSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, ...rest) =>
    resolve(fileName) === virtualFile ? ts.createSourceFile(fileName, source, languageVersion, true) : originalGetSourceFile(fileName, languageVersion, ...rest);
  const originalFileExists = host.fileExists.bind(host);
  host.fileExists = (fileName) => resolve(fileName) === virtualFile || originalFileExists(fileName);
  const originalReadFile = host.readFile.bind(host);
  host.readFile = (fileName) => (resolve(fileName) === virtualFile ? source : originalReadFile(fileName));
  const program = ts.createProgram([virtualFile], options, host);
  const problems = [];
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n').split('\n')[0];
    if (diagnostic.file === undefined || resolve(diagnostic.file.fileName) !== virtualFile || diagnostic.start === undefined) {
      problems.push(`field check: ${message}`);
      continue;
    }
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    if (line < headerLines) {
      problems.push(`field check: no type for ${source.split('\n')[line]}: ${message}`);
      continue;
    }
    const owner = lineOwners[line];
    problems.push(owner ? `${label(owner.manifest)} (${owner.manifest.source}): ${owner.path || '/'}: ${message}` : `field check: ${message}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// What the chart must carry

function findOne(manifests, kind) {
  return manifests.find((manifest) => manifest.object.kind === kind);
}

function checkPrometheusRule(manifests) {
  const rule = findOne(manifests, 'PrometheusRule');
  if (!rule) return null;
  const expected = YAML.parse(readFileSync(join(ROOT, CHART_FILE_COPIES[0][0]), 'utf8'));
  if (!isDeepStrictEqual(rule.object.spec, { groups: expected.groups })) {
    fail(`${label(rule)} (${rule.source}): its spec.groups differ from dashboards/prometheus/alerts.yml's groups`);
  }
  const count = expected.groups.reduce((sum, group) => sum + group.rules.length, 0);
  return `${label(rule)} rules = dashboards/prometheus/alerts.yml (${expected.groups.length} groups, ${count} rules)`;
}

function checkDashboard(manifests) {
  const configMap = manifests.find((manifest) => manifest.object.kind === 'ConfigMap' && manifest.object.data?.['srt-gw.json'] !== undefined);
  if (!configMap) return null;
  const expected = JSON.parse(readFileSync(join(ROOT, CHART_FILE_COPIES[1][0]), 'utf8'));
  let actual;
  try {
    actual = JSON.parse(configMap.object.data['srt-gw.json']);
  } catch (error) {
    fail(`${label(configMap)} (${configMap.source}): srt-gw.json is not JSON: ${error.message}`);
  }
  if (!isDeepStrictEqual(actual, expected)) fail(`${label(configMap)} (${configMap.source}): srt-gw.json differs from dashboards/grafana/srt-gw.json`);
  const labels = configMap.object.metadata?.labels ?? {};
  if (labels.grafana_dashboard === undefined) fail(`${label(configMap)} (${configMap.source}): no grafana_dashboard label, so Grafana's sidecar will not load it`);
  return `${label(configMap)} = dashboards/grafana/srt-gw.json (label grafana_dashboard=${labels.grafana_dashboard})`;
}

function checkPolicy(manifests) {
  const configMap = manifests.find((manifest) => manifest.object.kind === 'ConfigMap' && manifest.object.data?.['policy.yaml'] !== undefined);
  if (!configMap) return null;
  const cli = join(ROOT, 'dist', 'bin', 'srt-gw.js');
  if (!existsSync(cli)) fail(`${cli} is missing: run npm run build first (the policy ConfigMap is checked with srt-gw policy check)`);
  const directory = mkdtempSync(join(tmpdir(), 'srt-gw-check-deploy-'));
  try {
    const file = join(directory, 'policy.yaml');
    writeFileSync(file, configMap.object.data['policy.yaml']);
    const result = spawnSync(process.execPath, [cli, 'policy', 'check', file], { encoding: 'utf8' });
    if (result.status !== 0) fail(`${label(configMap)} (${configMap.source}): policy.yaml fails srt-gw policy check:\n${result.stdout}${result.stderr}`);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
  return `${label(configMap)} policy.yaml passes srt-gw policy check`;
}

function checkChartFiles(write) {
  const stale = [];
  for (const [source, copy] of CHART_FILE_COPIES) {
    const from = join(ROOT, source);
    const to = join(CHART, copy);
    if (write) copyFileSync(from, to);
    if (!existsSync(to) || !readFileSync(from).equals(readFileSync(to))) stale.push(`${relative(ROOT, to)} differs from ${source}`);
  }
  if (stale.length > 0) fail(`${stale.join('\n')}\nrun: node scripts/check-deploy.mjs --write-chart-files`);
  return `chart copies in sync: ${CHART_FILE_COPIES.map(([source, copy]) => `${copy} = ${source}`).join(', ')}`;
}

function checkAppVersion() {
  const chart = YAML.parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'));
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  if (String(chart.appVersion) !== version) fail(`${relative(ROOT, join(CHART, 'Chart.yaml'))}: appVersion ${chart.appVersion} is not package.json's version ${version}`);
  return `Chart.yaml appVersion ${chart.appVersion} = package.json version`;
}

// ---------------------------------------------------------------------------------------------

async function checkScenario(name, valuesFiles, render) {
  const manifests = parseManifests(render(valuesFiles));
  if (manifests.length === 0) fail(`${name}: the chart rendered no manifests`);
  const problems = [...(await validateWithModels(manifests)), ...checkFieldNames(manifests)];
  if (problems.length > 0) fail(`${name}: ${problems.length} manifest problem(s):\n  ${problems.join('\n  ')}`);
  const notes = [checkPrometheusRule(manifests), checkDashboard(manifests), checkPolicy(manifests)].filter((note) => note !== null);
  console.log(`${name}: ${manifests.length} manifests valid: ${manifests.map(label).join(', ')}`);
  for (const note of notes) console.log(`  ${note}`);
}

async function main(argv) {
  const valuesFiles = [];
  const valuesNames = [];
  let write = false;
  let renderer = onPath('helm') ? 'helm' : 'subset';
  for (let index = 0; index < argv.length; index += 1) {
    const argument = argv[index];
    if (argument === '--values' || argument === '-f') {
      const file = argv[++index] ?? fail(`${argument} needs a file`);
      valuesNames.push(file);
      valuesFiles.push(resolve(file));
    }
    else if (argument === '--write-chart-files') write = true;
    else if (argument === '--renderer') renderer = argv[++index];
    else if (argument === '--chart') CHART = resolve(argv[++index] ?? fail('--chart needs a directory'));
    else fail(`unknown argument ${argument}\nusage: node scripts/check-deploy.mjs [--values FILE]... [--write-chart-files] [--renderer helm|subset] [--chart DIR]`);
  }
  if (renderer !== 'helm' && renderer !== 'subset') fail(`--renderer must be helm or subset, got ${renderer}`);
  const render = renderer === 'helm' ? renderWithHelm : renderWithSubset;
  console.log(renderer === 'helm' ? 'check-deploy: rendering with helm template' : 'check-deploy: rendering with scripts/render-chart.mjs (helm is not on PATH)');
  console.log(checkChartFiles(write));
  console.log(checkAppVersion());
  if (valuesFiles.length > 0) {
    await checkScenario(valuesNames.join(' + '), valuesFiles, render);
  } else {
    await checkScenario('default values', [], render);
    await checkScenario('ci/everything-values.yaml', [join(CHART, 'ci', 'everything-values.yaml')], render);
  }
  console.log('check-deploy: ok');
}

main(process.argv.slice(2)).catch((error) => {
  if (!(error instanceof DeployCheckFailure)) throw error;
  console.error(`check-deploy: ${error.message}`);
  process.exitCode = 1;
});
