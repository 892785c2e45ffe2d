/**
 * A seek (scheduler/source-seek.ts) of Kafka edges: positions from the brokers and the commit
 * ledger, the groups' offsets set through the brokers while the graph is paused, then the ledger
 * rewound and the reset nodes' state deleted in one ledger transaction.
 */
import type { Broker } from '../../connectors/broker.ts';
import type { KafkaCommitLedger } from '../../connectors/kafka/kafka-commit-ledger.ts';
import type { EdgeSpec } from '../graph-spec.ts';
import { checkRanges, seekResult, targetOf, type PartitionSeek, type SeekPlan, type SeekResult } from '../source-seek.ts';
import type { Topology } from '../topology.ts';
import { edgeBrokers, kafkaGroupOf } from './kafka-topics.ts';

export interface KafkaSeekOptions {
  broker(brokers: string[] | undefined): Broker;
  ledger: KafkaCommitLedger;
}

/**
 * The seek on Kafka edges: offsets per partition from the brokers (the group's committed offset,
 * raised to what the ledger applied: where `open` would resume), checked against the low and
 * high watermarks; with `apply`, the groups' offsets set (the graph halted: the groups are
 * empty), then the ledger rewound and the reset nodes' state deleted in one transaction.
 */
export async function seekKafka(options: KafkaSeekOptions, topology: Topology, plan: SeekPlan, apply: boolean): Promise<SeekResult> {
  const { spec, graph } = topology;
  const partitionsOf = new Map<string, number>();
  const positions = async (edge: EdgeSpec, topic: string, broker: Broker) => {
    const [committed, low, high] = await Promise.all([broker.committed(kafkaGroupOf(graph, spec, edge), topic), broker.lowWatermarks(topic), broker.highWatermarks(topic)]);
    const namespace = topology.stateNamespace(edge.to);
    return Promise.all(
      high.map(async (head, p) => {
        const resumed = Math.max(committed[p] ?? -1, await options.ledger.applied(namespace, p, topic));
        return { partition: p, from: resumed >= 0 ? resumed : (low[p] ?? 0), earliest: low[p] ?? 0, head };
      }),
    );
  };
  const edges = await Promise.all(
    plan.edges.map(async (edge) => {
      const topic = topology.topicOf(edge);
      const broker = options.broker(edgeBrokers(spec, edge));
      const at = plan.request.target.kind === 'timestamp' ? await broker.offsetsAtTime(topic, plan.request.target.at) : [];
      const current = await positions(edge, topic, broker);
      partitionsOf.set(topic, current.length);
      const partitions: PartitionSeek[] = [];
      for (const position of current) {
        // A time before the first record kept finds the first record kept (ListOffsets answers so).
        const to = targetOf(plan.request.target, position.partition, () => Math.max(at[position.partition] ?? position.head, position.earliest));
        if (to !== null) partitions.push({ ...position, to });
      }
      return { node: edge.to, topic, transport: 'kafka' as const, partitions, group: kafkaGroupOf(graph, spec, edge), broker };
    }),
  );
  checkRanges(plan, edges, partitionsOf);
  const skipped = await Promise.all(
    plan.skipEdges.map(async (edge) => {
      const topic = topology.topicOf(edge);
      const broker = options.broker(edgeBrokers(spec, edge));
      const partitions = (await positions(edge, topic, broker)).map((p) => ({ partition: p.partition, from: p.from, to: p.head }));
      return { from: edge.from, to: edge.to, topic, group: kafkaGroupOf(graph, spec, edge), broker, partitions };
    }),
  );
  if (apply) {
    for (const edge of [...edges, ...skipped]) {
      if (edge.partitions.length > 0) await edge.broker.setCommitted(edge.group, edge.topic, edge.partitions.map((p) => ({ partition: p.partition, offset: p.to })));
    }
    const rewound = [...edges.map((e) => ({ ns: topology.stateNamespace(e.node), topic: e.topic, partitions: e.partitions.map((p) => p.partition) })), ...skipped.map((s) => ({ ns: topology.stateNamespace(s.to), topic: s.topic, partitions: s.partitions.map((p) => p.partition) }))];
    options.ledger.rewind(rewound, plan.resetNodes.map((node) => topology.stateNamespace(node)));
  }
  const sinks: SeekResult['sinks'] = {};
  for (const sink of spec.sinks.filter((s) => s.type === 'kafka')) {
    const into = spec.edges.find((e) => e.to === sink.id)!;
    sinks[sink.id] = { heads: await options.broker(edgeBrokers(spec, into)).highWatermarks(topology.topicOf(into)) };
  }
  return seekResult(
    plan,
    edges.map(({ node, topic, transport, partitions }) => ({ node, topic, transport, partitions })),
    skipped,
    sinks,
  );
}
