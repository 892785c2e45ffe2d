/**
 * `env.STATE` for `fetch` handlers: one R2-like namespace per function, the same from every host
 * (a write is visible to the next call wherever it runs). Hosts reach it through the host channel
 * (`stateCall` messages); arguments come from tenant code and are checked here, once, whatever
 * keeps the values: without S3 the control plane's `<data-dir>/function-state.db` (SQLite, WAL);
 * with a bucket, one object per key under `fetch-state/<function>/` (connectors/s3/
 * s3-function-state.ts), so every control plane sharing the bucket sees the same values.
 * Deleted with the function.
 */
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { TributaryError } from './errors.ts';

export const MAX_FETCH_STATE_VALUE_BYTES = 1024 * 1024;
export const MAX_FETCH_STATE_KEY_CHARS = 1024;
/** Keys per function namespace (ERR_QUOTA_EXCEEDED beyond). */
export const MAX_FETCH_STATE_KEYS = 10_000;
/** Bytes of keys and values per function namespace (ERR_QUOTA_EXCEEDED beyond): what a tenant can make the platform store. */
export const MAX_FETCH_STATE_BYTES = 64 * 1024 * 1024;
const MAX_LIST = 1000;

export type StateCallResult =
  | { ok: true; value: unknown }
  | { ok: false; error: { name: string; message: string; code: string } };

/** What a namespace holds now, for the quotas: its keys and bytes, and what `key` takes of them. */
export interface NamespaceUsage {
  keys: number;
  bytes: number;
  /** Bytes of `key` and its value when present (0 otherwise). */
  old: number;
  present: boolean;
}

/** Where the values live. Keys and values arrive checked; the store keeps quotas and errors. */
export interface FetchStateBackend {
  /** Longest key in UTF-8 bytes this backend can keep (beyond MAX_FETCH_STATE_KEY_CHARS' bound). */
  readonly maxKeyBytes: number;
  get(fn: string, key: string): Promise<string | Uint8Array | null>;
  usage(fn: string, key: string): Promise<NamespaceUsage>;
  put(fn: string, key: string, value: string | Uint8Array, bytes: number): Promise<void>;
  delete(fn: string, key: string): Promise<void>;
  /** Keys after `cursor` starting with `prefix`, in UTF-8 binary order, at most `limit + 1`. */
  list(fn: string, prefix: string, cursor: string, limit: number): Promise<string[]>;
  drop(fn: string): Promise<void>;
  close(): void;
}

export class FunctionStateStore {
  private readonly backend: FetchStateBackend;

  constructor(backend: FetchStateBackend) {
    this.backend = backend;
  }

  /** One call from a function's `env.STATE`; never rejects. */
  async call(fn: string, op: unknown, args: unknown): Promise<StateCallResult> {
    try {
      return { ok: true, value: await this.run(fn, op, Array.isArray(args) ? args : []) };
    } catch (error) {
      const e = error instanceof TributaryError ? error : new TributaryError('ERR_INTERNAL', 'state operation failed');
      const name = e.code === 'ERR_BAD_REQUEST' ? 'TypeError' : 'RangeError';
      return { ok: false, error: { name, message: `${e.code}: ${e.message}`, code: e.code } };
    }
  }

  private async run(fn: string, op: unknown, args: unknown[]): Promise<unknown> {
    switch (op) {
      case 'get':
        return this.backend.get(fn, this.key(args[0]));
      case 'put': {
        const k = this.key(args[0]);
        const value = args[1];
        const isText = typeof value === 'string';
        if (!isText && !(value instanceof Uint8Array)) throw bad('state values are strings, ArrayBuffers or ArrayBufferViews');
        const size = isText ? Buffer.byteLength(value) : value.byteLength;
        if (size > MAX_FETCH_STATE_VALUE_BYTES) throw new TributaryError('ERR_TOO_LARGE', `state values are at most ${MAX_FETCH_STATE_VALUE_BYTES} bytes`);
        const usage = await this.backend.usage(fn, k);
        if (!usage.present && usage.keys >= MAX_FETCH_STATE_KEYS) throw new TributaryError('ERR_QUOTA_EXCEEDED', `a function's STATE holds at most ${MAX_FETCH_STATE_KEYS} keys`);
        if (usage.bytes - usage.old + k.length + size > MAX_FETCH_STATE_BYTES) {
          throw new TributaryError('ERR_QUOTA_EXCEEDED', `a function's STATE holds at most ${MAX_FETCH_STATE_BYTES} bytes`);
        }
        await this.backend.put(fn, k, value, k.length + size);
        return null;
      }
      case 'delete':
        await this.backend.delete(fn, this.key(args[0]));
        return null;
      case 'list': {
        const options = (typeof args[0] === 'object' && args[0] !== null ? args[0] : {}) as Record<string, unknown>;
        const prefix = options.prefix === undefined ? '' : this.key(options.prefix, true);
        const cursor = options.cursor === undefined ? '' : this.key(options.cursor, true);
        const limit = options.limit === undefined ? MAX_LIST : Number(options.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST) throw bad(`list limit must be an integer in [1, ${MAX_LIST}]`);
        const rows = await this.backend.list(fn, prefix, cursor, limit);
        const truncated = rows.length > limit;
        const keys = rows.slice(0, limit);
        return { keys, truncated, cursor: truncated ? keys[keys.length - 1] : undefined };
      }
      default:
        throw bad('unknown STATE operation');
    }
  }

  /** Removes a deleted function's namespace. */
  dropFunction(fn: string): Promise<void> {
    return this.backend.drop(fn);
  }

  close(): void {
    this.backend.close();
  }

  private key(value: unknown, allowEmpty = false): string {
    if (typeof value !== 'string' || (!allowEmpty && value.length === 0) || value.length > MAX_FETCH_STATE_KEY_CHARS) {
      throw bad(`state keys are ${allowEmpty ? '' : 'non-empty '}strings of at most ${MAX_FETCH_STATE_KEY_CHARS} characters`);
    }
    if (value.length * 3 > this.backend.maxKeyBytes && Buffer.byteLength(value) > this.backend.maxKeyBytes) {
      throw bad(`state keys are at most ${this.backend.maxKeyBytes} UTF-8 bytes here (state kept in S3)`);
    }
    return value;
  }
}

/** The control plane's own store: `<data-dir>/function-state.db`. */
export class SqliteFetchState implements FetchStateBackend {
  readonly maxKeyBytes = MAX_FETCH_STATE_KEY_CHARS * 3;
  private readonly db: DatabaseSync;

  constructor(dataDir: string) {
    this.db = new DatabaseSync(join(dataDir, 'function-state.db'));
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS function_state (
        fn TEXT NOT NULL, key TEXT NOT NULL, text TEXT, bytes BLOB,
        PRIMARY KEY (fn, key)
      ) WITHOUT ROWID;`);
  }

  async get(fn: string, key: string): Promise<string | Uint8Array | null> {
    const row = this.db.prepare('SELECT text, bytes FROM function_state WHERE fn = ? AND key = ?').get(fn, key) as
      | { text: string | null; bytes: Uint8Array | null }
      | undefined;
    if (!row) return null;
    return row.text !== null ? row.text : new Uint8Array(row.bytes ?? new Uint8Array(0));
  }

  async usage(fn: string, key: string): Promise<NamespaceUsage> {
    const totals = this.db
      .prepare(`SELECT COUNT(*) AS n, COALESCE(SUM(length(key) + COALESCE(length(CAST(text AS BLOB)), 0) + COALESCE(length(bytes), 0)), 0) AS bytes,
                  COALESCE(SUM(CASE WHEN key = ? THEN length(key) + COALESCE(length(CAST(text AS BLOB)), 0) + COALESCE(length(bytes), 0) ELSE 0 END), 0) AS old,
                  COALESCE(SUM(key = ?), 0) AS present
                FROM function_state WHERE fn = ?`)
      .get(key, key, fn) as { n: number; bytes: number; old: number; present: number };
    return { keys: totals.n, bytes: totals.bytes, old: totals.old, present: totals.present > 0 };
  }

  async put(fn: string, key: string, value: string | Uint8Array): Promise<void> {
    const isText = typeof value === 'string';
    this.db
      .prepare('INSERT INTO function_state (fn, key, text, bytes) VALUES (?, ?, ?, ?) ON CONFLICT (fn, key) DO UPDATE SET text = excluded.text, bytes = excluded.bytes')
      .run(fn, key, isText ? value : null, isText ? null : value);
  }

  async delete(fn: string, key: string): Promise<void> {
    this.db.prepare('DELETE FROM function_state WHERE fn = ? AND key = ?').run(fn, key);
  }

  async list(fn: string, prefix: string, cursor: string, limit: number): Promise<string[]> {
    // TEXT compares with the BINARY collation: UTF-8 bytes, the order S3 lists in.
    const rows = this.db
      .prepare('SELECT key FROM function_state WHERE fn = ? AND key > ? AND substr(key, 1, ?) = ? ORDER BY key LIMIT ?')
      .all(fn, cursor, prefix.length, prefix, limit + 1) as Array<{ key: string }>;
    return rows.map((row) => row.key);
  }

  async drop(fn: string): Promise<void> {
    this.db.prepare('DELETE FROM function_state WHERE fn = ?').run(fn);
  }

  close(): void {
    this.db.close();
  }
}

function bad(message: string): TributaryError {
  return new TributaryError('ERR_BAD_REQUEST', message);
}
