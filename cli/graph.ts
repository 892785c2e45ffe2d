/**
 * `tributary graph <subcommand>`: apply, ls, status, rm, ingest, seek, tail, dead-letters — the
 * /v1/graphs API from the terminal. Read commands print tables, or the API's JSON with --json.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ApiError, getJson, postJson, request } from './client.ts';
import { client, common, intFlag, need, reading, UsageError, type Command, type CommandGroup, type Values } from './command.ts';
import { num, printable, short, table } from './table.ts';

const enc = encodeURIComponent;

interface EdgeStatus {
  from: string;
  to: string;
  delivery: string;
  lag?: number;
  committedOffset?: number;
  state?: string;
  partitions?: Array<{ head: number; committed: number; lag: number }>;
}

interface GraphInfo {
  name: string;
  version: number;
  updatedAt: string;
  spec: { nodes: Array<{ id: string }>; edges: Array<{ from: string; to: string }>; sinks: Array<{ id: string }>; slo?: { latencyMs: number; percentile: number } };
  status: {
    state: string;
    reason?: string;
    nodes: Record<string, {
      function: string;
      replicas: number;
      replicasRange: { min: number; max: number };
      queueDepth: number;
      processed: number;
      failed: number;
      deadLetters: number;
      predictedLatencyMs: number | null;
      measuredLatencyMs: number | null;
      lastDecision: { action: string; from: number; to: number; reason: string } | null;
    }>;
    edges: EdgeStatus[];
    sinks: Record<string, { records?: number; offsets?: number }>;
    endToEndLatency: { p50Ms: number | null; p99Ms: number | null };
    errors: { count: number; last: { code: string; message: string } | null };
    decisions?: Array<{ at: string; node: string; action: string; from: number; to: number; reason: string }>;
  };
}

interface StoredRecord {
  offset: number;
  key: string | null;
  value: unknown;
  timestamp: number;
}

function json(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

function describe(values: Values, name: string): Promise<GraphInfo> {
  return getJson<GraphInfo>(client(values), `/v1/graphs/${enc(name)}`);
}

function edgeHead(edge: EdgeStatus): number {
  return (edge.partitions ?? []).reduce((s, p) => s + p.head, 0);
}

/** A graph spec from a .json, .yaml or .yml file (YAML is sent as JSON). */
export function readSpec(file: string): unknown {
  const text = readFileSync(file, 'utf8');
  if (/\.ya?ml$/i.test(file)) {
    try {
      return parseYaml(text, { maxAliasCount: 100 });
    } catch (error) {
      throw new UsageError(`${file} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
}

/** The graph name a file deploys as: its base name without .graph.json, .json, .yaml or .yml. */
export function nameOfSpecFile(file: string): string {
  return basename(file).replace(/(\.graph)?\.(json|ya?ml)$/i, '');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Splits JSON-array or NDJSON text into batches of at most `size` records, each as NDJSON. */
export function batches(text: string, size: number): string[] {
  const trimmed = text.trimStart();
  let lines: string[];
  if (trimmed.startsWith('[')) {
    let items: unknown;
    try {
      items = JSON.parse(text);
    } catch (error) {
      throw new UsageError(`input is not valid JSON: ${(error as Error).message}`);
    }
    if (!Array.isArray(items)) throw new UsageError('input must be a JSON array of {"key"?, "value"} or NDJSON');
    lines = items.map((item) => JSON.stringify(item));
  } else {
    lines = text.split('\n').filter((line) => line.trim() !== '');
  }
  const out: string[] = [];
  for (let i = 0; i < lines.length; i += size) out.push(lines.slice(i, i + size).join('\n') + '\n');
  return out;
}

async function readInput(file: string | undefined): Promise<string> {
  if (file === undefined || file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  return readFileSync(file, 'utf8');
}

/** Errors worth retrying with the same Idempotency-Key: no answer, overload, backpressure. */
function retriable(error: unknown): boolean {
  return error instanceof ApiError && (error.status === 0 || error.status === 429 || error.status === 503);
}

const apply: Command = {
  usage: 'tributary graph apply <file.json|file.yaml> [--name NAME] [--json]',
  summary: 'deploy or update a graph from a JSON or YAML spec (name: the file name without .graph.json/.json/.yaml)',
  options: { ...reading, name: { type: 'string' } },
  async run({ values, positionals }) {
    const file = need(positionals, 0, 'file');
    const name = typeof values.name === 'string' ? values.name : nameOfSpecFile(file);
    const res = await request(client(values), 'PUT', `/v1/graphs/${enc(name)}`, { body: JSON.stringify(readSpec(file)), contentType: 'application/json' });
    const stored = (await res.json()) as { name: string; version: number };
    if (values.json) json(stored);
    else console.log(`applied graph ${stored.name} v${stored.version}`);
  },
};

const ls: Command = {
  usage: 'tributary graph ls [--json]',
  summary: 'list graphs with their version and state',
  options: reading,
  async run({ values }) {
    const { graphs } = await getJson<{ graphs: Array<{ name: string; version: number; updatedAt: string }> }>(client(values), '/v1/graphs');
    const rows = await Promise.all(
      graphs.map(async (g) => {
        try {
          const info = await describe(values, g.name);
          return { ...g, state: info.status.state, reason: info.status.reason ?? null };
        } catch (error) {
          return { ...g, state: error instanceof ApiError ? error.code : 'unknown', reason: (error as Error).message };
        }
      }),
    );
    if (values.json) return json({ graphs: rows });
    if (rows.length === 0) return console.log('no graphs');
    console.log(table(['NAME', 'VERSION', 'STATE', 'UPDATED'], rows.map((g) => [g.name, `v${g.version}`, g.state, g.updatedAt])));
  },
};

const status: Command = {
  usage: 'tributary graph status <name> [--sample-ms 1000] [--json]',
  summary: 'a graph live: per node replicas, records/s in and out, queue, lag, p99 measured and predicted, last decision; per edge delivery and lag',
  options: { ...reading, 'sample-ms': { type: 'string', default: '1000' } },
  async run({ values, positionals }) {
    const name = need(positionals, 0, 'name');
    const sampleMs = intFlag(values, 'sample-ms', 0, 60_000)!;
    // Rates: two status reads `sampleMs` apart (the API shows counters, not rates).
    const first = await describe(values, name);
    const t0 = performance.now();
    let info = first;
    let seconds = 0;
    if (sampleMs > 0) {
      await sleep(sampleMs);
      info = await describe(values, name);
      seconds = (performance.now() - t0) / 1000;
    }
    const before = new Map(first.status.edges.map((e) => [`${e.from}->${e.to}`, edgeHead(e)]));
    const rateOf = (edges: EdgeStatus[]) =>
      seconds > 0 ? edges.reduce((s, e) => s + Math.max(0, edgeHead(e) - (before.get(`${e.from}->${e.to}`) ?? edgeHead(e))), 0) / seconds : null;
    const { status: s, spec } = info;
    const nodes = spec.nodes.map((node) => {
      const n = s.nodes[node.id];
      const ins = s.edges.filter((e) => e.to === node.id);
      const outs = s.edges.filter((e) => e.from === node.id);
      return {
        id: node.id,
        ...n,
        inPerS: rateOf(ins),
        outPerS: rateOf(outs),
        lag: ins.reduce((sum, e) => sum + (e.lag ?? 0), 0),
      };
    });
    if (values.json) return json({ ...info, rates: { sampleMs, nodes: Object.fromEntries(nodes.map((n) => [n.id, { inPerS: n.inPerS, outPerS: n.outPerS }])) } });
    const slo = spec.slo;
    console.log(`graph ${info.name} v${info.version}  ${s.state}${s.reason ? ` (${printable(s.reason)})` : ''}`);
    console.log(
      `end-to-end p50 ${num(s.endToEndLatency.p50Ms)} ms  p99 ${num(s.endToEndLatency.p99Ms)} ms${slo ? `  SLO p${slo.percentile} <= ${slo.latencyMs} ms` : '  (no SLO: not autoscaled)'}`,
    );
    if (s.errors.count > 0 && s.errors.last) console.log(`control-plane errors: ${s.errors.count}, last ${s.errors.last.code}: ${printable(s.errors.last.message)}`);
    console.log('');
    console.log(
      table(
        ['NODE', 'FUNCTION', 'REPLICAS', 'IN/S', 'OUT/S', 'QUEUE', 'LAG', 'P99 MS', 'PREDICTED', 'PROCESSED', 'FAILED', 'DEAD', 'LAST DECISION'],
        nodes.map((n) => [
          n.id,
          n.function,
          `${n.replicas} (${n.replicasRange.min}-${n.replicasRange.max})`,
          num(n.inPerS),
          num(n.outPerS),
          n.queueDepth,
          n.lag,
          num(n.measuredLatencyMs),
          num(n.predictedLatencyMs),
          n.processed,
          n.failed,
          n.deadLetters,
          n.lastDecision ? short(`${n.lastDecision.action} ${n.lastDecision.from}->${n.lastDecision.to}: ${n.lastDecision.reason}`, 100) : '-',
        ]),
      ),
    );
    console.log('');
    console.log(
      table(
        ['EDGE', 'DELIVERY', 'LAG', 'COMMITTED', 'STATE'],
        s.edges.map((e) => [`${e.from} -> ${e.to}`, e.delivery, e.lag ?? 0, e.committedOffset ?? '-', e.state ?? '-']),
      ),
    );
    const changes = (s.decisions ?? []).slice(0, 5);
    if (changes.length > 0) {
      console.log('');
      console.log(table(['REPLICA CHANGES', 'NODE', 'ACTION', 'REASON'], changes.map((d) => [d.at, d.node, `${d.action} ${d.from}->${d.to}`, short(d.reason, 120)])));
    }
  },
};

const rm: Command = {
  usage: 'tributary graph rm <name>',
  summary: 'delete a graph and everything it owned (logs, state, dead letters, Kafka topics it created)',
  options: common,
  async run({ values, positionals }) {
    const name = need(positionals, 0, 'name');
    const res = await request(client(values), 'DELETE', `/v1/graphs/${enc(name)}`);
    if (res.status === 202) {
      const { kafka } = (await res.json()) as { kafka: { topics: string[]; reason: string } };
      console.log(`deleted graph ${name}; its Kafka topics are still being removed in the background (${printable(kafka.reason ?? '')})`);
    } else {
      console.log(`deleted graph ${name}`);
    }
  },
};

const ingest: Command = {
  usage: 'tributary graph ingest <name> <source> [file|-] [--idempotency-key KEY] [--batch 1000] [--json]',
  summary: 'send records (a JSON array or NDJSON of {"key"?, "value"}; stdin when no file or -) to a source, retrying safely',
  options: { ...reading, 'idempotency-key': { type: 'string' }, batch: { type: 'string', default: '1000' } },
  async run({ values, positionals }) {
    const name = need(positionals, 0, 'name');
    const source = need(positionals, 1, 'source');
    const size = intFlag(values, 'batch', 1, 100_000)!;
    const parts = batches(await readInput(positionals[2]), size);
    if (parts.length === 0) throw new UsageError('no records in the input');
    // One key per request: a retry after a lost answer (or a rerun with the same --idempotency-key) appends nothing twice.
    const base = typeof values['idempotency-key'] === 'string' ? values['idempotency-key'] : randomUUID();
    const results: Array<{ key: string; accepted: number; duplicate: boolean }> = [];
    for (const [i, body] of parts.entries()) {
      const key = parts.length === 1 ? base : `${base}:${i}`;
      for (let attempt = 1; ; attempt++) {
        try {
          const res = await request(client(values), 'POST', `/v1/graphs/${enc(name)}/sources/${enc(source)}`, {
            body,
            contentType: 'application/x-ndjson',
            headers: { 'idempotency-key': key },
          });
          const { accepted, duplicate } = (await res.json()) as { accepted: number; duplicate: boolean };
          results.push({ key, accepted, duplicate });
          break;
        } catch (error) {
          if (!retriable(error) || attempt >= 5) throw error;
          await sleep(Math.min(5000, 200 * 2 ** attempt));
        }
      }
    }
    const accepted = results.reduce((s, r) => s + r.accepted, 0);
    if (values.json) return json({ accepted, requests: results });
    const duplicates = results.filter((r) => r.duplicate).length;
    console.log(`accepted ${accepted} record(s) in ${results.length} request(s)${duplicates ? `, ${duplicates} already ingested (duplicate)` : ''}; Idempotency-Key ${base}`);
  },
};

interface SeekAnswer {
  edges: Array<{ node: string; topic: string; partitions: Array<{ partition: number; from: number; to: number; earliest: number; head: number }> }>;
  reset: { nodes: string[]; skipped: Array<{ from: string; to: string; partitions: Array<{ partition: number; from: number; to: number }> }> };
}

/** `--offset 5` (every partition) or `--offset 0=5,2=7` (those partitions). */
export function parseOffsetFlag(text: string): number | Record<string, number> {
  if (/^(0|[1-9][0-9]*)$/.test(text)) return Number(text);
  const map: Record<string, number> = {};
  for (const part of text.split(',')) {
    const match = /^(0|[1-9][0-9]*)=(0|[1-9][0-9]*)$/.exec(part.trim());
    if (!match) throw new UsageError(`--offset must be N or PARTITION=N[,PARTITION=N…], got '${text.slice(0, 40)}'`);
    map[match[1]] = Number(match[2]);
  }
  return map;
}

/** `--timestamp` as ms since the epoch or an ISO 8601 date. */
export function parseTimestampFlag(text: string): number {
  const at = /^[0-9]+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(at) || at < 0) throw new UsageError(`--timestamp must be ms since the epoch or an ISO 8601 date, got '${text.slice(0, 40)}'`);
  return at;
}

const seek: Command = {
  usage: 'tributary graph seek <name> <source> (--offset N | --offset P=N,… | --timestamp ISO|ms) [--node NODE] [--reset-state] [--json]',
  summary: "replay: rewind a source's consumers to an offset or a time (--reset-state: reset the state of every node downstream first)",
  options: { ...reading, offset: { type: 'string' }, timestamp: { type: 'string' }, node: { type: 'string' }, 'reset-state': { type: 'boolean', default: false } },
  async run({ values, positionals }) {
    const name = need(positionals, 0, 'name');
    const source = need(positionals, 1, 'source');
    const offset = typeof values.offset === 'string' ? values.offset : undefined;
    const timestamp = typeof values.timestamp === 'string' ? values.timestamp : undefined;
    if ((offset === undefined) === (timestamp === undefined)) throw new UsageError('give exactly one of --offset and --timestamp');
    const body = {
      ...(offset !== undefined ? { offset: parseOffsetFlag(offset) } : { timestamp: parseTimestampFlag(timestamp!) }),
      resetState: Boolean(values['reset-state']),
      ...(typeof values.node === 'string' && { node: values.node }),
    };
    const answer = await postJson<SeekAnswer>(client(values), `/v1/graphs/${enc(name)}/sources/${enc(source)}/seek`, body);
    if (values.json) return json(answer);
    const rows = answer.edges.flatMap((e) => e.partitions.map((p) => [`${source} -> ${e.node}`, p.partition, p.from, p.to, p.from - p.to, `${p.earliest}-${p.head}`]));
    console.log(table(['EDGE', 'PARTITION', 'FROM', 'TO', 'REPLAYS', 'KEPT'], rows));
    if (answer.reset.nodes.length > 0) {
      console.log(`state reset: ${answer.reset.nodes.join(', ')}`);
      const skipped = answer.reset.skipped.map((s) => `${s.from} -> ${s.to}: ${s.partitions.reduce((n, p) => n + p.to - p.from, 0)}`);
      if (skipped.length > 0) console.log(`queued records skipped (derived again by the replay): ${skipped.join('; ')}`);
    }
  },
};

function printRecord(r: StoredRecord, asJson: boolean): void {
  if (asJson) console.log(JSON.stringify(r));
  else console.log(`${r.offset}\t${new Date(r.timestamp).toISOString()}\t${printable(r.key ?? '-')}\t${short(r.value, 2000)}`);
}

const tail: Command = {
  usage: 'tributary graph tail <name> <sink> [--limit 20] [--from OFFSET] [--follow] [--interval-ms 500] [--json]',
  summary: "print a log sink's last records (--from: from an offset); --follow keeps printing new ones (NDJSON with --json)",
  options: { ...reading, limit: { type: 'string', default: '20' }, from: { type: 'string' }, follow: { type: 'boolean', short: 'f', default: false }, 'interval-ms': { type: 'string', default: '500' } },
  async run({ values, positionals }) {
    const name = need(positionals, 0, 'name');
    const sink = need(positionals, 1, 'sink');
    const limit = intFlag(values, 'limit', 1, 10_000)!;
    const intervalMs = intFlag(values, 'interval-ms', 50, 60_000)!;
    let from = intFlag(values, 'from', 0, Number.MAX_SAFE_INTEGER);
    if (from === undefined) {
      const info = await describe(values, name);
      const head = info.status.sinks[sink]?.records ?? info.status.sinks[sink]?.offsets;
      if (head === undefined) throw new ApiError(404, 'ERR_NOT_FOUND', `graph '${name}' has no sink '${sink}'`);
      from = Math.max(0, head - limit);
    }
    const read = async (): Promise<StoredRecord[]> =>
      (await getJson<{ records: StoredRecord[] }>(client(values), `/v1/graphs/${enc(name)}/sinks/${enc(sink)}?from=${from}&limit=${limit}`)).records;
    const asJson = Boolean(values.json);
    if (!values.follow) {
      const records = await read();
      if (asJson) return json({ records });
      for (const r of records) printRecord(r, false);
      return;
    }
    for (;;) {
      const records = await read();
      for (const r of records) printRecord(r, asJson);
      if (records.length > 0) from = records[records.length - 1].offset + 1;
      if (records.length < limit) await sleep(intervalMs);
    }
  },
};

const deadLetters: Command = {
  usage: 'tributary graph dead-letters <name> <node> [--limit 20] [--from OFFSET] [--json]',
  summary: "a node's records that failed every attempt, with their errors (the last --limit, or from an offset)",
  options: { ...reading, limit: { type: 'string', default: '20' }, from: { type: 'string' } },
  async run({ values, positionals }) {
    const name = need(positionals, 0, 'name');
    const node = need(positionals, 1, 'node');
    const limit = intFlag(values, 'limit', 1, 10_000)!;
    let from = intFlag(values, 'from', 0, Number.MAX_SAFE_INTEGER);
    if (from === undefined) {
      const info = await describe(values, name);
      const n = info.status.nodes[node];
      if (!n) throw new ApiError(404, 'ERR_NOT_FOUND', `graph '${name}' has no node '${node}'`);
      from = Math.max(0, n.deadLetters - limit);
    }
    const { records } = await getJson<{ records: StoredRecord[] }>(client(values), `/v1/graphs/${enc(name)}/nodes/${enc(node)}/dead-letters?from=${from}&limit=${limit}`);
    if (values.json) return json({ records });
    if (records.length === 0) return console.log(`no dead letters on ${name}/${node}`);
    console.log(
      table(
        ['OFFSET', 'TIME', 'ERROR', 'RECORD'],
        records.map((r) => {
          const v = r.value as { error?: unknown; record?: unknown };
          return [r.offset, new Date(r.timestamp).toISOString(), short(v?.error ?? '', 160), short(v?.record ?? r.value, 160)];
        }),
      ),
    );
  },
};

export const graphCommands: CommandGroup = {
  summary: 'process graphs: apply, ls, status, rm, ingest, seek, tail, dead-letters',
  subcommands: { apply, ls, status, rm, ingest, seek, tail, 'dead-letters': deadLetters },
};
