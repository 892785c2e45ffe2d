/**
 * Uploaded functions and their versions, persisted in the data directory: metadata in SQLite
 * (`tributary.db`, WAL), code in immutable content-addressed files (`code/<sha256>.js|.wasm`).
 * A re-upload makes a new version; older versions stay readable so calls in flight finish on them.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { TributaryError } from './errors.ts';
import type { FunctionKind, FunctionLimits, FunctionSpec } from './function-spec.ts';

/** Names are URL path segments and log labels: keep them boring. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface FunctionVersion extends FunctionLimits {
  name: string;
  version: number;
  kind: FunctionKind;
  sha256: string;
  createdAt: string;
}

interface Row {
  name: string;
  version: number;
  kind: FunctionKind;
  sha256: string;
  created_at: string;
  memory_limit_mb: number;
  timeout_ms: number;
}

export function assertFunctionName(name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw new TributaryError('ERR_BAD_REQUEST', `invalid function name '${name.slice(0, 80)}': use 1-64 of [A-Za-z0-9_.-], starting with a letter or digit`);
  }
}

export function sha256Of(code: string | Uint8Array): string {
  return createHash('sha256').update(code).digest('hex');
}

export class FunctionRegistry {
  private readonly db: DatabaseSync;
  private readonly codeDir: string;
  /** Latest live version by name; the invoke path reads it on every call. Dropped on any write. */
  private readonly latest = new Map<string, FunctionVersion | null>();

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.codeDir = join(dataDir, 'code');
    mkdirSync(this.codeDir, { recursive: true });
    this.db = new DatabaseSync(join(dataDir, 'functions.db'));
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS function_versions (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        created_at TEXT NOT NULL,
        memory_limit_mb INTEGER NOT NULL,
        timeout_ms INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (name, version)
      );`);
  }

  codePath(sha256: string, kind: FunctionKind): string {
    return join(this.codeDir, `${sha256}.${kind}`);
  }

  /** Writes the code file (idempotent: same bytes, same path) before any metadata points at it. */
  storeCode(code: string | Uint8Array, kind: FunctionKind): string {
    const sha256 = sha256Of(code);
    const path = this.codePath(sha256, kind);
    if (!existsSync(path)) {
      const temp = `${path}.${process.pid}.tmp`;
      writeFileSync(temp, code);
      renameSync(temp, path);
    }
    return sha256;
  }

  /** Records a new version of `name`; versions count up from 1 and are never reused. */
  addVersion(name: string, kind: FunctionKind, sha256: string, limits: FunctionLimits): FunctionVersion {
    const createdAt = new Date().toISOString();
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const { next } = this.db.prepare('SELECT COALESCE(MAX(version), 0) + 1 AS next FROM function_versions WHERE name = ?').get(name) as {
        next: number;
      };
      this.db
        .prepare('INSERT INTO function_versions (name, version, kind, sha256, created_at, memory_limit_mb, timeout_ms) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(name, next, kind, sha256, createdAt, limits.memoryLimitMb, limits.timeoutMs);
      this.db.exec('COMMIT');
      this.latest.delete(name);
      return { name, version: next, kind, sha256, createdAt, ...limits };
    } catch (error) {
      this.db.exec('ROLLBACK');
      throw error;
    }
  }

  /** The number `addVersion` would give the next version of `name` (deleted versions count). */
  nextVersion(name: string): number {
    return (this.db.prepare('SELECT COALESCE(MAX(version), 0) + 1 AS next FROM function_versions WHERE name = ?').get(name) as { next: number }).next;
  }

  /**
   * Records a version numbered elsewhere (shared deployments replaying the bucket's deploy log):
   * idempotent, and live even if an earlier delete marked its row. Its code must be stored first.
   */
  applyVersion(version: FunctionVersion): void {
    this.db
      .prepare(
        `INSERT INTO function_versions (name, version, kind, sha256, created_at, memory_limit_mb, timeout_ms, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, 0)
         ON CONFLICT (name, version) DO UPDATE SET kind = excluded.kind, sha256 = excluded.sha256, created_at = excluded.created_at,
           memory_limit_mb = excluded.memory_limit_mb, timeout_ms = excluded.timeout_ms, deleted = 0`,
      )
      .run(version.name, version.version, version.kind, version.sha256, version.createdAt, version.memoryLimitMb, version.timeoutMs);
    this.latest.delete(version.name);
  }

  hasCode(sha256: string, kind: FunctionKind): boolean {
    return existsSync(this.codePath(sha256, kind));
  }

  /** Latest live version of `name`, or null. */
  get(name: string): FunctionVersion | null {
    const cached = this.latest.get(name);
    if (cached !== undefined) return cached;
    const found = this.read(name);
    this.latest.set(name, found);
    return found;
  }

  /** Forgets cached lookups (another process sharing the data directory may have written). */
  invalidate(name?: string): void {
    if (name === undefined) this.latest.clear();
    else this.latest.delete(name);
  }

  private read(name: string): FunctionVersion | null {
    const row = this.db
      .prepare('SELECT * FROM function_versions WHERE name = ? AND deleted = 0 ORDER BY version DESC LIMIT 1')
      .get(name) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  require(name: string): FunctionVersion {
    const found = this.get(name);
    if (!found) throw new TributaryError('ERR_NOT_FOUND', `no function named '${name}'`);
    return found;
  }

  versions(name: string): FunctionVersion[] {
    const rows = this.db.prepare('SELECT * FROM function_versions WHERE name = ? AND deleted = 0 ORDER BY version').all(name) as unknown as Row[];
    return rows.map(fromRow);
  }

  /** Latest live version of every function, by name. */
  list(): FunctionVersion[] {
    const rows = this.db
      .prepare(
        `SELECT f.* FROM function_versions f
         JOIN (SELECT name, MAX(version) AS version FROM function_versions WHERE deleted = 0 GROUP BY name) latest
           ON f.name = latest.name AND f.version = latest.version
         ORDER BY f.name`,
      )
      .all() as unknown as Row[];
    return rows.map(fromRow);
  }

  /** Marks every version deleted; returns false when there was nothing to delete. */
  delete(name: string): boolean {
    const result = this.db.prepare('UPDATE function_versions SET deleted = 1 WHERE name = ? AND deleted = 0').run(name);
    this.latest.delete(name);
    return Number(result.changes) > 0;
  }

  specOf(version: FunctionVersion): FunctionSpec {
    return {
      name: version.name,
      version: version.version,
      kind: version.kind,
      sha256: version.sha256,
      memoryLimitMb: version.memoryLimitMb,
      timeoutMs: version.timeoutMs,
      codePath: this.codePath(version.sha256, version.kind),
    };
  }

  close(): void {
    this.db.close();
  }
}

function fromRow(row: Row): FunctionVersion {
  return {
    name: row.name,
    version: row.version,
    kind: row.kind,
    sha256: row.sha256,
    createdAt: row.created_at,
    memoryLimitMb: row.memory_limit_mb,
    timeoutMs: row.timeout_ms,
  };
}
