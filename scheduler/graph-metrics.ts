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
  /** 1 while the autoscaler can meet the graph's SLO, 0 when it says it is unreachable (status.slo.reason). */
  readonly sloReachable: Gauge<'graph'>;
  readonly sloPredicted: Gauge<'graph'>;
  readonly sloMeasured: Gauge<'graph'>;
  /** Cores (ready hosts) and isolate memory the last decision had, and the memory its replicas take. */
  readonly resourceCores: Gauge<'graph'>;
  readonly resourceMemory: Gauge<'graph' | 'kind'>;
  /** Measured cost of adding and of removing one replica (scheduler/autoscaler/scaling-cost.ts). */
  readonly scalingCost: Gauge<'graph' | 'node' | 'change'>;
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
    this.sloReachable = new Gauge({ name: 'tributary_graph_slo_reachable', help: '1 while the SLO is reachable on this machine, 0 when the autoscaler says it is not', labelNames: ['graph'], registers });
    this.sloPredicted = new Gauge({ name: 'tributary_graph_slo_predicted_seconds', help: 'Predicted end-to-end latency at the SLO percentile, along the critical path', labelNames: ['graph'], registers });
    this.sloMeasured = new Gauge({ name: 'tributary_graph_slo_measured_seconds', help: 'Measured end-to-end latency at the SLO percentile over the last two decision intervals', labelNames: ['graph'], registers });
    this.resourceCores = new Gauge({ name: 'tributary_autoscaler_cores', help: 'Cores (ready hosts) the autoscaler sized the graph for', labelNames: ['graph'], registers });
    this.resourceMemory = new Gauge({ name: 'tributary_autoscaler_memory_bytes', help: 'Isolate memory: budget of the ready hosts, and used by the graph replicas (memoryLimitMb each)', labelNames: ['graph', 'kind'], registers });
    this.scalingCost = new Gauge({ name: 'tributary_node_scaling_cost_seconds', help: 'Measured extra time of the first batch after adding (change=add) or removing (change=remove) a replica', labelNames: ['graph', 'node', 'change'], registers });
    this.kafkaCleanupsPending = new Gauge({ name: 'tributary_kafka_cleanups_pending', help: 'Deleted graphs whose Kafka topics and groups are still to be removed (retried with backoff)', registers });
  }

  /** Removes every series of a deleted graph (all nodes, actions and histogram buckets). */
  forget(graph: string): Promise<number> {
    return removeSeries(this.registry, { graph });
  }
}
