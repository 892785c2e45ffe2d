/**
 * Prometheus metrics of the control plane (prom-client). One registry per platform instance, so
 * tests can run several side by side.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { INVOCATION_DURATION_BUCKETS_S } from './invoke-telemetry.ts';

export class RuntimeMetrics {
  readonly registry = new Registry();

  readonly invocations = new Counter({
    name: 'tributary_invocations_total',
    help: 'Function invocations by function and outcome (ok, or the error code)',
    labelNames: ['function', 'trigger', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly invocationDuration = new Histogram({
    name: 'tributary_invocation_duration_seconds',
    help: 'Wall time of an invocation: from its request head to its response (HTTP, as the serving process sees it: a host, or the control plane with the host round trip) or of a batch',
    labelNames: ['function', 'trigger'] as const,
    buckets: INVOCATION_DURATION_BUCKETS_S,
    registers: [this.registry],
  });

  readonly coldStarts = new Counter({
    name: 'tributary_cold_starts_total',
    help: 'Loads of a function into an isolate: at deploy (validation keeps the instance) or by a call that found none loaded',
    labelNames: ['function'] as const,
    registers: [this.registry],
  });

  readonly isolates = new Gauge({
    name: 'tributary_isolates',
    help: 'Live isolates per host process (warm spares plus loaded functions)',
    labelNames: ['host', 'state'] as const,
    registers: [this.registry],
  });

  readonly hostRestarts = new Counter({
    name: 'tributary_host_restarts_total',
    help: 'Host processes restarted, by reason: crash (V8 abort, kill -9, exit), watchdog (event loop blocked), memory (recycled over its RSS limit)',
    labelNames: ['host', 'reason'] as const,
    registers: [this.registry],
  });

  readonly connections = new Counter({
    name: 'tributary_connections_total',
    help: 'Client connections accepted on the public port, by who served them: a host (handed over) or the control plane (no host could take it)',
    labelNames: ['served_by'] as const,
    registers: [this.registry],
  });

  readonly controlPlaneErrors = new Counter({
    name: 'tributary_control_plane_errors_total',
    help: 'Errors caught in control-plane timers, intervals and event handlers (the loop went on), by where they happened',
    labelNames: ['where'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tributary_controlplane_' });
  }

  /** Drops every series labelled with a deleted function, so /metrics lists only what exists. */
  forgetFunction(name: string): Promise<number> {
    return removeSeries(this.registry, { function: name });
  }
}

/**
 * Removes, from every metric in `registry` that has all of `match`'s label names, each series
 * whose labels include `match` (whatever its other labels). prom-client's `remove` takes a full
 * label set, so the existing sets are listed first. Returns how many series were removed.
 *
 * @example
 *   await removeSeries(registry, { graph: 'wordcount' }); // every node, action, bucket of it
 */
export async function removeSeries(registry: Registry, match: Record<string, string>): Promise<number> {
  const keys = Object.keys(match);
  let removed = 0;
  // prom-client types these as plain objects; they are the Counter/Gauge/Histogram instances.
  for (const metric of registry.getMetricsAsArray() as unknown as LabelledMetric[]) {
    const labelNames = metric.labelNames ?? [];
    if (!keys.every((key) => labelNames.includes(key))) continue;
    const seen = new Set<string>();
    for (const { labels } of (await metric.get()).values) {
      if (!keys.every((key) => String(labels[key]) === match[key])) continue;
      // Histogram buckets add `le` (summaries `quantile`): keep only the metric's own labels.
      const own = Object.fromEntries(labelNames.filter((label) => labels[label] !== undefined).map((label) => [label, labels[label]!]));
      const id = JSON.stringify(own);
      if (seen.has(id)) continue;
      seen.add(id);
      metric.remove(own);
      removed++;
    }
  }
  return removed;
}

interface LabelledMetric {
  labelNames?: readonly string[];
  get(): Promise<{ values: Array<{ labels: Partial<Record<string, string | number>> }> }>;
  remove(labels: Record<string, string | number>): void;
}
