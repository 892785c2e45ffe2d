/** Deployed graph specs, persisted in the data directory (`graphs.db`). */
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

export class GraphStore {
  private readonly db: DatabaseSync;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.db = new DatabaseSync(join(dataDir, 'graphs.db'));
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS graphs (name TEXT PRIMARY KEY, spec TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL);`);
  }

  put(name: string, spec: GraphSpec): StoredGraph {
    const updatedAt = new Date().toISOString();
    this.db
      .prepare(
        `INSERT INTO graphs (name, spec, version, updated_at) VALUES (?, ?, 1, ?)
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, version = graphs.version + 1, updated_at = excluded.updated_at`,
      )
      .run(name, JSON.stringify(spec), updatedAt);
    return this.get(name)!;
  }

  /** Stores a graph exactly as given, version included (shared deployments replaying the bucket's deploy log). */
  apply(graph: StoredGraph): void {
    this.db
      .prepare(
        `INSERT INTO graphs (name, spec, version, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, version = excluded.version, updated_at = excluded.updated_at`,
      )
      .run(graph.name, JSON.stringify(graph.spec), graph.version, graph.updatedAt);
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

  close(): void {
    this.db.close();
  }
}
