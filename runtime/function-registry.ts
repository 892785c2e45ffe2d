/**
 * Uploaded functions and their versions, persisted in the data directory: metadata in SQLite
 * (`functions.db`, WAL), code in immutable content-addressed files (`code/<sha256>.js|.wasm`).
 * A re-upload makes a new version; the previous ones stay readable so calls in flight finish on
 * them, up to `maxVersions` per function: older rows are removed and their code files deleted once
 * no remaining version uses the same bytes.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { LRUCache } from 'lru-cache';
import { TributaryError, type ErrorCode } from './errors.ts';
import { cpuLimitOf, type FunctionKind, type FunctionLimits, type FunctionSpec } from './function-spec.ts';
import { MAX_VERSIONS_PER_FUNCTION } from './limits.ts';
import { newBindingsId, type BindingNames, type Bindings } from './function-bindings.ts';

/** Names are URL path segments and log labels: keep them boring. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface FunctionVersion extends FunctionLimits {
  /** Always set on versions read from the registry (cpuLimitOf for versions stored before it existed). */
  cpuLimitMs?: number;
  name: string;
  version: number;
  kind: FunctionKind;
  sha256: string;
  createdAt: string;
  /** Names of the version's vars and secrets (values are never shown); absent without bindings. */
  bindings?: BindingNames;
  /** Which bindings file the version uses; never leaves the control plane (not enumerable, so no API read shows it). */
  readonly bindingsId?: string;
  /**
   * Why this control plane cannot give the version its bindings (shared deployments: the secrets
   * are sealed with another key, or the object is gone): its invokes fail with this code.
   */
  bindingsError?: { code: ErrorCode; message: string };
}

/**
 * A replicated version's bindings as the deploy log gives them: the local file written from the
 * bucket's object (`id`), or why there is none (`error`).
 */
export type AppliedBindings = { names: BindingNames; key: string } & ({ id: string; error?: never } | { error: { code: ErrorCode; message: string }; id?: never });

interface Row {
  name: string;
  version: number;
  kind: FunctionKind;
  sha256: string;
  created_at: string;
  memory_limit_mb: number;
  timeout_ms: number;
  /** NULL on rows written before the column existed. */
  cpu_limit_ms: number | null;
  /** NULL without bindings (and on rows written before the columns existed). */
  bindings_id?: string | null;
  binding_names?: string | null;
  bindings_key?: string | null;
  /** JSON `{code, message}`; NULL when the bindings are in place. */
  bindings_error?: string | null;
}

export interface RegistryOptions {
  /** Versions kept per function (default MAX_VERSIONS_PER_FUNCTION); older ones are pruned on deploy. */
  maxVersions?: number;
}

/**
 * Latest versions kept in memory for the invoke path: hits only (an unknown name is looked up in
 * SQLite every time, so a flood of made-up names costs queries, not memory), bounded by count and
 * by approximate bytes.
 */
const CACHE_ENTRIES = 4096;
const CACHE_BYTES = 4 * 1024 * 1024;

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
  private readonly bindingsDir: string;
  private readonly maxVersions: number;
  /** Latest live version by name, for names that exist; the invoke path reads it on every call. Dropped on any write. */
  private readonly latest = new LRUCache<string, FunctionVersion>({
    max: CACHE_ENTRIES,
    maxSize: CACHE_BYTES,
    sizeCalculation: (version) => 256 + version.name.length,
  });

  constructor(dataDir: string, options: RegistryOptions = {}) {
    this.maxVersions = options.maxVersions ?? MAX_VERSIONS_PER_FUNCTION;
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
    // Databases from before cpuLimitMs existed: add the column; their rows read as cpuLimitOf().
    const columns = this.db.prepare('PRAGMA table_info(function_versions)').all() as Array<{ name: string }>;
    if (!columns.some((column) => column.name === 'cpu_limit_ms')) this.db.exec('ALTER TABLE function_versions ADD COLUMN cpu_limit_ms INTEGER');
    if (!columns.some((column) => column.name === 'bindings_id')) {
      this.db.exec('ALTER TABLE function_versions ADD COLUMN bindings_id TEXT');
      this.db.exec('ALTER TABLE function_versions ADD COLUMN binding_names TEXT');
    }
    if (!columns.some((column) => column.name === 'bindings_key')) {
      this.db.exec('ALTER TABLE function_versions ADD COLUMN bindings_key TEXT');
      this.db.exec('ALTER TABLE function_versions ADD COLUMN bindings_error TEXT');
    }
    this.bindingsDir = join(dataDir, 'bindings');
    mkdirSync(this.bindingsDir, { recursive: true, mode: 0o700 });
  }

  bindingsPath(id: string): string {
    return join(this.bindingsDir, `${id}.json`);
  }

  /** Writes a deploy's bindings file (mode 0600) before anything points at it; returns its id. */
  storeBindings(bindings: Bindings): string {
    const id = newBindingsId();
    const path = this.bindingsPath(id);
    const temp = `${path}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(bindings), { mode: 0o600 });
    renameSync(temp, path);
    return id;
  }

  /** Removes a bindings file no version points at (a failed deploy's). */
  dropBindings(id: string): void {
    rmSync(this.bindingsPath(id), { force: true });
  }

  /** Attaches a stored bindings file to a recorded version (idempotent; a file it replaces is removed). */
  setBindings(name: string, version: number, id: string, names: BindingNames): FunctionVersion {
    this.dropReplaced(name, version, id);
    this.db.prepare('UPDATE function_versions SET bindings_id = ?, binding_names = ? WHERE name = ? AND version = ?').run(id, JSON.stringify(names), name, version);
    this.latest.delete(name);
    const row = this.db.prepare('SELECT * FROM function_versions WHERE name = ? AND version = ?').get(name, version) as unknown as Row;
    return fromRow(row);
  }

  private dropReplaced(name: string, version: number, id: string | null): void {
    const before = this.db.prepare('SELECT bindings_id FROM function_versions WHERE name = ? AND version = ?').get(name, version) as { bindings_id: string | null } | undefined;
    if (before?.bindings_id && before.bindings_id !== id) this.dropBindings(before.bindings_id);
  }

  /** Live versions whose replicated bindings could not be had here, with their bucket objects (retried at startup). */
  unavailableBindings(): Array<{ name: string; version: number; key: string; names: BindingNames }> {
    const rows = this.db
      .prepare('SELECT name, version, bindings_key, binding_names FROM function_versions WHERE deleted = 0 AND bindings_error IS NOT NULL AND bindings_key IS NOT NULL ORDER BY name, version')
      .all() as Array<{ name: string; version: number; bindings_key: string; binding_names: string }>;
    return rows.map((row) => ({ name: row.name, version: row.version, key: row.bindings_key, names: JSON.parse(row.binding_names) as BindingNames }));
  }

  /** Entries of the latest-version cache (tests assert it stays bounded). */
  get cacheSize(): number {
    return this.latest.size;
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

  /**
   * Records a new version of `name`; versions count up from 1 and are never reused. Versions
   * beyond the newest `maxVersions` are pruned (see `prune`).
   */
  addVersion(name: string, kind: FunctionKind, sha256: string, limits: FunctionLimits): FunctionVersion {
    const createdAt = new Date().toISOString();
    const cpuLimitMs = cpuLimitOf(limits);
    this.db.exec('BEGIN IMMEDIATE');
    let next: number;
    try {
      next = (this.db.prepare('SELECT COALESCE(MAX(version), 0) + 1 AS next FROM function_versions WHERE name = ?').get(name) as { next: number }).next;
      this.db
        .prepare('INSERT INTO function_versions (name, version, kind, sha256, created_at, memory_limit_mb, timeout_ms, cpu_limit_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(name, next, kind, sha256, createdAt, limits.memoryLimitMb, limits.timeoutMs, cpuLimitMs);
      this.db.exec('COMMIT');
    } catch (error) {
      this.db.exec('ROLLBACK');
      throw error;
    }
    this.latest.delete(name);
    this.prune(name);
    return { name, version: next, kind, sha256, createdAt, memoryLimitMb: limits.memoryLimitMb, timeoutMs: limits.timeoutMs, cpuLimitMs };
  }

  /**
   * Removes the rows of `name` older than its newest `maxVersions` live versions, and the rows an
   * earlier delete marked (all but the newest row), then deletes the code files that no remaining
   * live version uses. Only this data directory's files: a bucket's code objects are never
   * touched. Hosts release the pruned versions' isolates once idle, when told to unload all but
   * the latest (FunctionService.deploy, or the shared deployments' onFunction). Returns the pruned versions.
   */
  prune(name: string): FunctionVersion[] {
    const oldestKept = this.db
      .prepare('SELECT version FROM function_versions WHERE name = ? AND deleted = 0 ORDER BY version DESC LIMIT 1 OFFSET ?')
      .get(name, this.maxVersions - 1) as { version: number } | undefined;
    // The newest row is never removed, live or marked, so MAX(version) and the numbering stay as they were.
    const where = 'name = ? AND version < (SELECT MAX(version) FROM function_versions WHERE name = ?) AND (deleted = 1 OR version < ?)';
    const args = [name, name, oldestKept?.version ?? 0] as const;
    const pruned = (this.db.prepare(`SELECT * FROM function_versions WHERE ${where}`).all(...args) as unknown as Row[]).map(fromRow);
    if (pruned.length === 0) return [];
    this.db.prepare(`DELETE FROM function_versions WHERE ${where}`).run(...args);
    for (const version of pruned) if (version.bindingsId) this.dropBindings(version.bindingsId);
    const used = this.db.prepare('SELECT 1 FROM function_versions WHERE sha256 = ? AND kind = ? AND deleted = 0 LIMIT 1');
    const checked = new Set<string>();
    for (const version of pruned) {
      const path = this.codePath(version.sha256, version.kind);
      if (checked.has(path)) continue;
      checked.add(path);
      if (used.get(version.sha256, version.kind) === undefined) rmSync(path, { force: true });
    }
    return pruned;
  }

  /** Live functions (names with at least one version not deleted). */
  count(): number {
    return (this.db.prepare('SELECT COUNT(DISTINCT name) AS n FROM function_versions WHERE deleted = 0').get() as { n: number }).n;
  }

  /** The number `addVersion` would give the next version of `name` (deleted versions count). */
  nextVersion(name: string): number {
    return (this.db.prepare('SELECT COALESCE(MAX(version), 0) + 1 AS next FROM function_versions WHERE name = ?').get(name) as { next: number }).next;
  }

  /**
   * Records a version numbered elsewhere (shared deployments replaying the bucket's deploy log):
   * idempotent, and live even if an earlier delete marked its row. Its code must be stored first.
   */
  applyVersion(version: FunctionVersion, bindings?: AppliedBindings): FunctionVersion[] {
    this.db
      .prepare(
        `INSERT INTO function_versions (name, version, kind, sha256, created_at, memory_limit_mb, timeout_ms, cpu_limit_ms, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)
         ON CONFLICT (name, version) DO UPDATE SET kind = excluded.kind, sha256 = excluded.sha256, created_at = excluded.created_at,
           memory_limit_mb = excluded.memory_limit_mb, timeout_ms = excluded.timeout_ms, cpu_limit_ms = excluded.cpu_limit_ms, deleted = 0`,
      )
      .run(version.name, version.version, version.kind, version.sha256, version.createdAt, version.memoryLimitMb, version.timeoutMs, version.cpuLimitMs ?? null);
    if (bindings) this.applyBindings(version.name, version.version, bindings);
    this.latest.delete(version.name);
    return this.prune(version.name);
  }

  /** Sets a replicated version's bindings, or why it has none here (FunctionService refuses to run it then). */
  applyBindings(name: string, version: number, bindings: AppliedBindings): void {
    this.dropReplaced(name, version, bindings.id ?? null);
    this.db
      .prepare('UPDATE function_versions SET bindings_id = ?, binding_names = ?, bindings_key = ?, bindings_error = ? WHERE name = ? AND version = ?')
      .run(bindings.id ?? null, JSON.stringify(bindings.names), bindings.key, bindings.error ? JSON.stringify(bindings.error) : null, name, version);
    this.latest.delete(name);
  }

  hasCode(sha256: string, kind: FunctionKind): boolean {
    return existsSync(this.codePath(sha256, kind));
  }

  /** Latest live version of `name`, or null. */
  get(name: string): FunctionVersion | null {
    const cached = this.latest.get(name);
    if (cached !== undefined) return cached;
    const found = this.read(name);
    if (found) this.latest.set(name, found);
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
    if (!found) throw new TributaryError('ERR_NOT_FOUND', `no function named '${name.slice(0, 80)}'`);
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
    // A deleted function's secrets go at once: no call can load it any more.
    const bound = this.db.prepare('SELECT bindings_id FROM function_versions WHERE name = ? AND deleted = 0 AND bindings_id IS NOT NULL').all(name) as Array<{ bindings_id: string }>;
    for (const row of bound) this.dropBindings(row.bindings_id);
    const result = this.db.prepare('UPDATE function_versions SET deleted = 1, bindings_id = NULL WHERE name = ? AND deleted = 0').run(name);
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
      cpuLimitMs: cpuLimitOf(version),
      codePath: this.codePath(version.sha256, version.kind),
      ...(version.bindingsId ? { bindingsId: version.bindingsId, bindingsPath: this.bindingsPath(version.bindingsId) } : {}),
    };
  }

  close(): void {
    this.db.close();
  }
}

function fromRow(row: Row): FunctionVersion {
  const version: FunctionVersion = {
    name: row.name,
    version: row.version,
    kind: row.kind,
    sha256: row.sha256,
    createdAt: row.created_at,
    memoryLimitMb: row.memory_limit_mb,
    timeoutMs: row.timeout_ms,
    cpuLimitMs: row.cpu_limit_ms ?? cpuLimitOf({ memoryLimitMb: row.memory_limit_mb, timeoutMs: row.timeout_ms }),
  };
  if (row.bindings_id || row.binding_names) {
    version.bindings = row.binding_names ? (JSON.parse(row.binding_names) as BindingNames) : { vars: [], secrets: [] };
    if (row.bindings_id) Object.defineProperty(version, 'bindingsId', { value: row.bindings_id, enumerable: false });
  }
  if (row.bindings_error) version.bindingsError = JSON.parse(row.bindings_error) as FunctionVersion['bindingsError'];
  return version;
}
