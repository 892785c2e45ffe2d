/**
 * Graph lifecycle in the control plane: deploy (validate, persist, swap the running graph without
 * losing or repeating a committed record), delete, status, and recovery of every deployed graph
 * when the platform starts.
 */
import type { SqliteLog } from '../connectors/embedded/sqlite-log.ts';
import { TributaryError } from '../runtime/errors.ts';
import { assertFunctionName } from '../runtime/function-registry.ts';
import type { FunctionService } from '../runtime/function-service.ts';
import { GraphRuntime, type IngestRecord } from './graph-runtime.ts';
import { validateGraph } from './graph-spec.ts';
import { GraphStore, type StoredGraph } from './graph-store.ts';
import { Topology } from './topology.ts';

export interface GraphServiceOptions {
  maxBatchRecords?: number;
  maxLagRecords?: number;
}

export class GraphService {
  private readonly runtimes = new Map<string, GraphRuntime>();
  private readonly store: GraphStore;
  private readonly log: SqliteLog;
  private readonly functions: FunctionService;
  private readonly options: GraphServiceOptions;
  /** Deploys and deletes of one graph run one at a time. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(store: GraphStore, log: SqliteLog, functions: FunctionService, options: GraphServiceOptions = {}) {
    this.store = store;
    this.log = log;
    this.functions = functions;
    this.options = options;
  }

  /** Restarts every deployed graph from its committed offsets. */
  start(): void {
    for (const graph of this.store.list()) this.launch(graph);
  }

  private launch(graph: StoredGraph): GraphRuntime {
    const runtime = new GraphRuntime(graph.name, graph.spec, {
      transport: this.log,
      process: (node, batch, tag) => this.functions.process(this.functions.registry.require(node.function), batch, tag),
      maxBatchRecords: this.options.maxBatchRecords,
      maxLagRecords: this.options.maxLagRecords,
    });
    this.runtimes.set(graph.name, runtime);
    runtime.start();
    return runtime;
  }

  private serialize<T>(name: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(name) ?? Promise.resolve();
    const next = previous.then(work, work);
    this.locks.set(name, next.catch(() => {}));
    return next;
  }

  /** Deploys or updates: the old runtime stops after committing its in-flight batches, the new one resumes from there. */
  deploy(name: string, input: unknown): Promise<StoredGraph> {
    assertFunctionName(name);
    const spec = validateGraph(input, (fn) => this.functions.registry.get(fn) !== null);
    return this.serialize(name, async () => {
      await this.runtimes.get(name)?.stop();
      this.runtimes.delete(name);
      const stored = this.store.put(name, spec);
      this.launch(stored);
      return stored;
    });
  }

  delete(name: string): Promise<void> {
    return this.serialize(name, async () => {
      if (!this.store.get(name)) throw new TributaryError('ERR_NOT_FOUND', `no graph named '${name}'`);
      await this.runtimes.get(name)?.stop();
      this.runtimes.delete(name);
      this.store.delete(name);
      this.log.deleteTopics(Topology.prefix(name));
      this.log.deleteState(Topology.prefix(name));
    });
  }

  runtime(name: string): GraphRuntime {
    const runtime = this.runtimes.get(name);
    if (!runtime) throw new TributaryError('ERR_NOT_FOUND', `no graph named '${name}'`);
    return runtime;
  }

  list(): StoredGraph[] {
    return this.store.list();
  }

  describe(name: string) {
    const stored = this.store.get(name);
    if (!stored) throw new TributaryError('ERR_NOT_FOUND', `no graph named '${name}'`);
    return { ...stored, status: this.runtime(name).status() };
  }

  ingest(name: string, source: string, records: IngestRecord[], idempotencyKey?: string) {
    return this.runtime(name).ingest(source, records, idempotencyKey);
  }

  async close(): Promise<void> {
    await Promise.all([...this.runtimes.values()].map((r) => r.stop()));
    this.runtimes.clear();
  }
}
