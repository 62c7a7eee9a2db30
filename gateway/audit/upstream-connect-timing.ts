// Time to open an upstream connection, from undici's own diagnostics channels
// (lib/core/diagnostics.js). They are process-global: two gateways in one process both count
// every undici connect in the process, not only their own (the metric's help text says so).
import diagnosticsChannel from 'node:diagnostics_channel';
import type client from 'prom-client';

const UNDICI_BEFORE_CONNECT = 'undici:client:beforeConnect';
const UNDICI_CONNECTED = 'undici:client:connected';
const UNDICI_CONNECT_ERROR = 'undici:client:connectError';

/** Observes each upstream connect's duration into `histogram` by outcome; returns the function that stops it. */
export function timeUpstreamConnects(histogram: client.Histogram<'outcome'>): () => void {
  // undici 7 builds a new connectParams object for each message, so one connect is recognised
  // by its connector (shared by a pool's clients) and its params; concurrent connects with the
  // same pair are paired first-in first-out, which keeps the count and the sum exact.
  const connectStarts = new WeakMap<object, Map<string, bigint[]>>();
  const startsOf = (message: unknown): bigint[] | null => {
    const key = connectKeyOf(message);
    if (key === null) return null;
    let byParams = connectStarts.get(key.connector);
    if (byParams === undefined) connectStarts.set(key.connector, (byParams = new Map()));
    let starts = byParams.get(key.params);
    if (starts === undefined) byParams.set(key.params, (starts = []));
    return starts;
  };
  const connectDone = (outcome: 'ok' | 'failed') => (message: unknown) => {
    const start = startsOf(message)?.shift();
    if (start !== undefined) histogram.observe({ outcome }, Number(process.hrtime.bigint() - start) / 1e9);
  };
  const undiciListeners: [string, (message: unknown) => void][] = [
    [UNDICI_BEFORE_CONNECT, (message) => {
      const starts = startsOf(message);
      // A connect that never reports back must not grow the queue without bound.
      if (starts && starts.length < 1000) starts.push(process.hrtime.bigint());
    }],
    [UNDICI_CONNECTED, connectDone('ok')],
    [UNDICI_CONNECT_ERROR, connectDone('failed')],
  ];
  for (const [name, listener] of undiciListeners) diagnosticsChannel.subscribe(name, listener);

  return () => {
    for (const [name, listener] of undiciListeners) diagnosticsChannel.unsubscribe(name, listener);
  };
}

interface UndiciConnectMessage {
  connectParams?: { protocol?: unknown; hostname?: unknown; port?: unknown; servername?: unknown; localAddress?: unknown };
  connector?: unknown;
}

/** The connector and a string of the params that stay the same across one connect's messages. */
function connectKeyOf(message: unknown): { connector: object; params: string } | null {
  const { connectParams: p, connector } = (message ?? {}) as UndiciConnectMessage;
  if (p === undefined || (typeof connector !== 'function' && (typeof connector !== 'object' || connector === null))) return null;
  return { connector, params: JSON.stringify([p.protocol, p.hostname, p.port, p.servername, p.localAddress]) };
}
