/**
 * Deployments shared through the bucket: an append-only log of deploy events that every control
 * plane pointed at the bucket replays, in order, into its local registry and graph store.
 *
 *   deploy/log/<seq, 12 digits>.json   one event: a function version, a function delete, a graph put or delete
 *   deploy/code/<sha256>.<js|wasm>     function code, content-addressed, uploaded before any event names it
 *   deploy/bindings/<name>/<version>-<uuid>.json
 *                                      a version's vars, bucket bindings and sealed secrets, written before
 *                                      the event that names it (shared-bindings.ts); deleted with the version
 *
 * Appending is a compare-and-set on the next sequence number: `PUT deploy/log/<n+1>` with
 * `If-None-Match: *` (S3 conditional writes). A writer first catches up to the last event, builds
 * its event from that state (e.g. version = latest + 1), and retries from the catch-up when
 * another writer took the slot first. So the log has no gaps, every control plane applies the same
 * events in the same order, and version numbers are never given out twice.
 *
 * Each control plane remembers the last event it applied in a small cursor file next to its local
 * copy; applying an event is idempotent (it sets rows, never increments), so replaying the events
 * after the cursor — after a crash between applying one and saving the cursor — ends in the same state.
 * The log is never compacted: a new control plane replays it from the start (one GET per event).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FunctionKind } from '../../runtime/function-spec.ts';
import type { BindingNames } from '../../runtime/function-bindings.ts';
import type { FunctionVersion } from '../../runtime/function-registry.ts';
import type { StoredGraph } from '../../scheduler/graph-store.ts';
import type { Bucket } from './bucket.ts';

export type DeploymentEvent =
  /** `bindings`: the version's bindings object in the bucket, and their names (what a control plane that cannot open it still reports). */
  | { type: 'function-version'; version: FunctionVersion; bindings?: { key: string; names: BindingNames } }
  | { type: 'function-delete'; name: string }
  | { type: 'graph-put'; graph: StoredGraph }
  | { type: 'graph-delete'; name: string };

export type EventOrigin = 'local' | 'remote';

/** What an append does around its conditional write of an event it built (each attempt builds it anew). */
export interface AppendHooks<E> {
  /** Writes what the event names (e.g. its bindings object) before the event itself. */
  beforePut?(event: E): Promise<void>;
  /** Undoes `beforePut` when the event was not written: another writer took the slot, or the write failed. */
  discard?(event: E): Promise<void>;
}

export interface DeploymentLogOptions {
  bucket: Bucket;
  /** File keeping the sequence number of the last applied event. */
  cursorPath: string;
  /** Applies one event to the local copy. Must be idempotent; a throw stops the replay there (retried later). */
  apply(event: DeploymentEvent, seq: number, origin: EventOrigin): Promise<void>;
}

const LOG_PREFIX = 'deploy/log/';
const SEQ_DIGITS = 12;
const EVENT_KEY = /^deploy\/log\/(\d{12})\.json$/;
/** Give up an append after this many lost races in a row (a sign of something else than contention). */
const MAX_APPEND_ATTEMPTS = 50;

function logKey(seq: number): string {
  return `${LOG_PREFIX}${String(seq).padStart(SEQ_DIGITS, '0')}.json`;
}

export function codeKey(sha256: string, kind: FunctionKind): string {
  return `deploy/code/${sha256}.${kind}`;
}

export class DeploymentLog {
  private readonly options: DeploymentLogOptions;
  private applied: number;
  /** Catch-ups and appends run one at a time. */
  private lock: Promise<unknown> = Promise.resolve();

  constructor(options: DeploymentLogOptions) {
    this.options = options;
    this.applied = existsSync(options.cursorPath) ? Number(JSON.parse(readFileSync(options.cursorPath, 'utf8')).applied) : 0;
  }

  /** Sequence number of the last event applied locally. */
  get position(): number {
    return this.applied;
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.lock.then(work, work);
    this.lock = run.catch(() => {});
    return run;
  }

  /** Applies every event appended since the last one applied; returns how many. */
  sync(): Promise<number> {
    return this.exclusive(() => this.catchUp());
  }

  private async catchUp(): Promise<number> {
    const { bucket } = this.options;
    const keys = await bucket.list(LOG_PREFIX, logKey(this.applied));
    let count = 0;
    for (const key of keys) {
      // Only whole event keys: S3Proxy's filesystem backend lists an object being written under a
      // temporary name (`<key>-<uuid>`), which is gone by the time it is read.
      const match = EVENT_KEY.exec(key);
      if (!match) continue;
      const seq = Number(match[1]);
      if (!Number.isSafeInteger(seq) || seq <= this.applied) continue;
      const body = await bucket.get(key);
      if (body === null) throw new Error(`deploy log event ${key} vanished while being read`);
      await this.options.apply(JSON.parse(Buffer.from(body).toString('utf8')) as DeploymentEvent, seq, 'remote');
      this.advance(seq);
      count++;
    }
    return count;
  }

  /**
   * Appends the event `make` builds from the caught-up local state (null: nothing to append),
   * applies it locally, and returns it. Throws ERR_S3_UNAVAILABLE when the bucket fails.
   */
  append<E extends DeploymentEvent>(make: () => E | null, hooks: AppendHooks<E> = {}): Promise<E | null> {
    return this.exclusive(async () => {
      for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt++) {
        await this.catchUp();
        const event = make();
        if (event === null) return null;
        const seq = this.applied + 1;
        await hooks.beforePut?.(event);
        let written: boolean;
        try {
          written = await this.options.bucket.putIfAbsent(logKey(seq), JSON.stringify(event));
        } catch (error) {
          await hooks.discard?.(event).catch(() => {});
          throw error;
        }
        if (written) {
          await this.options.apply(event, seq, 'local');
          this.advance(seq);
          return event;
        }
        // Another control plane appended first: catch up with it and build the event again.
        await hooks.discard?.(event).catch(() => {});
      }
      throw new Error(`could not append to the deploy log after ${MAX_APPEND_ATTEMPTS} attempts`);
    });
  }

  private advance(seq: number): void {
    this.applied = seq;
    mkdirSync(dirname(this.options.cursorPath), { recursive: true });
    const temp = `${this.options.cursorPath}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify({ applied: seq }));
    renameSync(temp, this.options.cursorPath);
  }
}
