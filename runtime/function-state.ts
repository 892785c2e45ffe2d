/**
 * `env.STATE` for `fetch` handlers: one R2-like namespace per function, kept by the control plane
 * in `<data-dir>/function-state.db` (SQLite, WAL), so every host sees the same values (a write is
 * visible to the next call wherever it runs). Hosts reach it through the host channel
 * (`stateCall` messages); arguments come from tenant code and are checked here. Deleted with the
 * function. Not shared through S3: each control plane keeps its own.
 */
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { TributaryError } from './errors.ts';

export const MAX_FETCH_STATE_VALUE_BYTES = 1024 * 1024;
export const MAX_FETCH_STATE_KEY_CHARS = 1024;
/** Keys per function namespace (ERR_QUOTA_EXCEEDED beyond). */
export const MAX_FETCH_STATE_KEYS = 10_000;
/** Bytes of keys and values per function namespace (ERR_QUOTA_EXCEEDED beyond): what a tenant can make the control plane store. */
export const MAX_FETCH_STATE_BYTES = 64 * 1024 * 1024;
const MAX_LIST = 1000;

export type StateCallResult =
  | { ok: true; value: unknown }
  | { ok: false; error: { name: string; message: string; code: string } };

export class FunctionStateStore {
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

  /** One call from a function's `env.STATE`; never throws. */
  call(fn: string, op: unknown, args: unknown): StateCallResult {
    try {
      return { ok: true, value: this.run(fn, op, Array.isArray(args) ? args : []) };
    } catch (error) {
      const e = error instanceof TributaryError ? error : new TributaryError('ERR_INTERNAL', 'state operation failed');
      const name = e.code === 'ERR_BAD_REQUEST' ? 'TypeError' : 'RangeError';
      return { ok: false, error: { name, message: `${e.code}: ${e.message}`, code: e.code } };
    }
  }

  private run(fn: string, op: unknown, args: unknown[]): unknown {
    switch (op) {
      case 'get': {
        const row = this.db.prepare('SELECT text, bytes FROM function_state WHERE fn = ? AND key = ?').get(fn, key(args[0])) as
          | { text: string | null; bytes: Uint8Array | null }
          | undefined;
        if (!row) return null;
        return row.text !== null ? row.text : new Uint8Array(row.bytes ?? new Uint8Array(0));
      }
      case 'put': {
        const k = key(args[0]);
        const value = args[1];
        const isText = typeof value === 'string';
        if (!isText && !(value instanceof Uint8Array)) throw bad('state values are strings, ArrayBuffers or ArrayBufferViews');
        const size = isText ? Buffer.byteLength(value) : value.byteLength;
        if (size > MAX_FETCH_STATE_VALUE_BYTES) throw new TributaryError('ERR_TOO_LARGE', `state values are at most ${MAX_FETCH_STATE_VALUE_BYTES} bytes`);
        const totals = this.db
          .prepare(`SELECT COUNT(*) AS n, COALESCE(SUM(length(key) + COALESCE(length(CAST(text AS BLOB)), 0) + COALESCE(length(bytes), 0)), 0) AS bytes,
                      COALESCE(SUM(CASE WHEN key = ? THEN length(key) + COALESCE(length(CAST(text AS BLOB)), 0) + COALESCE(length(bytes), 0) ELSE 0 END), 0) AS old,
                      COALESCE(SUM(key = ?), 0) AS present
                    FROM function_state WHERE fn = ?`)
          .get(k, k, fn) as { n: number; bytes: number; old: number; present: number };
        if (!totals.present && totals.n >= MAX_FETCH_STATE_KEYS) throw new TributaryError('ERR_QUOTA_EXCEEDED', `a function's STATE holds at most ${MAX_FETCH_STATE_KEYS} keys`);
        if (totals.bytes - totals.old + k.length + size > MAX_FETCH_STATE_BYTES) {
          throw new TributaryError('ERR_QUOTA_EXCEEDED', `a function's STATE holds at most ${MAX_FETCH_STATE_BYTES} bytes`);
        }
        this.db
          .prepare('INSERT INTO function_state (fn, key, text, bytes) VALUES (?, ?, ?, ?) ON CONFLICT (fn, key) DO UPDATE SET text = excluded.text, bytes = excluded.bytes')
          .run(fn, k, isText ? value : null, isText ? null : value);
        return null;
      }
      case 'delete':
        this.db.prepare('DELETE FROM function_state WHERE fn = ? AND key = ?').run(fn, key(args[0]));
        return null;
      case 'list': {
        const options = (typeof args[0] === 'object' && args[0] !== null ? args[0] : {}) as Record<string, unknown>;
        const prefix = options.prefix === undefined ? '' : key(options.prefix, true);
        const cursor = options.cursor === undefined ? '' : key(options.cursor, true);
        const limit = options.limit === undefined ? MAX_LIST : Number(options.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST) throw bad(`list limit must be an integer in [1, ${MAX_LIST}]`);
        const rows = this.db
          .prepare('SELECT key FROM function_state WHERE fn = ? AND key > ? AND substr(key, 1, ?) = ? ORDER BY key LIMIT ?')
          .all(fn, cursor, prefix.length, prefix, limit + 1) as Array<{ key: string }>;
        const truncated = rows.length > limit;
        const keys = rows.slice(0, limit).map((row) => row.key);
        return { keys, truncated, cursor: truncated ? keys[keys.length - 1] : undefined };
      }
      default:
        throw bad('unknown STATE operation');
    }
  }

  /** Removes a deleted function's namespace. */
  dropFunction(fn: string): void {
    this.db.prepare('DELETE FROM function_state WHERE fn = ?').run(fn);
  }

  close(): void {
    this.db.close();
  }
}

function bad(message: string): TributaryError {
  return new TributaryError('ERR_BAD_REQUEST', message);
}

function key(value: unknown, allowEmpty = false): string {
  if (typeof value !== 'string' || (!allowEmpty && value.length === 0) || value.length > MAX_FETCH_STATE_KEY_CHARS) {
    throw bad(`state keys are ${allowEmpty ? '' : 'non-empty '}strings of at most ${MAX_FETCH_STATE_KEY_CHARS} characters`);
  }
  return value;
}
