/**
 * A randomized fault schedule against the public surface only: one `tributary serve` process (the
 * CLI), its HTTP API and, on Kafka, the broker itself. A seeded PRNG (mulberry32) decides every
 * fault instant and choice, so a run is replayable: `seed=N` is printed first, with the command
 * that replays it.
 *
 * Per transport (embedded log, Kafka) the process runs four graphs, each `source → count → sink`
 * where `count` keeps a per-key count in env.STATE and emits `{key, count, id, v}`:
 *
 *   amo    at-most-once                       replicas {1,1}
 *   alo    at-least-once                      replicas {1,2}
 *   eo     exactly-once                       replicas {1,2}
 *   multi  exactly-once, two sources (left, right) into one stateful node
 *
 * Records with unique ids are fed continuously (embedded: POST with an Idempotency-Key, retried
 * with the same key until accepted; Kafka: the fixtures' idempotent producer). Each trial waits a
 * PRNG-chosen 50-1500 ms (on Kafka, from when the restarted process owns its partitions again,
 * except for the PRNG's "early" kills, which land during the group rebalance), possibly applies a
 * live update at a PRNG-chosen instant within that wait (replica range change, graph redeploy,
 * function re-upload), then kill -9s the server and restarts it on the same data directory.
 *
 * Then feeding stops, every graph drains (input lag 0, sink stable), one probe record per key
 * reads the final state (its emitted count must be the key's inputs + 1), and the oracle checks
 * every sink — on Kafka with kcat (read_committed), an independent client, which also reads the
 * input topics back for the expected multiset:
 *
 *   exactly-once   every input id exactly once; each key's counts are exactly 1..n; probe = n+1
 *   at-least-once  every input id at least once; probe ≥ n+1 (no state update lost)
 *   at-most-once   no id more than once; probe ≤ n+1 (no state update repeated)
 *   all            no id that was never input; nothing dead-lettered
 *
 * Exit code 1 on any violation, 2 when the harness itself failed (a bounded wait ran out).
 *
 * @example
 * npm run chaos -- --transport embedded --trials 5 --seed 42
 */
import { rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { SERVICE_DEFAULTS, SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { BROKERS, createTopic, inputProducer, readCommitted, type ReadRecord } from '../test/fixtures/kafka.ts';
import { tempDir } from '../test/fixtures/platform.ts';
import { TEST_CREDENTIALS, createBucket } from '../test/fixtures/s3.ts';
import { ServerProcess, isHost } from '../test/fixtures/server-process.ts';
import { printJson, printTable } from './report.ts';

type Transport = 'embedded' | 'kafka';
type Delivery = 'at-most-once' | 'at-least-once' | 'exactly-once';
type StateStore = 'embedded' | 's3';

const USAGE = `npm run chaos -- [--seed N] [--trials N] [--transport embedded|kafka|both] [--state embedded|s3] [--rate N]
  --seed       PRNG seed (default: random); replays the same fault schedule and inputs
  --trials     kill -9 trials per transport (default 100)
  --transport  which edge transport to run (default both, embedded first)
  --state      where env.STATE lives, on either transport (default embedded)
  --rate       records/s fed per source (default 40 embedded, 15 Kafka)`;

const KEYS = Array.from({ length: 16 }, (_, i) => `k${i.toString(16)}`);
const FEED_TICK_MS = 100;
/** Chunks a source queues while its server is down or slow (10 s of feed), and POSTs it has in flight. */
const FEED_QUEUE_CHUNKS = 100;
const FEED_POSTS_IN_FLIGHT = 4;
const TRIAL_DELAY_MS = { min: 50, max: 1500 };
const SERVER_START_TIMEOUT_MS = 60_000;
const REQUEST_TIMEOUT_MS = 10_000;
/** An ingest chunk still not accepted after this long means the platform is wedged: the run stops. */
const INGEST_GIVE_UP_MS = 180_000;
/** On Kafka, a restarted process owns its partitions once the dead member's session (6 s) has expired. */
const KAFKA_SETTLE_TIMEOUT_MS = 60_000;
const DRAIN_TIMEOUT_MS = 300_000;
const PROBE_TIMEOUT_MS = 120_000;
const SINK_STABLE_POLLS = 3;
const REPLICA_CHOICES = [{ min: 1, max: 1 }, { min: 1, max: 2 }, { min: 2, max: 2 }];
const COMMIT_INTERVAL_CHOICES = [20, 50, 100, 200];

// ---- the seeded PRNG -----------------------------------------------------------------------------

/** mulberry32: 32 bits of state, good enough to drive a schedule, and trivially replayable. */
class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniform float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}

/**
 * An independent stream per purpose (faults, setup, each source's feed): feeders run concurrently
 * with the trials, so sharing one stream would make the schedule depend on their interleaving.
 */
function stream(seed: number, label: string): Rng {
  let h = seed >>> 0;
  for (const c of label) h = Math.imul(h ^ c.charCodeAt(0), 0x9e3779b1) >>> 0;
  return new Rng(h ^ (h >>> 16));
}

// ---- options -------------------------------------------------------------------------------------

interface Options {
  seed: number;
  trials: number;
  transports: Transport[];
  state: StateStore;
  rate: number | undefined;
}

class UsageError extends Error {}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      seed: { type: 'string' },
      trials: { type: 'string' },
      transport: { type: 'string', default: 'both' },
      state: { type: 'string', default: 'embedded' },
      rate: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const integer = (flag: string, raw: string | undefined, min: number, max: number): number | undefined => {
    if (raw === undefined) return undefined;
    const value = /^(0|[1-9][0-9]*)$/.test(raw) ? Number(raw) : NaN;
    if (!(value >= min && value <= max)) throw new UsageError(`--${flag} must be an integer in [${min}, ${max}], got '${raw}'`);
    return value;
  };
  const transport = values.transport!;
  if (transport !== 'embedded' && transport !== 'kafka' && transport !== 'both') throw new UsageError(`--transport must be embedded, kafka or both, got '${transport}'`);
  const state = values.state!;
  if (state !== 'embedded' && state !== 's3') throw new UsageError(`--state must be embedded or s3, got '${state}'`);
  return {
    seed: integer('seed', values.seed, 0, 2 ** 32 - 1) ?? randomBytes(4).readUInt32BE(0),
    trials: integer('trials', values.trials, 0, 100_000) ?? 100,
    transports: transport === 'both' ? ['embedded', 'kafka'] : [transport],
    state,
    rate: integer('rate', values.rate, 1, 10_000),
  };
}

function replayCommand(o: Options): string {
  const transport = o.transports.length === 2 ? 'both' : o.transports[0];
  return `npm run chaos -- --seed ${o.seed} --trials ${o.trials} --transport ${transport}${o.state === 's3' ? ' --state s3' : ''}${o.rate ? ` --rate ${o.rate}` : ''}`;
}

// ---- cleanup -------------------------------------------------------------------------------------

const liveServers = new Set<ServerProcess>();
const tempDirs = new Set<string>();
const closers = new Set<() => Promise<void>>();
/** Set once cleanup began: no server is (re)started after it, so none outlives the runner. */
let shuttingDown = false;

/** Host processes of killed control planes and when they were killed, to reap if they outlive them (see {@link reapOrphans}). */
const killedHosts = new Map<number, number>();
/** A host normally exits within a second or two of its control plane's kill -9; one alive after this is an orphan. */
const ORPHAN_AFTER_MS = 5000;

/** Kills what this runner started: its server (SIGKILL, synchronously, so it works from 'exit'), its temp dirs. */
function cleanupNow(): void {
  shuttingDown = true;
  for (const server of liveServers) server['child']?.kill('SIGKILL');
  reapOrphans(0);
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

async function cleanup(): Promise<void> {
  shuttingDown = true;
  for (const close of closers) await close().catch(() => {});
  closers.clear();
  for (const server of liveServers) await server.kill9().catch(() => {});
  cleanupNow();
}

// ---- the graphs ----------------------------------------------------------------------------------

interface GraphPlan {
  id: 'amo' | 'alo' | 'eo' | 'multi';
  delivery: Delivery;
  /** The graph's name on the platform (unique per run on Kafka: topics and groups outlive graphs). */
  name: string;
  sources: string[];
  fn: string;
  fnVersion: number;
  replicas: { min: number; max: number };
  commitIntervalMs: number;
  /** What each source was fed (embedded: accepted chunks; Kafka: sent, checked against the topic). */
  fed: Array<{ id: string; key: string }>;
}

function plans(transport: Transport, run: string, rng: Rng): GraphPlan[] {
  const base = [
    { id: 'amo', delivery: 'at-most-once', sources: ['in'], replicas: { min: 1, max: 1 } },
    { id: 'alo', delivery: 'at-least-once', sources: ['in'], replicas: { min: 1, max: 2 } },
    { id: 'eo', delivery: 'exactly-once', sources: ['in'], replicas: { min: 1, max: 2 } },
    { id: 'multi', delivery: 'exactly-once', sources: ['left', 'right'], replicas: { min: 1, max: 2 } },
  ] as const;
  return base.map((b) => {
    const name = transport === 'kafka' ? `chaos-${run}-${b.id}` : `chaos-${b.id}`;
    return { ...b, sources: [...b.sources], replicas: { ...b.replicas }, name, fn: `${name}-count`, fnVersion: 1, commitIntervalMs: rng.pick(COMMIT_INTERVAL_CHOICES), fed: [] };
  });
}

const topicOf = (plan: GraphPlan, source: string) => `${plan.name}-${source}`;
const sinkTopicOf = (plan: GraphPlan) => `${plan.name}-out`;

/** The stateful counter; `version` only makes a re-upload a new version (same behaviour). */
function counterSource(version: number): string {
  return `// chaos counter, version ${version}
const VERSION = ${version};
export default {
  async process(record, env, ctx) {
    const key = String(record.key);
    const stored = await env.STATE.get(key);
    const count = (stored === null ? 0 : Number(await stored.text())) + 1;
    await env.STATE.put(key, String(count));
    ctx.emit({ key, count, id: String(record.value), v: VERSION }, { key });
  },
};
`;
}

function graphSpec(transport: Transport, plan: GraphPlan): unknown {
  const kafka = transport === 'kafka';
  const interval = kafka && plan.delivery !== 'at-most-once' ? { commitIntervalMs: plan.commitIntervalMs } : {};
  return {
    nodes: [{ id: 'count', function: plan.fn, replicas: plan.replicas }],
    sources: plan.sources.map((id) => (kafka ? { id, type: 'kafka', topic: topicOf(plan, id) } : { id, type: 'http' })),
    sinks: [kafka ? { id: 'out', type: 'kafka', topic: sinkTopicOf(plan) } : { id: 'out', type: 'log' }],
    edges: [
      // Kafka sources are partitioned by the producer (by key, the default partitioner).
      ...plan.sources.map((from) => ({ from, to: 'count', delivery: plan.delivery, ...(kafka ? interval : { partitionBy: 'key', partitions: 4 }) })),
      { from: 'count', to: 'out', delivery: plan.delivery },
    ],
    slo: { latencyMs: 50, percentile: 99 },
  };
}

// ---- the HTTP API --------------------------------------------------------------------------------

/** One request with a deadline; null when the server is down or did not answer (the caller retries). */
async function request(server: ServerProcess, path: string, init: RequestInit = {}, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Response | null> {
  try {
    return await fetch(`${server.url}${path}`, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch {
    return null;
  }
}

async function describe(server: ServerProcess, response: Response | null): Promise<string> {
  if (!response) return 'no answer';
  return `${response.status} ${(await response.text().catch(() => '')).slice(0, 300)}`;
}

const putFunction = (server: ServerProcess, plan: GraphPlan) =>
  request(server, `/v1/functions/${plan.fn}`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: counterSource(plan.fnVersion) });

const putGraph = (server: ServerProcess, transport: Transport, plan: GraphPlan) =>
  request(server, `/v1/graphs/${plan.name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(graphSpec(transport, plan)) }, 30_000);

interface EdgeStatus {
  from: string;
  to: string;
  lag: number;
  state?: string;
  reason?: string;
  partitions: Array<{ partition: number; head: number; committed: number; owned?: boolean }>;
}
interface GraphStatus {
  edges: EdgeStatus[];
  nodes: Record<string, { processed: number; replicas: number; lastError: unknown; deadLetters: number }>;
}

async function status(server: ServerProcess, plan: GraphPlan): Promise<GraphStatus | null> {
  const res = await request(server, `/v1/graphs/${plan.name}`);
  if (!res?.ok) return null;
  return ((await res.json()) as { status: GraphStatus }).status;
}

/** The edges the counting node consumes (sink edges have no consumer). */
const inputEdges = (s: GraphStatus) => s.edges.filter((e) => e.to === 'count');

function briefStatus(s: GraphStatus | null): string {
  if (!s) return 'no status';
  const edges = inputEdges(s).map((e) => `${e.from}→${e.to} ${e.state ?? ''} lag ${e.lag}${e.reason ? ` (${e.reason})` : ''} [${e.partitions.map((p) => `${p.committed}/${p.head}${p.owned ? '*' : ''}`).join(' ')}]`);
  const n = s.nodes.count;
  return `${edges.join('; ')}; count: processed ${n?.processed} replicas ${n?.replicas} lastError ${JSON.stringify(n?.lastError ?? null)}`;
}

async function waitUntil<T>(what: string, timeoutMs: number, check: () => Promise<T | null | undefined | false>, detail: () => Promise<string> = async () => '', pollMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new HarnessError(`timed out after ${timeoutMs / 1000} s waiting for ${what}${await detail().then((d) => (d ? `: ${d}` : ''))}`);
    await sleep(pollMs);
  }
}

class HarnessError extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- a run over one transport --------------------------------------------------------------------

interface Outcome {
  transport: Transport;
  graph: string;
  delivery: Delivery;
  trials: number;
  in: number;
  out: number;
  duplicates: number;
  missing: number;
  phantoms: number;
  badCountKeys: number;
  badStateKeys: number;
  deadLetters: number;
  violations: number;
  details: string[];
}

interface RunContext {
  transport: Transport;
  options: Options;
  server: ServerProcess;
  plans: GraphPlan[];
  log: (line: string) => void;
  /** A feeder that gave up (its bounded wait ran out): the trials stop at the next one. */
  feedError: Error | null;
  /** Ingest answers by status ("202 duplicate": a retry the Idempotency-Key deduplicated), and the time spent in accepted POSTs. */
  ingest: { answers: Record<string, number>; acceptedMs: number };
}

async function runTransport(transport: Transport, options: Options): Promise<{ outcomes: Outcome[]; durationS: number; faults: Record<string, number> }> {
  const started = Date.now();
  const log = (line: string) => console.log(`[${transport} ${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`);
  const run = randomBytes(3).toString('hex');
  const graphs = plans(transport, run, stream(options.seed, `${transport}/setup`));
  const dataDir = tempDir('tributary-chaos-');
  tempDirs.add(dataDir);

  const args = ['--hosts', '1'];
  if (transport === 'kafka') {
    await ensureService('kafka');
    args.push('--kafka-brokers', BROKERS.join(','));
    for (const plan of graphs) for (const source of plan.sources) await createTopic(topicOf(plan, source), 4);
  }
  if (options.state === 's3') {
    await ensureService('s3');
    const bucket = await createBucket(SERVICE_DEFAULTS.s3.endpoint, 'trib-chaos');
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey, AWS_REGION: bucket.region });
    args.push('--s3-endpoint', bucket.endpoint, '--s3-bucket', bucket.bucket);
  }

  const server = new ServerProcess(dataDir, args);
  liveServers.add(server);
  await startServer(server);
  const ctx: RunContext = { transport, options, server, plans: graphs, log, feedError: null, ingest: { answers: {}, acceptedMs: 0 } };
  await deploy(ctx);
  log(`deployed ${graphs.map((p) => `${p.name} (${p.delivery}${transport === 'kafka' && p.delivery !== 'at-most-once' ? `, commit ${p.commitIntervalMs} ms` : ''})`).join(', ')}`);
  if (transport === 'kafka') await kafkaSettled(ctx);

  const feeding = startFeeding(ctx);
  const monitoring = monitor(ctx);
  const faults = await trials(ctx).finally(() => monitoring.stop());
  await feeding.stop();
  log(`feeding stopped: ${graphs.map((p) => `${p.id} ${p.fed.length}`).join(', ')} records fed`);
  if (transport === 'embedded') {
    const { answers, acceptedMs } = ctx.ingest;
    const accepted = (answers['202'] ?? 0) + (answers['202 duplicate'] ?? 0);
    log(`ingest answers: ${Object.entries(answers).map(([k, v]) => `${k} ×${v}`).join(', ')}; accepted POSTs took ${accepted ? Math.round(acceptedMs / accepted) : 0} ms on average`);
  }

  const outcomes = await verify(ctx, faults.trials);
  await server.stop();
  liveServers.delete(server);
  rmSync(dataDir, { recursive: true, force: true });
  tempDirs.delete(dataDir);
  return { outcomes, durationS: Math.round((Date.now() - started) / 1000), faults: faults.counts };
}

/**
 * A host must exit when its control plane dies (its channel closes). Those of control planes
 * killed at least `afterMs` ago still alive are orphans: SIGKILLed here, and returned so the run
 * reports them.
 */
function reapOrphans(afterMs = ORPHAN_AFTER_MS): number[] {
  const orphans: number[] = [];
  for (const [pid, killedAt] of killedHosts) {
    if (Date.now() - killedAt < afterMs) continue;
    killedHosts.delete(pid);
    if (!isHost(pid)) continue;
    orphans.push(pid);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  return orphans;
}

/** kill -9 of the control plane, remembering its hosts (which must follow it). */
async function crash(server: ServerProcess): Promise<void> {
  for (const pid of server.hostPids()) killedHosts.set(pid, Date.now());
  await server.kill9();
}

/** A server that exited without our kill -9 crashed on its own: that is a finding, not a fault of ours. */
function assertRunning(server: ServerProcess): void {
  if (!server.running) throw new HarnessError(`tributary serve exited on its own (not killed by the runner); its last output:\n${server.output.slice(-4000)}`);
}

async function startServer(server: ServerProcess): Promise<void> {
  if (shuttingDown) throw new HarnessError('shutting down');
  try {
    await server.start(SERVER_START_TIMEOUT_MS);
  } catch (error) {
    throw new HarnessError(`tributary serve did not come back on ${server.dataDir}: ${(error as Error).message.slice(-4000)}`);
  }
}

async function deploy(ctx: RunContext): Promise<void> {
  const { server, transport } = ctx;
  for (const plan of ctx.plans) {
    const fn = await putFunction(server, plan);
    if (fn?.status !== 201) throw new HarnessError(`uploading ${plan.fn}: ${await describe(server, fn)}`);
    const graph = await putGraph(server, transport, plan);
    if (graph?.status === 201) continue;
    // Kafka: stored, but the broker did not answer in time; its edges retry on their own.
    const text = await describe(server, graph);
    if (transport === 'kafka' && graph?.status === 503 && /deployed|ERR_KAFKA_UNAVAILABLE/.test(text)) continue;
    throw new HarnessError(`deploying graph ${plan.name}: ${text}`);
  }
}

/** Kafka: every input partition of every graph owned by the (one) process, i.e. the rebalance is over. */
async function kafkaSettled(ctx: RunContext): Promise<boolean> {
  try {
    await waitUntil(
      'the Kafka consumer groups to assign every input partition to the restarted process',
      KAFKA_SETTLE_TIMEOUT_MS,
      async () => {
        for (const plan of ctx.plans) {
          const s = await status(ctx.server, plan);
          if (!s) return false;
          for (const edge of inputEdges(s)) if (edge.state !== 'running' || edge.partitions.length === 0 || !edge.partitions.every((p) => p.owned)) return false;
        }
        return true;
      },
      async () => (await Promise.all(ctx.plans.map(async (p) => `${p.id}: ${briefStatus(await status(ctx.server, p))}`))).join(' | '),
    );
    return true;
  } catch (error) {
    ctx.log(`warning: ${(error as Error).message}`);
    return false;
  }
}

/**
 * Logs what the counting nodes report as it changes (replica count, lastError), polled twice a
 * second: the context a violation needs (which graph had two replicas when, which batches failed).
 */
function monitor(ctx: RunContext): { stop(): Promise<void> } {
  const flag = { stopped: false };
  const last = new Map<GraphPlan, { replicas?: number; error?: string }>();
  const done = (async () => {
    while (!flag.stopped) {
      for (const plan of ctx.plans) {
        const node = (await status(ctx.server, plan))?.nodes.count;
        if (!node) continue;
        const seen = last.get(plan) ?? {};
        const error = node.lastError ? JSON.stringify(node.lastError).slice(0, 300) : undefined;
        if (seen.replicas !== undefined && seen.replicas !== node.replicas) ctx.log(`${plan.id}: replicas ${seen.replicas} → ${node.replicas}`);
        if (error && error !== seen.error) ctx.log(`${plan.id}: lastError ${error}`);
        last.set(plan, { replicas: node.replicas, error });
      }
      await sleep(500);
    }
  })();
  return {
    async stop() {
      flag.stopped = true;
      await done;
    },
  };
}

// ---- feeding -------------------------------------------------------------------------------------

function chunkSize(rng: Rng, ratePerS: number): number {
  const mean = Math.max(1, (ratePerS * FEED_TICK_MS) / 1000);
  return 1 + Math.floor(rng.next() * (2 * mean - 1));
}

function startFeeding(ctx: RunContext): { stop(): Promise<void> } {
  const flag = { stopped: false };
  const rate = ctx.options.rate ?? (ctx.transport === 'kafka' ? 15 : 40);
  const feeders = ctx.transport === 'kafka' ? [feedKafka(ctx, rate, flag)] : ctx.plans.flatMap((plan) => plan.sources.map((source) => feedHttp(ctx, plan, source, rate, flag)));
  const done = Promise.all(
    feeders.map((f) =>
      f.catch((error: Error) => {
        ctx.feedError ??= error;
        flag.stopped = true;
      }),
    ),
  );
  return {
    async stop() {
      flag.stopped = true;
      await done;
      if (ctx.feedError) throw ctx.feedError;
    },
  };
}

/**
 * Feeds one HTTP source at `rate` whether the server is up or not: chunks generated while it is
 * down queue up (at most FEED_QUEUE_CHUNKS, then generation waits) and are sent as soon as it is
 * back, FEED_POSTS_IN_FLIGHT at a time, so every restart starts with a backlog and kills land
 * mid-batch and mid-ingest. Each chunk is retried under its own Idempotency-Key until accepted.
 */
async function feedHttp(ctx: RunContext, plan: GraphPlan, source: string, rate: number, flag: { stopped: boolean }): Promise<void> {
  const rng = stream(ctx.options.seed, `${ctx.transport}/feed/${plan.id}/${source}`);
  const queue: Array<{ idempotencyKey: string; records: Array<{ key: string; id: string }> }> = [];
  const generating = (async () => {
    for (let chunk = 0, seq = 0; !flag.stopped; chunk++) {
      while (queue.length >= FEED_QUEUE_CHUNKS && !flag.stopped) await sleep(FEED_TICK_MS);
      queue.push({ idempotencyKey: `${plan.id}-${source}-${chunk}`, records: Array.from({ length: chunkSize(rng, rate) }, () => ({ key: rng.pick(KEYS), id: `${plan.id}.${source}.${seq++}` })) });
      await sleep(FEED_TICK_MS);
    }
  })();
  const sender = async () => {
    while (!flag.stopped || queue.length > 0) {
      const next = queue.shift();
      if (!next) {
        await sleep(20);
        continue;
      }
      await ingestHttp(ctx, plan, source, next.idempotencyKey, next.records);
      plan.fed.push(...next.records);
    }
  };
  await Promise.all([generating, ...Array.from({ length: FEED_POSTS_IN_FLIGHT }, sender)]);
}

async function ingestHttp(ctx: RunContext, plan: GraphPlan, source: string, idempotencyKey: string, records: Array<{ key: string; id: string }>): Promise<void> {
  const body = JSON.stringify(records.map((r) => ({ key: r.key, value: r.id })));
  const deadline = Date.now() + INGEST_GIVE_UP_MS;
  const tally = (answer: string) => (ctx.ingest.answers[answer] = (ctx.ingest.answers[answer] ?? 0) + 1);
  for (;;) {
    const sentAt = Date.now();
    const res = await request(ctx.server, `/v1/graphs/${plan.name}/sources/${source}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
      body,
    });
    if (res?.status === 202) {
      const { duplicate } = (await res.json().catch(() => ({}))) as { duplicate?: boolean };
      tally(duplicate ? '202 duplicate' : '202');
      ctx.ingest.acceptedMs += Date.now() - sentAt;
      return;
    }
    const text = await describe(ctx.server, res);
    tally(res ? String(res.status) : 'no answer');
    if (Date.now() > deadline) throw new HarnessError(`ingest into ${plan.name}/${source} (Idempotency-Key ${idempotencyKey}) not accepted for ${INGEST_GIVE_UP_MS / 1000} s; last answer: ${text}`);
    const retryAfterS = Number(res?.headers.get('retry-after') ?? 0);
    await sleep(res?.status === 429 ? Math.min(5000, Math.max(100, retryAfterS * 1000)) : 50);
  }
}

/** One idempotent producer for every Kafka source (kafkajs retries inside a send without duplicating). */
async function feedKafka(ctx: RunContext, rate: number, flag: { stopped: boolean }): Promise<void> {
  const producer = await inputProducer(BROKERS);
  const close = () => producer.close();
  closers.add(close);
  const feeds = ctx.plans.flatMap((plan) => plan.sources.map((source) => ({ plan, source, seq: 0, rng: stream(ctx.options.seed, `${ctx.transport}/feed/${plan.id}/${source}`) })));
  try {
    while (!flag.stopped) {
      for (const feed of feeds) {
        const records = Array.from({ length: chunkSize(feed.rng, rate) }, () => ({ key: feed.rng.pick(KEYS), id: `${feed.plan.id}.${feed.source}.${feed.seq++}` }));
        await produce(ctx, producer, topicOf(feed.plan, feed.source), records);
        feed.plan.fed.push(...records);
      }
      await sleep(FEED_TICK_MS);
    }
  } finally {
    closers.delete(close);
    await producer.close().catch(() => {});
  }
}

async function produce(ctx: RunContext, producer: Awaited<ReturnType<typeof inputProducer>>, topic: string, records: Array<{ key: string; id: string }>): Promise<void> {
  const deadline = Date.now() + INGEST_GIVE_UP_MS;
  for (;;) {
    try {
      await producer.send(topic, records.map((r) => ({ key: r.key, value: r.id })));
      return;
    } catch (error) {
      // A resend may duplicate input: the oracle reads the input topics back, so it expects what is there.
      ctx.log(`warning: producing to ${topic} failed (${(error as Error).message}); resending`);
      if (Date.now() > deadline) throw new HarnessError(`producing to ${topic} failed for ${INGEST_GIVE_UP_MS / 1000} s: ${(error as Error).message}`);
      await sleep(500);
    }
  }
}

// ---- the fault schedule --------------------------------------------------------------------------

type LiveUpdate = 'replicas' | 'redeploy' | 'reupload';

async function trials(ctx: RunContext): Promise<{ trials: number; counts: Record<string, number> }> {
  const rng = stream(ctx.options.seed, `${ctx.transport}/faults`);
  const counts: Record<string, number> = { kill9: 0, replicas: 0, redeploy: 0, reupload: 0, early: 0, interrupted: 0, orphanedHosts: 0 };
  for (let trial = 1; trial <= ctx.options.trials; trial++) {
    if (ctx.feedError) throw ctx.feedError;
    // Every choice of the trial is drawn up front, in a fixed order: the schedule is the seed's alone.
    const early = ctx.transport === 'kafka' && rng.chance(0.15);
    const delayMs = rng.int(TRIAL_DELAY_MS.min, TRIAL_DELAY_MS.max);
    const roll = rng.next();
    const update: LiveUpdate | null = roll < 0.15 ? 'replicas' : roll < 0.3 ? 'redeploy' : roll < 0.45 ? 'reupload' : null;
    const target = rng.pick(ctx.plans);
    const updateAtMs = rng.int(0, delayMs);
    const replicas = rng.pick(REPLICA_CHOICES);

    if (ctx.transport === 'kafka' && !early && trial > 1) await kafkaSettled(ctx);
    const updating = update ? sleep(updateAtMs).then(() => liveUpdate(ctx, update, target, replicas)) : Promise.resolve('');
    await sleep(delayMs);
    assertRunning(ctx.server);
    await crash(ctx.server);
    counts.kill9++;
    const what = await updating;
    if (update) counts[update]++;
    if (early) counts.early++;
    if (what.includes('no answer')) counts.interrupted++;
    const restarting = Date.now();
    await startServer(ctx.server);
    reportOrphans(ctx, counts);
    ctx.log(`trial ${trial}/${ctx.options.trials}: kill -9 after ${delayMs} ms, up again in ${Date.now() - restarting} ms${early ? ' (early: during the rebalance)' : ''}${update ? `; ${update} ${target.id} at ${updateAtMs} ms → ${what}` : ''}`);
  }
  if (ctx.transport === 'kafka') await kafkaSettled(ctx);
  await sleep(Math.max(0, ORPHAN_AFTER_MS - 1000)); // then the last kill's hosts are checked too
  reportOrphans(ctx, counts);
  return { trials: ctx.options.trials, counts };
}

function reportOrphans(ctx: RunContext, counts: Record<string, number>): void {
  const orphans = reapOrphans();
  if (orphans.length === 0) return;
  counts.orphanedHosts += orphans.length;
  ctx.log(`warning: host process ${orphans.join(', ')} still alive ${ORPHAN_AFTER_MS / 1000} s after the kill -9 of its control plane (reaped)`);
}

/** A live update in flight when (or before) the kill lands; answers what the server said. */
async function liveUpdate(ctx: RunContext, update: LiveUpdate, plan: GraphPlan, replicas: { min: number; max: number }): Promise<string> {
  if (update === 'reupload') {
    plan.fnVersion++;
    return `v${plan.fnVersion} ${await answerOf(await putFunction(ctx.server, plan))}`;
  }
  if (update === 'replicas') plan.replicas = { ...replicas };
  const answer = await answerOf(await putGraph(ctx.server, ctx.transport, plan));
  return update === 'replicas' ? `{${replicas.min},${replicas.max}} ${answer}` : answer;
}

/** The status, and for an error its code and message. */
async function answerOf(res: Response | null): Promise<string> {
  if (!res) return 'no answer';
  if (res.ok) return String(res.status);
  const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
  return `${res.status} ${body?.error?.code ?? ''}: ${String(body?.error?.message ?? '').slice(0, 200)}`;
}

// ---- drain, probes and the oracle ----------------------------------------------------------------

interface SinkRecord {
  key: string;
  count: number;
  id: string;
  v: number;
}

async function readSink(ctx: RunContext, plan: GraphPlan): Promise<SinkRecord[]> {
  if (ctx.transport === 'kafka') {
    const records = await kcat(sinkTopicOf(plan));
    return records.map((r) => (r.headers['tributary-encoding'] === 'json' ? JSON.parse(r.value) : { id: r.value, key: r.key, count: NaN, v: 0 }) as SinkRecord);
  }
  const out: SinkRecord[] = [];
  for (;;) {
    const res = await request(ctx.server, `/v1/graphs/${plan.name}/sinks/out?from=${out.length}&limit=10000`);
    if (!res?.ok) throw new HarnessError(`reading sink of ${plan.name}: ${await describe(ctx.server, res)}`);
    const { records } = (await res.json()) as { records: Array<{ value: SinkRecord }> };
    if (records.length === 0) return out;
    out.push(...records.map((r) => r.value));
  }
}

/** kcat's read_committed view of a topic, retried: a failed read must not pass for an empty sink. */
async function kcat(topic: string): Promise<ReadRecord[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await readCommitted(topic, BROKERS);
    } catch (error) {
      if (attempt >= 5) throw new HarnessError(`kcat could not read ${topic}: ${(error as Error).message.slice(0, 500)}`);
      await sleep(1000);
    }
  }
}

async function deadLetters(ctx: RunContext, plan: GraphPlan): Promise<string[]> {
  const res = await request(ctx.server, `/v1/graphs/${plan.name}/nodes/count/dead-letters?limit=10000`);
  if (!res?.ok) return [`(dead letters unreadable: ${await describe(ctx.server, res)})`];
  const { records } = (await res.json()) as { records: Array<{ value: { error?: string; record?: { value?: unknown } } }> };
  return records.map((r) => `${String(r.value?.record?.value)}: ${String(r.value?.error).slice(0, 200)}`);
}

/** Input lag 0 on every graph, then every sink unchanged over SINK_STABLE_POLLS polls a second apart. */
async function drain(ctx: RunContext, what: string): Promise<Map<GraphPlan, SinkRecord[]>> {
  await waitUntil(
    `every graph to drain (${what})`,
    DRAIN_TIMEOUT_MS,
    async () => {
      for (const plan of ctx.plans) {
        const s = await status(ctx.server, plan);
        if (!s || !inputEdges(s).every((e) => e.lag === 0)) return false;
      }
      return true;
    },
    async () => `${ctx.server.running ? '' : 'the server is not running! '}${(await Promise.all(ctx.plans.map(async (p) => `${p.id}: ${briefStatus(await status(ctx.server, p))}`))).join(' | ')}`,
    500,
  );
  let last = new Map<GraphPlan, SinkRecord[]>();
  for (let stable = 0; stable < SINK_STABLE_POLLS; ) {
    const now = new Map<GraphPlan, SinkRecord[]>();
    for (const plan of ctx.plans) now.set(plan, await readSink(ctx, plan));
    stable = ctx.plans.every((p) => now.get(p)!.length === last.get(p)?.length) ? stable + 1 : 0;
    last = now;
    if (stable < SINK_STABLE_POLLS) await sleep(1000);
  }
  return last;
}

/** The multiset of inputs: on Kafka read back from the input topics by kcat, on HTTP what was accepted. */
async function expectedInputs(ctx: RunContext, plan: GraphPlan): Promise<{ byId: Map<string, { key: string; n: number }>; notes: string[] }> {
  const byId = new Map<string, { key: string; n: number }>();
  const notes: string[] = [];
  const add = (id: string, key: string) => {
    const seen = byId.get(id);
    if (seen) seen.n++;
    else byId.set(id, { key, n: 1 });
  };
  if (ctx.transport === 'embedded') {
    for (const r of plan.fed) add(r.id, r.key);
    return { byId, notes };
  }
  for (const source of plan.sources) for (const r of await kcat(topicOf(plan, source))) if (!r.value.startsWith('probe.')) add(r.value, r.key ?? '');
  const fed = new Set(plan.fed.map((r) => r.id));
  const unsent = [...byId.keys()].filter((id) => !fed.has(id));
  const lost = [...fed].filter((id) => !byId.has(id));
  const twice = [...byId].filter(([, v]) => v.n > 1).map(([id]) => id);
  if (unsent.length || lost.length || twice.length) notes.push(`input topics differ from what was produced: ${lost.length} not in the topic, ${twice.length} in it twice, ${unsent.length} never sent (the oracle expects the topic)`);
  return { byId, notes };
}

async function sendProbes(ctx: RunContext, plan: GraphPlan): Promise<void> {
  const records = KEYS.map((key) => ({ key, id: `probe.${plan.id}.${key}` }));
  const source = plan.sources[0];
  if (ctx.transport === 'kafka') {
    const producer = await inputProducer(BROKERS);
    try {
      await produce(ctx, producer, topicOf(plan, source), records);
    } finally {
      await producer.close();
    }
  } else {
    await ingestHttp(ctx, plan, source, `${plan.id}-probe`, records);
  }
}

async function verify(ctx: RunContext, trialCount: number): Promise<Outcome[]> {
  assertRunning(ctx.server);
  ctx.log('draining');
  await drain(ctx, 'the fed records');
  ctx.log('drained; probing the final state of every key');
  for (const plan of ctx.plans) await sendProbes(ctx, plan);
  const isProbe = (r: SinkRecord) => r.id.startsWith('probe.');
  const probesIn = (records: SinkRecord[]) => new Set(records.filter(isProbe).map((r) => r.id)).size;
  const probesArrived = await waitUntil(
    'the probe records to reach every sink',
    PROBE_TIMEOUT_MS,
    async () => {
      for (const plan of ctx.plans) if (probesIn(await readSink(ctx, plan)) < KEYS.length && plan.delivery !== 'at-most-once') return false;
      return true;
    },
    async () => (await Promise.all(ctx.plans.map(async (p) => `${p.id}: ${probesIn(await readSink(ctx, p))}/${KEYS.length} probes; ${briefStatus(await status(ctx.server, p))}`))).join(' | '),
    500,
  ).catch((error: Error) => {
    ctx.log(`warning: ${error.message}`);
    return false;
  });
  const sinks = await drain(ctx, 'the probes').catch((error: Error) => {
    ctx.log(`warning: ${error.message}`);
    return null;
  });

  const outcomes: Outcome[] = [];
  for (const plan of ctx.plans) {
    const records = sinks?.get(plan) ?? (await readSink(ctx, plan));
    const { byId, notes } = await expectedInputs(ctx, plan);
    const outcome = oracle(ctx.transport, plan, trialCount, byId, records, await deadLetters(ctx, plan));
    if (!sinks) outcome.details.push('the graph did not drain (see the warning above)');
    if (!probesArrived) outcome.details.push('not every probe arrived (see the warning above)');
    outcome.details.push(...notes);
    outcomes.push(outcome);
  }
  return outcomes;
}

function oracle(transport: Transport, plan: GraphPlan, trials: number, inputs: Map<string, { key: string; n: number }>, records: SinkRecord[], dead: string[]): Outcome {
  const details: string[] = [];
  const sample = (ids: string[]) => `${ids.slice(0, 12).join(', ')}${ids.length > 12 ? `, … (${ids.length} in all)` : ''}`;
  const outputs = records.filter((r) => !r.id.startsWith('probe.'));
  const probes = records.filter((r) => r.id.startsWith('probe.'));

  const seen = new Map<string, number>();
  for (const r of outputs) seen.set(r.id, (seen.get(r.id) ?? 0) + 1);
  const duplicated: string[] = [];
  const missing: string[] = [];
  let extra = 0;
  for (const [id, { n }] of inputs) {
    const got = seen.get(id) ?? 0;
    if (got < n) missing.push(id);
    if (got > n) {
      duplicated.push(`${id}×${got}`);
      extra += got - n;
    }
  }
  const phantoms = [...seen.keys()].filter((id) => !inputs.has(id));

  const perKey = new Map<string, number>();
  for (const { key, n } of inputs.values()) perKey.set(key, (perKey.get(key) ?? 0) + n);

  // exactly-once: a key's counts are exactly 1..n (each batch's state applied once, with its outputs).
  const badCounts: string[] = [];
  if (plan.delivery === 'exactly-once') {
    const byKey = new Map<string, SinkRecord[]>();
    for (const r of outputs) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r]);
    for (const key of new Set([...perKey.keys(), ...byKey.keys()])) {
      const n = perKey.get(key) ?? 0;
      const found = byKey.get(key) ?? [];
      const wrong = countProblem(found, n);
      if (wrong) badCounts.push(`${key}: ${found.length} counts for ${n} inputs; ${wrong}`);
    }
  }

  // The probe's count is the key's final state + 1.
  const badState: string[] = [];
  const probeCount = new Map<string, number[]>();
  for (const p of probes) probeCount.set(p.key, [...(probeCount.get(p.key) ?? []), p.count]);
  for (const key of KEYS) {
    const want = (perKey.get(key) ?? 0) + 1;
    const got = probeCount.get(key);
    if (!got) {
      if (plan.delivery !== 'at-most-once') badState.push(`${key}: probe never arrived`);
      continue;
    }
    const wrong = plan.delivery === 'exactly-once' ? got.length !== 1 || got[0] !== want : plan.delivery === 'at-least-once' ? Math.min(...got) < want : Math.max(...got) > want;
    if (wrong) badState.push(`${key}: probe saw ${got.join('/')}, ${plan.delivery === 'exactly-once' ? 'expected' : plan.delivery === 'at-least-once' ? 'expected ≥' : 'expected ≤'} ${want}`);
  }

  let violations = phantoms.length + badState.length + dead.length;
  if (plan.delivery !== 'at-least-once') violations += duplicated.length;
  if (plan.delivery !== 'at-most-once') violations += missing.length;
  violations += badCounts.length;

  if (duplicated.length && plan.delivery !== 'at-least-once') details.push(`duplicated ids: ${sample(duplicated)}`);
  if (missing.length && plan.delivery !== 'at-most-once') details.push(`missing ids: ${sample(missing)}`);
  if (phantoms.length) details.push(`ids never input: ${sample(phantoms)}`);
  if (badCounts.length) details.push(`wrong counts: ${sample(badCounts)}`);
  if (badState.length) details.push(`wrong final state: ${sample(badState)}`);
  if (dead.length) details.push(`dead letters: ${sample(dead)}`);
  const versions = new Set(outputs.map((r) => r.v));

  return {
    transport,
    graph: plan.id,
    delivery: plan.delivery,
    trials,
    in: [...inputs.values()].reduce((s, v) => s + v.n, 0),
    out: outputs.length,
    duplicates: extra,
    missing: missing.length,
    phantoms: phantoms.length,
    badCountKeys: badCounts.length,
    badStateKeys: badState.length,
    deadLetters: dead.length,
    violations,
    details: [`function versions seen in the sink: ${[...versions].sort((a, b) => a - b).join(',')}`, ...details],
  };
}

/** What is wrong with a key's counts (null: exactly 1..n), naming the ids behind a repeated count. */
function countProblem(records: SinkRecord[], n: number): string | null {
  const idsOf = new Map<number, string[]>();
  for (const r of records) idsOf.set(r.count, [...(idsOf.get(r.count) ?? []), r.id]);
  const repeated = [...idsOf].filter(([, ids]) => ids.length > 1).sort((a, b) => a[0] - b[0]);
  const absent = Array.from({ length: n }, (_, i) => i + 1).filter((c) => !idsOf.has(c));
  const beyond = [...idsOf.keys()].filter((c) => !(c >= 1 && c <= n));
  if (repeated.length === 0 && absent.length === 0 && beyond.length === 0) return null;
  const parts: string[] = [];
  if (repeated.length) {
    const shown = repeated.slice(0, 3).map(([c, ids]) => `${c} by ${ids.join(' and ')}`);
    parts.push(`${repeated.length} counts repeated (${repeated[0][0]}..${repeated[repeated.length - 1][0]}; ${shown.join('; ')}${repeated.length > 3 ? '; …' : ''})`);
  }
  if (absent.length) parts.push(`${absent.length} counts never emitted (first ${absent[0]})`);
  if (beyond.length) parts.push(`counts outside 1..${n}: ${beyond.slice(0, 5).join(', ')}`);
  return parts.join(', ');
}

// ---- main ----------------------------------------------------------------------------------------

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  console.log(`seed=${options.seed}`);
  console.log(`replay: ${replayCommand(options)}`);
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: cleaning up; seed=${options.seed}`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', cleanupNow);

  const outcomes: Outcome[] = [];
  const runs: Array<{ transport: Transport; durationS: number; faults: Record<string, number> }> = [];
  let failure: string | null = null;
  for (const transport of options.transports) {
    try {
      const result = await runTransport(transport, options);
      outcomes.push(...result.outcomes);
      runs.push({ transport, durationS: result.durationS, faults: result.faults });
    } catch (error) {
      await cleanup();
      failure = `the ${transport} run failed: ${error instanceof HarnessError ? error.message : (error as Error).stack}`;
      console.error(`\nchaos: ${failure}`);
      break;
    }
  }

  printTable(
    'chaos: kill -9 trials, per transport and delivery',
    outcomes.map((o) => ({
      transport: o.transport,
      graph: o.graph,
      delivery: o.delivery,
      trials: o.trials,
      'records in': o.in,
      'records out': o.out,
      duplicates: o.duplicates,
      missing: o.missing,
      phantoms: o.phantoms,
      'bad count keys': o.badCountKeys,
      'bad state keys': o.badStateKeys,
      'dead letters': o.deadLetters,
      violations: o.violations,
    })),
  );
  for (const run of runs) console.log(`${run.transport}: ${run.durationS} s; faults ${Object.entries(run.faults).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const o of outcomes) for (const d of o.details) console.log(`${o.transport}/${o.graph}${o.violations && !d.startsWith('function versions') ? ' VIOLATION' : ''}: ${d}`);
  printJson('chaos', { seed: options.seed, trials: options.trials, state: options.state, runs, outcomes: outcomes.map(({ details, ...o }) => o) });
  const violations = outcomes.reduce((s, o) => s + o.violations, 0);
  const orphans = runs.reduce((s, r) => s + (r.faults.orphanedHosts ?? 0), 0);
  if (orphans) console.log(`\nWARNING: ${orphans} host process(es) outlived the kill -9 of their control plane (reaped by the runner; see the log)`);
  if (failure) console.log(`\nHARNESS FAILURE (exit 2): ${failure.split('\n')[0]}`);
  console.log(`\n${violations === 0 ? 'no violations' : `${violations} VIOLATIONS`}; seed=${options.seed}\nreplay: ${replayCommand(options)}`);
  return violations > 0 ? 1 : failure ? 2 : 0;
}

process.exit(await main());
