/**
 * The S3 sinks of running graphs: one S3SinkPublisher (connectors/s3/s3-sink.ts) per `"type":
 * "s3"` sink, started with its graph's runtime and stopped after it (so a redeploy's last batches
 * are in the sink log before the publisher hands over to the next one). Buckets must be among the
 * operator's user buckets (`serve --user-buckets`); the publishers use the platform's S3 settings.
 */
import { S3SinkPublisher, type S3SinkStatus } from '../connectors/s3/s3-sink.ts';
import type { S3Options } from '../connectors/s3/bucket.ts';
import { logScope } from '../connectors/s3/s3-state-store.ts';
import type { Transport } from '../connectors/transport.ts';
import { TributaryError } from '../runtime/errors.ts';
import type { GraphSpec, S3SinkSpec } from './graph-spec.ts';
import type { Topology } from './topology.ts';

export interface S3SinksOptions {
  s3: Omit<S3Options, 'bucket'>;
  /** Why a sink may not write `bucket`, or null (runtime/bucket-calls.ts BucketCalls.refused). */
  refused(bucket: string): string | null;
}

export class S3Sinks {
  private readonly options: S3SinksOptions | undefined;
  private readonly transport: Transport;
  private readonly running = new Map<string, Map<string, S3SinkPublisher>>();

  constructor(transport: Transport, options: S3SinksOptions | undefined) {
    this.transport = transport;
    this.options = options;
  }

  /** ERR_GRAPH_INVALID naming each S3 sink whose bucket this platform does not allow. */
  check(spec: GraphSpec): void {
    const problems: Array<{ path: string; message: string; code: 'ERR_GRAPH_INVALID' }> = [];
    spec.sinks.forEach((sink, i) => {
      if (sink.type !== 's3') return;
      const refused = this.options ? this.options.refused(sink.bucket) : 'no user buckets are configured on this platform (serve --user-buckets)';
      if (refused !== null) problems.push({ path: `$.sinks[${i}].bucket`, message: refused, code: 'ERR_GRAPH_INVALID' });
    });
    if (problems.length > 0) {
      throw new TributaryError('ERR_GRAPH_INVALID', `invalid graph (${problems.length} problem${problems.length > 1 ? 's' : ''}): ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, { details: { problems } });
    }
  }

  start(graph: string, spec: GraphSpec, topology: Topology, incarnation: string | null): void {
    const sinks = spec.sinks.filter((s): s is S3SinkSpec => s.type === 's3');
    if (sinks.length === 0 || !this.options) return;
    const publishers = new Map<string, S3SinkPublisher>();
    // One stream per embedded log and incarnation of the name: a re-created graph's sink log restarts at offset 0.
    const stream = `${logScope(this.transport)}.${incarnation || 'v0'}`;
    let failing = false;
    for (const sink of sinks) {
      const publisher = new S3SinkPublisher({
        config: sink,
        s3: this.options.s3,
        transport: this.transport,
        topic: topology.sinkTopic(sink.id),
        stream,
        onError: (error) => {
          // One line per outage, not per retry; the sink's status has the latest error.
          if (!failing) console.error(`tributary: graph.s3-sink (graph=${graph}, sink=${sink.id}) failed, retrying: ${error.code}: ${error.message}`);
          failing = true;
        },
        onPublished: () => {
          failing = false;
        },
      });
      publishers.set(sink.id, publisher);
      publisher.start();
    }
    this.running.set(graph, publishers);
  }

  async stop(graph: string): Promise<void> {
    const publishers = this.running.get(graph);
    this.running.delete(graph);
    await Promise.all([...(publishers?.values() ?? [])].map((p) => p.stop()));
  }

  status(graph: string): Record<string, S3SinkStatus> {
    const out: Record<string, S3SinkStatus> = {};
    for (const [id, publisher] of this.running.get(graph) ?? []) out[id] = publisher.status();
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.running.keys()].map((graph) => this.stop(graph)));
  }
}
