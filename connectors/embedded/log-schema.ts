/**
 * The embedded log's database file (`log.db`): its tables, and the migrations that bring a
 * database written by an older version up to date in place.
 *
 * Disk reuse: rows deleted by retention free their pages. SQLite reuses free pages for later
 * inserts whatever the settings, so a log whose retention keeps up stays at its high-water mark;
 * `auto_vacuum = INCREMENTAL` additionally lets the log hand free pages back to the file system
 * (`PRAGMA incremental_vacuum(n)`, run by the log in small steps). That mode can only be chosen
 * before the first table exists: a new database gets it; an existing one without it is converted
 * by a VACUUM at open when it is small enough to rewrite quickly (`vacuumOnOpenMaxBytes`), and
 * otherwise keeps reusing its free pages without shrinking.
 */
import { statSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';

/** `PRAGMA auto_vacuum` values. */
const AUTO_VACUUM_NONE = 0;
const AUTO_VACUUM_INCREMENTAL = 2;

/** The WAL file is truncated back to this size when a checkpoint resets it (SQLite keeps it at its peak otherwise). */
export const WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024;

export interface LogDatabaseOptions {
  /** `synchronous` of the connection: FULL syncs the WAL at every commit, NORMAL only at checkpoints. */
  synchronous: 'FULL' | 'NORMAL';
  /** An existing database without incremental auto-vacuum up to this size is converted by a VACUUM at open. */
  vacuumOnOpenMaxBytes: number;
}

export interface LogDatabase {
  db: DatabaseSync;
  /** Whether free pages can be returned to the file system (`incremental_vacuum`). */
  incrementalVacuum: boolean;
}

export function openLogDatabase(path: string, options: LogDatabaseOptions): LogDatabase {
  const db = new DatabaseSync(path);
  db.exec('PRAGMA busy_timeout = 5000');
  const fresh = (db.prepare("SELECT count(*) AS n FROM sqlite_schema").get() as { n: number }).n === 0;
  // Before journal_mode and before any table: auto_vacuum is fixed once the first table exists.
  if (fresh) db.exec(`PRAGMA auto_vacuum = INCREMENTAL`);
  else if (autoVacuum(db) === AUTO_VACUUM_NONE && fileSize(path) <= options.vacuumOnOpenMaxBytes) {
    db.exec('PRAGMA auto_vacuum = INCREMENTAL');
    db.exec('VACUUM');
  }
  db.exec(`
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = ${options.synchronous};
    PRAGMA journal_size_limit = ${WAL_SIZE_LIMIT_BYTES};
    CREATE TABLE IF NOT EXISTS topics (topic TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
    -- bytes and appended_at before the payload: reading them never walks the payload's overflow pages.
    CREATE TABLE IF NOT EXISTS batches (
      topic TEXT NOT NULL, partition INTEGER NOT NULL, base INTEGER NOT NULL, count INTEGER NOT NULL,
      bytes INTEGER, appended_at INTEGER NOT NULL, payload BLOB NOT NULL,
      PRIMARY KEY (topic, partition, base)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS offsets (
      grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
      PRIMARY KEY (grp, topic, partition)) WITHOUT ROWID;
    -- The groups reading a partition (retention's min(next)); next is not indexed, so commits do not rewrite it.
    CREATE INDEX IF NOT EXISTS offsets_by_partition ON offsets (topic, partition);
    -- First offset still stored, once retention deleted the batches below it (the head when none is left).
    CREATE TABLE IF NOT EXISTS log_starts (
      topic TEXT NOT NULL, partition INTEGER NOT NULL, start INTEGER NOT NULL,
      PRIMARY KEY (topic, partition)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, committed_at INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS state (
      ns TEXT NOT NULL, partition INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, -- BLOB affinity: text stays text
      PRIMARY KEY (ns, partition, key)) WITHOUT ROWID;`);
  migrateBatches(db);
  db.exec('CREATE INDEX IF NOT EXISTS idempotency_by_time ON idempotency (committed_at)');
  return { db, incrementalVacuum: autoVacuum(db) === AUTO_VACUUM_INCREMENTAL };
}

/**
 * Databases from before retention have batches without `bytes` and `appended_at`. ADD COLUMN
 * does not rewrite rows: old rows read `bytes` as NULL (the log counts `length(payload)` for
 * them) and `appended_at` as the migration time, so age retention counts their age from the
 * upgrade rather than deleting the whole history at once.
 */
function migrateBatches(db: DatabaseSync): void {
  const columns = new Set((db.prepare('SELECT name FROM pragma_table_info(?)').all('batches') as Array<{ name: string }>).map((c) => c.name));
  if (!columns.has('bytes')) db.exec('ALTER TABLE batches ADD COLUMN bytes INTEGER');
  if (!columns.has('appended_at')) db.exec(`ALTER TABLE batches ADD COLUMN appended_at INTEGER NOT NULL DEFAULT ${Date.now()}`);
}

function autoVacuum(db: DatabaseSync): number {
  return Number((db.prepare('PRAGMA auto_vacuum').get() as { auto_vacuum: number }).auto_vacuum);
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
