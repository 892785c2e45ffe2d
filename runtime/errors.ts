/**
 * The closed list of error codes the platform reports, with the classification that drives
 * behaviour: the HTTP status a caller sees, whether the fault is the caller's (`user`) or ours
 * (`system`), whether retrying the same call can succeed (`retriable`), and what the delivery
 * engine (scheduler/partition-worker.ts) does with a batch that failed with it (`handling`):
 *
 *   retry   the records are not at fault (a host, S3 or Kafka is down, the queue is full, the
 *           function version does not load, a bug of ours): back off and retry the same batch.
 *           Waiting is right even for a non-retriable call such as ERR_COMPILE: a redeploy fixes
 *           it, and dead-lettering a partition's records because of it would lose them.
 *   bisect  a record may be at fault (it threw, ran out of time, memory or CPU, crashed its host):
 *           split the batch until the records responsible are alone, retry each alone up to the
 *           node's attempts, then dead-letter it with the error; the rest of the batch proceeds.
 *   never   a record is at fault and retrying it cannot help (its output cannot cross the
 *           boundary, is too large or too deep): split down to the record, dead-letter it at once.
 *           For an HTTP call: fail it.
 *
 * Foreign errors (isolated-vm, V8, node) are translated into these exactly once, at the boundary
 * where they surface (see `runtime/host/translate-error.ts`).
 */
export const ERROR_CODES = {
  /** JavaScript source failed to parse or link; the message carries line and column. */
  ERR_COMPILE: { status: 400, kind: 'user', retriable: false, handling: 'retry' },
  /** Bytes are not a valid WebAssembly module, or it does not export the Tributary byte ABI. */
  ERR_WASM_INVALID: { status: 400, kind: 'user', retriable: false, handling: 'retry' },
  /** Request is malformed: bad query parameter, unsupported content type, bad name. */
  ERR_BAD_REQUEST: { status: 400, kind: 'user', retriable: false, handling: 'never' },
  /**
   * A byte limit was exceeded: a request body, a function's response (body or header bytes), a
   * batch's emitted bytes, or any message that would not fit the host channel. Fails that call only.
   */
  ERR_TOO_LARGE: { status: 413, kind: 'user', retriable: false, handling: 'never' },
  /** A JSON value (ingested record, emitted value) nests deeper than MAX_JSON_DEPTH. */
  ERR_TOO_DEEP: { status: 400, kind: 'user', retriable: false, handling: 'never' },
  /** A count limit was reached (functions, graphs, emits per record); the limit is in the message. */
  ERR_QUOTA_EXCEEDED: { status: 400, kind: 'user', retriable: false, handling: 'never' },
  /** A graph exceeds a size limit (nodes, edges, partitions, replicas.max); `problems` says which. */
  ERR_GRAPH_TOO_LARGE: { status: 400, kind: 'user', retriable: false, handling: 'never' },
  /** The request body did not arrive within BODY_READ_TIMEOUT_MS. */
  ERR_BODY_TIMEOUT: { status: 408, kind: 'user', retriable: true, handling: 'retry' },
  /**
   * The function's queue on its host is full (MAX_QUEUED_CALLS_PER_INSTANCE calls, or
   * MAX_QUEUED_BYTES_PER_HOST bytes waiting): nothing ran; retry after `Retry-After` seconds.
   */
  ERR_OVERLOADED: { status: 503, kind: 'system', retriable: true, handling: 'retry' },
  /** No function (or graph) with that name. */
  ERR_NOT_FOUND: { status: 404, kind: 'user', retriable: false, handling: 'retry' },
  /** Missing or wrong bearer token. */
  ERR_UNAUTHORIZED: { status: 401, kind: 'user', retriable: false, handling: 'never' },
  /** The function threw (or its returned promise rejected, or a WASM trap). */
  ERR_FN_THREW: { status: 500, kind: 'user', retriable: false, handling: 'bisect' },
  /** The function exceeded its `timeoutMs`; its isolate is discarded. */
  ERR_FN_TIMEOUT: { status: 504, kind: 'user', retriable: false, handling: 'bisect' },
  /** The function used more than its CPU-time budget (`cpuLimitMs`); its isolate is discarded. */
  ERR_FN_CPU_LIMIT: { status: 503, kind: 'user', retriable: false, handling: 'bisect' },
  /** The function exceeded its `memoryLimitMb`; its isolate is discarded. */
  ERR_FN_OOM: { status: 503, kind: 'user', retriable: false, handling: 'bisect' },
  /** The function returned something that is not a Response (or WASM broke the ABI). */
  ERR_FN_BAD_RESPONSE: { status: 500, kind: 'user', retriable: false, handling: 'bisect' },
  /**
   * A value the function emitted cannot leave the isolate as data: a function, symbol, BigInt,
   * cyclic value, Map or Set (runtime/guest/output-copy.ts). Fails that record only.
   */
  ERR_FN_BAD_OUTPUT: { status: 500, kind: 'user', retriable: false, handling: 'never' },
  /** A graph spec is invalid; `problems` lists every issue with its JSON path. */
  ERR_GRAPH_INVALID: { status: 400, kind: 'user', retriable: false, handling: 'never' },
  /** A graph's edges form a cycle (part of ERR_GRAPH_INVALID problems, or the code when it is the only kind). */
  ERR_GRAPH_CYCLE: { status: 400, kind: 'user', retriable: false, handling: 'never' },
  /**
   * An ingest request holds more records than the edge's whole queue (`maxLagRecords`) could ever
   * take: retrying cannot succeed. Split it into smaller requests.
   */
  ERR_INGEST_TOO_LARGE: { status: 413, kind: 'user', retriable: false, handling: 'never' },
  /** Queues are full: retry after the `Retry-After` seconds. Nothing of the request was accepted. */
  ERR_BACKPRESSURE: { status: 429, kind: 'system', retriable: true, handling: 'retry' },
  /** The host process running the call died (V8 abort, kill -9); it is being restarted. */
  ERR_HOST_CRASHED: { status: 503, kind: 'system', retriable: true, handling: 'bisect' },
  /** No host process is available to run the call (all restarting, or shutting down). */
  ERR_UNAVAILABLE: { status: 503, kind: 'system', retriable: true, handling: 'retry' },
  /**
   * The S3 settings do not work, found at startup: the bucket does not exist, the credentials are
   * rejected, or the endpoint does not answer. The message names the setting to fix.
   */
  ERR_S3_CONFIG: { status: 500, kind: 'user', retriable: false, handling: 'retry' },
  /**
   * An S3 request failed while running (server down, timeout, throttled, bucket gone): the batch
   * or deploy that needed it failed without effect and can be retried.
   */
  ERR_S3_UNAVAILABLE: { status: 503, kind: 'system', retriable: true, handling: 'retry' },
  /**
   * S3 refused the platform's credentials for a bucket (403 AccessDenied, unknown key id,
   * signature mismatch, expired token) while running: a bucket binding's call or an S3 sink's
   * publish. Nothing was written; the operator fixes the credentials and the sink retries.
   */
  ERR_S3_ACCESS_DENIED: { status: 502, kind: 'system', retriable: false, handling: 'retry' },
  /**
   * (S3 sink status) records left the sink log by its retention before the S3 sink published
   * them (an outage longer than the retention): they are in no file; the message says which offsets.
   */
  ERR_S3_SINK_EXPIRED: { status: 500, kind: 'system', retriable: false, handling: 'never' },
  /** The bucket a binding or an S3 sink names does not exist at the platform's S3 endpoint. */
  ERR_S3_NO_SUCH_BUCKET: { status: 502, kind: 'system', retriable: false, handling: 'retry' },
  /**
   * The Kafka brokers of a source, sink or edge cannot be reached (refused, timed out, no
   * metadata). A deploy answering it has still stored the graph: its Kafka edges show as degraded
   * in `GET /v1/graphs/{name}` and retry with backoff. Mapped from kafkajs errors in one table,
   * `connectors/kafka/kafka-errors.ts`.
   */
  ERR_KAFKA_UNAVAILABLE: { status: 503, kind: 'system', retriable: true, handling: 'retry' },
  /** A seek refused: an offset below the first one the source edge still keeps, or above its head (`details.partitions` says each one's range). */
  ERR_OFFSET_OUT_OF_RANGE: { status: 400, kind: 'user', retriable: false, handling: 'never' },
  /** A seek of a Kafka edge whose consumer group still has members in another process: the brokers refuse to move its offsets. */
  ERR_SEEK_CONFLICT: { status: 409, kind: 'user', retriable: true, handling: 'retry' },
  /**
   * A transactional producer was fenced: a newer producer with the same transactionalId (the new
   * owner of the input partition) exists. Its transaction is aborted; the new owner redoes it.
   */
  ERR_KAFKA_FENCED: { status: 409, kind: 'system', retriable: true, handling: 'retry' },
  /** The broker refused a request for good (authorization, invalid topic, record too large). */
  ERR_KAFKA_REJECTED: { status: 502, kind: 'system', retriable: false, handling: 'bisect' },
  /**
   * A deploy carries secrets to a shared bucket but this control plane has no secrets key
   * (`serve --secrets-key-file`, $TRIBUTARY_SECRETS_KEY): secrets are never written to the bucket
   * in plaintext. Nothing of the deploy was written; the operator configures the key.
   */
  ERR_SECRETS_KEY_REQUIRED: { status: 500, kind: 'user', retriable: false, handling: 'never' },
  /** The secrets key setting is unreadable or not 32 bytes in base64 or hex (found at startup). */
  ERR_SECRETS_KEY_INVALID: { status: 500, kind: 'user', retriable: false, handling: 'never' },
  /**
   * This control plane cannot open the function version's secrets from the shared bucket (another
   * key sealed them, none is configured here, or the object is gone or altered): its invokes fail
   * with this until the operator gives the right key (and restarts) or the function is redeployed.
   */
  ERR_SECRETS_UNAVAILABLE: { status: 503, kind: 'system', retriable: false, handling: 'retry' },
  /** A bug in Tributary itself. */
  ERR_INTERNAL: { status: 500, kind: 'system', retriable: false, handling: 'retry' },
} as const satisfies Record<string, ErrorClass>;

export type ErrorHandling = 'retry' | 'bisect' | 'never';

export interface ErrorClass {
  status: number;
  kind: 'user' | 'system';
  retriable: boolean;
  handling: ErrorHandling;
}

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  /** Machine-readable specifics, e.g. `line`/`column` for ERR_COMPILE. */
  [detail: string]: unknown;
}

export interface TributaryErrorOptions extends ErrorOptions {
  details?: Record<string, unknown>;
}

/** The one error type the platform throws on purpose. */
export class TributaryError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options?: TributaryErrorOptions) {
    super(message, options);
    this.name = 'TributaryError';
    this.code = code;
    this.details = options?.details ?? {};
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get retriable(): boolean {
    return ERROR_CODES[this.code].retriable;
  }

  /** What the delivery engine does with a batch that failed with this error (see the table). */
  get handling(): ErrorHandling {
    return ERROR_CODES[this.code].handling;
  }

  toJSON(): ErrorBody {
    return { ...this.details, code: this.code, message: this.message };
  }

  static fromBody(body: ErrorBody): TributaryError {
    const { code, message, ...details } = body;
    return new TributaryError(isErrorCode(code) ? code : 'ERR_INTERNAL', String(message), { details });
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** Anything thrown, as a TributaryError; unknown errors become ERR_INTERNAL without leaking detail. */
export function asTributaryError(error: unknown): TributaryError {
  if (error instanceof TributaryError) return error;
  return new TributaryError('ERR_INTERNAL', 'internal error', { cause: error });
}
