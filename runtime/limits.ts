/** Per-function defaults and hard ceilings. Every limit names its unit. */

/** Default isolate heap limit. isolated-vm documents this as a guideline: a hostile function can
 * overshoot it 2-3x before V8 notices, which is why isolates live in supervised host processes. */
export const DEFAULT_MEMORY_LIMIT_MB = 128;
export const MIN_MEMORY_LIMIT_MB = 8;
export const MAX_MEMORY_LIMIT_MB = 2048;

/** Default wall-clock budget for one invocation, including its timers and awaited promises. */
export const DEFAULT_TIMEOUT_MS = 1000;
export const MIN_TIMEOUT_MS = 1;
export const MAX_TIMEOUT_MS = 300_000;

/** Upload and invoke request bodies, and function responses. */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;

/** Console lines kept per function (ring buffer in the control plane) and per-line cap. */
export const LOG_LINES_PER_FUNCTION = 1000;
export const MAX_LOG_LINE_BYTES = 8 * 1024;
/** Console lines one invocation may emit before further lines are dropped. */
export const MAX_LOG_LINES_PER_INVOCATION = 200;
/** Bytes of console text kept per function (oldest lines dropped first), beside the line count. */
export const LOG_BYTES_PER_FUNCTION = 1024 * 1024;
/** Functions whose console output is kept; the least recently written one is dropped beyond. */
export const LOG_FUNCTIONS_KEPT = 1000;
/** Bytes of console text kept over all functions (least recently written functions dropped first). */
export const LOG_BYTES_TOTAL = 64 * 1024 * 1024;

/*
 * Platform ceilings. Each is enforced at the boundary where the value arrives and answered with
 * its own error code (see the limits table in README.md); none is a 500.
 */

/** CPU time one invocation may use, timers and awaits included (default: its timeoutMs, capped here). */
export const MAX_CPU_LIMIT_MS = 30_000;

/** Deployed functions per platform (ERR_QUOTA_EXCEEDED beyond). */
export const MAX_FUNCTIONS = 10_000;
/** Versions kept per function: older ones are pruned (code and isolates released once idle). */
export const MAX_VERSIONS_PER_FUNCTION = 10;

/** Graph size ceilings (ERR_GRAPH_TOO_LARGE). */
export const MAX_GRAPHS = 1000;
export const MAX_GRAPH_NODES = 256;
export const MAX_GRAPH_EDGES = 1024;
export const MAX_EDGE_PARTITIONS = 256;
/** Partitions over all edges of one graph: each is a log partition and a consumer task. */
export const MAX_GRAPH_PARTITIONS = 4096;
/**
 * replicas.max per node. A replica is one isolate; a host keeps at most 256 loaded instances and
 * runs one isolate per core at a time, so more replicas than this cannot add capacity on one machine.
 */
export const MAX_REPLICAS = 64;

/** Nesting depth of JSON values: ingested records, emitted values (ERR_TOO_DEEP). */
export const MAX_JSON_DEPTH = 64;
/** Bytes of a function response's header names and values together. */
export const MAX_RESPONSE_HEADER_BYTES = 64 * 1024;
/** Outputs one input record may emit (ERR_QUOTA_EXCEEDED fails that record). */
export const MAX_EMITS_PER_RECORD = 10_000;
/** Bytes of everything one batch emits (ERR_TOO_LARGE fails that batch). */
export const MAX_BATCH_OUTPUT_BYTES = 64 * 1024 * 1024;
/**
 * Bytes of the records one batch reads from an edge (and one sink or dead-letter read returns),
 * besides MAX_BATCH_RECORDS: a batch stops at whichever comes first, but always holds at least one
 * record, so a record larger than this still goes, alone.
 */
export const MAX_BATCH_INPUT_BYTES = 4 * 1024 * 1024;
/** Largest message on the control plane ↔ host channel; a bigger result fails its call with ERR_TOO_LARGE. */
export const MAX_CHANNEL_MESSAGE_BYTES = 128 * 1024 * 1024;

/** A request body must arrive within this long after its headers (ERR_BODY_TIMEOUT). */
export const BODY_READ_TIMEOUT_MS = 30_000;
/**
 * Bytes of request bodies being read at once, over all requests (503 ERR_OVERLOADED beyond, with
 * Retry-After): many slow clients each sending MAX_BODY_BYTES cannot add up past it.
 */
export const MAX_INFLIGHT_BODY_BYTES = 256 * 1024 * 1024;

/** Calls waiting for one function instance on a host, beyond the ones running (ERR_OVERLOADED beyond). */
export const MAX_QUEUED_CALLS_PER_INSTANCE = 64;
/** Payload bytes of calls waiting on one host (ERR_OVERLOADED beyond). */
export const MAX_QUEUED_BYTES_PER_HOST = 256 * 1024 * 1024;
/** Instances of one function version a host runs side by side when calls overlap (HTTP; a graph replica is always one). */
export const MAX_INSTANCES_PER_FUNCTION = 4;

/** Longest idle time a graph (or node) may set before scaling to zero: 7 days (ERR_GRAPH_INVALID beyond). */
export const MAX_SCALE_TO_ZERO_AFTER_MS = 7 * 24 * 60 * 60 * 1000;
/** Largest `slo.latencyMs` of a graph: 1 hour (ERR_GRAPH_INVALID beyond). */
export const MAX_SLO_LATENCY_MS = 3_600_000;
/** Guest timers (setTimeout/setInterval) one invocation may have pending at once; setTimeout throws beyond. */
export const MAX_TIMERS_PER_INVOCATION = 1000;
/** Longest `retention.maxAgeMs` a graph or sink may set for its sink and dead-letter logs: 365 days (ERR_GRAPH_INVALID beyond). */
export const MAX_RETENTION_AGE_MS = 365 * 24 * 60 * 60 * 1000;
/** Largest `retention.maxBytes` per sink or dead-letter partition: 1 TiB (ERR_GRAPH_INVALID beyond). */
export const MAX_RETENTION_BYTES = 1024 ** 4;

/** Host operations (crypto.subtle calls) one invocation may have pending at once (RangeError in the function beyond). */
export const MAX_PENDING_HOST_OPS = 64;
/**
 * Bytes of input the host operations of one invocation may hold at once (data to digest,
 * encrypt, compress, upload...): RangeError ERR_OVERLOADED in the function beyond. Without it,
 * 64 digests of one 10 MiB buffer make the host keep 640 MiB for a single call.
 */
export const MAX_HOST_OP_BYTES_PER_INVOCATION = 64 * 1024 * 1024;
/** The same bound over every invocation of a host process, so tenants together cannot push a host into its memory guard. */
export const MAX_HOST_OP_BYTES_PER_HOST = 512 * 1024 * 1024;
/** Outbound fetch() calls one invocation may make (Workers' free plan allows 50); TypeError ERR_SUBREQUEST_LIMIT beyond. */
export const MAX_SUBREQUESTS_PER_INVOCATION = 50;
/** Bytes of subrequest response bodies one invocation may receive in all (each is also bounded by MAX_BODY_BYTES). */
export const MAX_SUBREQUEST_BYTES_PER_INVOCATION = 32 * 1024 * 1024;

/** Bucket binding calls (get, put, list, multipart parts, ...) one invocation may make; RangeError ERR_BUCKET_CALL_LIMIT beyond. */
export const MAX_BUCKET_CALLS_PER_INVOCATION = 256;
/** Bytes one invocation may read and write through its bucket bindings in all (each call also at most MAX_BODY_BYTES); RangeError ERR_TOO_LARGE beyond. */
export const MAX_BUCKET_BYTES_PER_INVOCATION = 64 * 1024 * 1024;
