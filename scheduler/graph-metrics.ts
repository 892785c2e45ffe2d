/**
 * Prometheus series of running graphs: the autoscaler's signals (arrival rate, service time per
 * record and per batch, queue depth, replicas, busy fraction), its decisions, stragglers, and each
 * graph's end-to-end latency. Registered on the platform's registry (runtime/metrics.ts).
 */
import { removeSeries } from '../runtime/metrics.ts';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export class GraphMetrics {
  readonly arrivalRate: Gauge<'graph' | 'node'>;
  readonly recordService: Histogram<'graph' | 'node'>;
  readonly batchService: Histogram<'graph' | 'node'>;
  readonly queueDepth: Gauge<'graph' | 'node'>;
  readonly replicas: Gauge<'graph' | 'node'>;
  readonly busyFraction: Gauge<'graph' | 'node'>;
  readonly predictedLatency: Gauge<'graph' | 'node'>;
  readonly measuredLatency: Gauge<'graph' | 'node'>;
  readonly decisions: Counter<'graph' | 'node' | 'action'>;
  readonly stragglers: Counter<'graph' | 'node'>;
  /** How far a node's lowest event-time watermark trails the clock (graphs with event time only). */
  readonly watermarkLag: Gauge<'graph' | 'node'>;
  readonly endToEnd: Histogram<'graph'>;
  /** Deleted graphs whose Kafka topics and groups are not removed yet (scheduler/kafka/kafka-cleanup.ts). */
  readonly kafkaCleanupsPending: Gauge;

  private readonly registry: Registry;

  constructor(registry: Registry) {
    this.registry = registry;
    const registers = [registry];
    this.arrivalRate = new Gauge({ name: 'tributary_node_arrival_rate', help: 'Records per second arriving on a node input edges', labelNames: ['graph', 'node'], registers });
    this.recordService = new Histogram({
      name: 'tributary_node_record_service_seconds',
      help: 'Service time per record (batch wall time / records)',
      labelNames: ['graph', 'node'],
      buckets: [0.000005, 0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1],
      registers,
    });
    this.batchService = new Histogram({
      name: 'tributary_node_batch_service_seconds',
      help: 'Wall time of one batch: dispatch to the isolate, process, commit',
      labelNames: ['graph', 'node'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.queueDepth = new Gauge({ name: 'tributary_node_queue_depth', help: 'Records waiting on a node input edges (lag)', labelNames: ['graph', 'node'], registers });
    this.replicas = new Gauge({ name: 'tributary_node_replicas', help: 'Replicas (isolates) a node runs', labelNames: ['graph', 'node'], registers });
    this.busyFraction = new Gauge({ name: 'tributary_node_busy_fraction', help: 'Share of the last interval a node replicas spent processing', labelNames: ['graph', 'node'], registers });
    this.predictedLatency = new Gauge({ name: 'tributary_node_predicted_latency_seconds', help: 'Latency model prediction at the chosen replica count (SLO percentile)', labelNames: ['graph', 'node'], registers });
    this.measuredLatency = new Gauge({ name: 'tributary_node_measured_latency_seconds', help: 'Measured node sojourn (Little: queue / arrival rate + batch time)', labelNames: ['graph', 'node'], registers });
    this.decisions = new Counter({ name: 'tributary_autoscaler_decisions_total', help: 'Autoscaler decisions by action (up, down, zero, wake, hold)', labelNames: ['graph', 'node', 'action'], registers });
    this.stragglers = new Counter({ name: 'tributary_stragglers_total', help: 'Replicas found straggling and recycled', labelNames: ['graph', 'node'], registers });
    this.watermarkLag = new Gauge({ name: 'tributary_node_watermark_lag_seconds', help: 'Wall clock minus the lowest event-time watermark over a node partitions', labelNames: ['graph', 'node'], registers });
    this.endToEnd = new Histogram({
      name: 'tributary_graph_e2e_latency_seconds',
      help: 'Source ingest to sink commit, per record',
      labelNames: ['graph'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.kafkaCleanupsPending = new Gauge({ name: 'tributary_kafka_cleanups_pending', help: 'Deleted graphs whose Kafka topics and groups are still to be removed (retried with backoff)', registers });
  }

  /** Removes every series of a deleted graph (all nodes, actions and histogram buckets). */
  forget(graph: string): Promise<number> {
    return removeSeries(this.registry, { graph });
  }
}
