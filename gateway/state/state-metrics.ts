// The shared state's health (serve --state) on the gateway's metrics: whether it answers, and how
// many commands it failed. Read at each scrape from the connection itself.
import client from 'prom-client';
import { METRIC_NAMES } from '../audit/metric-table.js';
import type { SharedStateConnection } from './redis-state.js';

export function registerStateMetrics(registry: client.Registry, state: SharedStateConnection): void {
  new client.Gauge({
    name: METRIC_NAMES.stateBackendUp,
    help: 'Whether the shared state (serve --state) is connected and its last command succeeded: 1 up, 0 down (budgets then refuse with 429 budget-state-unavailable).',
    registers: [registry],
    collect() {
      this.set(state.up ? 1 : 0);
    },
  });
  let counted = 0;
  const errors = new client.Counter({
    name: METRIC_NAMES.stateErrors,
    help: 'Commands to the shared state (serve --state) that failed, timed out or were refused while it was unreachable.',
    registers: [registry],
    collect() {
      errors.inc(state.errors - counted);
      counted = state.errors;
    },
  });
}
