// One /metrics for all the workers of `srt-gw serve --workers N`: the primary asks each listening
// worker for its registry (as JSON, over the cluster IPC channel) and sums them with prom-client's
// AggregatorRegistry.aggregate: counters and histograms add up; process gauges follow each
// metric's own aggregator. The primary also answers /healthz and /readyz there.
import type { Worker } from 'node:cluster';
import http from 'node:http';
import type net from 'node:net';
import client from 'prom-client';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import type { GatewayMetrics } from './metrics.js';

const METRICS_REQUEST = 'srt-gw:metrics-request';
const METRICS_RESPONSE = 'srt-gw:metrics-response';
/** A worker that has not answered by then (it is being killed, say) is left out of that scrape. */
const WORKER_ANSWER_TIMEOUT_MS = 3_000;

interface MetricsRequest {
  type: typeof METRICS_REQUEST;
  id: number;
}
interface MetricsResponse {
  type: typeof METRICS_RESPONSE;
  id: number;
  metrics?: client.MetricObjectWithValues<client.MetricValue<string>>[];
  error?: string;
}

/** In a worker: answers the primary's metrics requests from this worker's registry. */
export function answerMetricsRequests(metrics: Pick<GatewayMetrics, 'registry' | 'countPending'>): () => void {
  const onMessage = (message: MetricsRequest) => {
    if (message?.type !== METRICS_REQUEST) return;
    metrics.countPending();
    metrics.registry.getMetricsAsJSON().then(
      (json) => process.send?.({ type: METRICS_RESPONSE, id: message.id, metrics: json } satisfies MetricsResponse),
      (error: unknown) => process.send?.({ type: METRICS_RESPONSE, id: message.id, error: String(error) } satisfies MetricsResponse),
    );
  };
  process.on('message', onMessage);
  return () => process.off('message', onMessage);
}

export interface WorkerMetricsSource {
  /** The workers to ask: those listening now. */
  workers(): Worker[];
}

let nextRequestId = 0;

/** Asks every worker for its metrics and sums them into one text exposition. */
export async function aggregateWorkerMetrics(source: WorkerMetricsSource): Promise<string> {
  const id = nextRequestId++;
  const answers = await Promise.all(
    source.workers().map(
      (worker) =>
        new Promise<MetricsResponse['metrics'] | null>((resolveAnswer) => {
          const finish = (answer: MetricsResponse['metrics'] | null) => {
            clearTimeout(timer);
            worker.off('message', onMessage);
            worker.off('exit', onExit);
            resolveAnswer(answer);
          };
          const onMessage = (message: MetricsResponse) => {
            if (message?.type === METRICS_RESPONSE && message.id === id) finish(message.error === undefined ? (message.metrics ?? null) : null);
          };
          const onExit = () => finish(null);
          const timer = setTimeout(() => finish(null), WORKER_ANSWER_TIMEOUT_MS);
          worker.on('message', onMessage);
          worker.on('exit', onExit);
          try {
            worker.send({ type: METRICS_REQUEST, id } satisfies MetricsRequest);
          } catch {
            finish(null);
          }
        }),
    ),
  );
  const registries = answers.filter((answer): answer is NonNullable<typeof answer> => answer !== null);
  return client.AggregatorRegistry.aggregate(registries).metrics();
}

export interface PrimaryMetricsServer {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/**
 * Serves /metrics (the sum over the workers), /healthz (the primary is up) and /readyz (every
 * worker is listening) on `address`.
 */
export async function startPrimaryMetricsServer(
  address: { host: string; port: number },
  source: WorkerMetricsSource,
  state: { ready(): boolean },
): Promise<PrimaryMetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain' }).end('GET only\n');
    } else if (path === '/healthz' || path === '/readyz') {
      // As a single gateway answers them (metrics.ts createMetricsServer); ready = every worker listens.
      const ok = path === '/healthz' || state.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(ok ? 'ok\n' : 'not ready\n');
    } else if (path === '/metrics') {
      aggregateWorkerMetrics(source).then(
        (text) => res.writeHead(200, { 'content-type': client.register.contentType }).end(text),
        (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics could not be gathered: ${String(error)}\n`),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('srt-gw serves metrics at /metrics\n');
    }
  });
  const bound = await new Promise<net.AddressInfo>((resolveListen, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new SrtGwError(ErrorCodes.LISTEN_FAILED, `cannot listen for metrics on ${address.host}:${address.port}: ${error.code ?? error.message}`, { cause: error })),
    );
    server.listen(address.port, address.host, () => resolveListen(server.address() as net.AddressInfo));
  });
  return {
    address: { host: bound.address, port: bound.port },
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      }),
  };
}
