/**
 * Deployed graph specs, persisted in the data directory (`graphs.db`), with each graph's
 * incarnation and the Kafka cleanups that deleted graphs still owe.
 *
 * An incarnation is a random id given to a name when it is first stored: kept by every later
 * put of the live graph, new after a delete. Whatever is keyed by it (ingest idempotency keys)
 * cannot be mistaken for the previous incarnation's, even when a delete stopped half-way or
 * another process on the same data directory still runs the deleted graph.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { GraphSpec } from './graph-spec.ts';

export interface StoredGraph {
  name: string;
  spec: GraphSpec;
  version: number;
  updatedAt: string;
}

/** Kafka topics and groups a deleted graph still owes the brokers (scheduler/kafka/kafka-cleanup.ts). */
export interface PendingCleanup {
  id: number;
  graph: string;
  /** The incarnation that was deleted: a graph still stored with it was not deleted after all. */
  incarnation: string;
  /** JSON of what is left to delete (KafkaOwnedOnCluster[], brokers resolved). */
  owed: string;
  createdAt: string;
}

export class GraphStore {
  private readonly db: DatabaseSync;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.db = new DatabaseSync(join(dataDir, 'graphs.db'));
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS graphs (name TEXT PRIMARY KEY, spec TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS kafka_cleanups (id INTEGER PRIMARY KEY, graph TEXT NOT NULL, incarnation TEXT NOT NULL, owed TEXT NOT NULL, created_at TEXT NOT NULL);`);
    // Graphs stored before incarnations existed keep NULL: their keys keep the old scope until deleted.
    const columns = this.db.prepare('PRAGMA table_info(graphs)').all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'incarnation')) this.db.exec('ALTER TABLE graphs ADD COLUMN incarnation TEXT');
  }

  /** The graph's incarnation ('' for one stored before incarnations existed), or null when no graph has that name. */
  incarnation(name: string): string | null {
    const row = this.db.prepare('SELECT incarnation FROM graphs WHERE name = ?').get(name) as { incarnation: string | null } | undefined;
    return row ? (row.incarnation ?? '') : null;
  }

  put(name: string, spec: GraphSpec): StoredGraph {
    const updatedAt = new Date().toISOString();
    this.db
      .prepare(
        `INSERT INTO graphs (name, spec, version, updated_at, incarnation) VALUES (?, ?, 1, ?, ?)
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, version = graphs.version + 1, updated_at = excluded.updated_at`,
      )
      .run(name, JSON.stringify(spec), updatedAt, newIncarnation());
    return this.get(name)!;
  }

  /** Stores a graph exactly as given, version included (shared deployments replaying the bucket's deploy log). */
  apply(graph: StoredGraph): void {
    this.db
      .prepare(
        `INSERT INTO graphs (name, spec, version, updated_at, incarnation) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, version = excluded.version, updated_at = excluded.updated_at`,
      )
      .run(graph.name, JSON.stringify(graph.spec), graph.version, graph.updatedAt, newIncarnation());
  }

  get(name: string): StoredGraph | null {
    const row = this.db.prepare('SELECT * FROM graphs WHERE name = ?').get(name) as { name: string; spec: string; version: number; updated_at: string } | undefined;
    return row ? { name: row.name, spec: JSON.parse(row.spec) as GraphSpec, version: row.version, updatedAt: row.updated_at } : null;
  }

  has(name: string): boolean {
    return this.db.prepare('SELECT 1 FROM graphs WHERE name = ?').get(name) !== undefined;
  }

  count(): number {
    return Number((this.db.prepare('SELECT COUNT(*) AS n FROM graphs').get() as { n: number }).n);
  }

  names(): string[] {
    return (this.db.prepare('SELECT name FROM graphs ORDER BY name').all() as Array<{ name: string }>).map((r) => r.name);
  }

  list(): StoredGraph[] {
    return (this.db.prepare('SELECT name FROM graphs ORDER BY name').all() as Array<{ name: string }>).map((r) => this.get(r.name)!);
  }

  delete(name: string): boolean {
    return Number(this.db.prepare('DELETE FROM graphs WHERE name = ?').run(name).changes) > 0;
  }

  /** Records what a graph being deleted owes Kafka; returns the cleanup's id. */
  addCleanup(graph: string, incarnation: string, owed: string): number {
    const row = this.db
      .prepare('INSERT INTO kafka_cleanups (graph, incarnation, owed, created_at) VALUES (?, ?, ?, ?) RETURNING id')
      .get(graph, incarnation, owed, new Date().toISOString()) as { id: number };
    return Number(row.id);
  }

  cleanups(): PendingCleanup[] {
    const rows = this.db.prepare('SELECT * FROM kafka_cleanups ORDER BY id').all() as Array<{ id: number; graph: string; incarnation: string; owed: string; created_at: string }>;
    return rows.map((r) => ({ id: Number(r.id), graph: r.graph, incarnation: r.incarnation, owed: r.owed, createdAt: r.created_at }));
  }

  updateCleanup(id: number, owed: string): void {
    this.db.prepare('UPDATE kafka_cleanups SET owed = ? WHERE id = ?').run(owed, id);
  }

  removeCleanup(id: number): void {
    this.db.prepare('DELETE FROM kafka_cleanups WHERE id = ?').run(id);
  }

  close(): void {
    this.db.close();
  }
}

/** 64 random bits, hex. */
function newIncarnation(): string {
  return randomBytes(8).toString('hex');
}
