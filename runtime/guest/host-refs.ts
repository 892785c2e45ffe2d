/**
 * The host capabilities a guest may use, as isolated-vm References handed to `install()`.
 * They are captured in closures by the bootstrap and never reachable from the global object.
 * Every host-side implementation treats its arguments as hostile (see runtime/host/host-bindings.ts).
 */
export interface HostReference {
  applySync(receiver: undefined, args: unknown[], options?: object): any;
  applyIgnored(receiver: undefined, args: unknown[], options?: object): void;
}

export interface HostRefs {
  /** (level: 'log'|'info'|'warn'|'error'|'debug', line: string) → void; synchronous. */
  log: HostReference;
  /** (byteLength: number ≤ 65536) → Uint8Array of cryptographically strong random bytes. */
  randomBytes: HostReference;
  /** (input: string, base: string | undefined) → UrlParts | null (null: invalid URL). */
  urlParse: HostReference;
  /** (href: string, component: keyof UrlParts, value: string) → UrlParts: WHATWG setter semantics. */
  urlSet: HostReference;
  /** (value) → copy made by V8's structured serializer; throws on uncloneable values. */
  structuredClone: HostReference;
  /** (timerId: number, delayMs: number) → void; the host later calls GuestApi.fireTimer(timerId). */
  setTimer: HostReference;
  /** (timerId: number) → void. */
  clearTimer: HostReference;
  /** (callId: number, result: GuestResult) → void: an asynchronous entry point has finished. */
  settle: HostReference;
  /**
   * (opId: number, kind: 'subtle', payload) → number: starts an asynchronous host operation; the
   * host later calls GuestApi.completeOp(opId, outcome). Answers the invocation's id (> 0), 0 when
   * no invocation runs (nothing started), -1 when too many operations are pending.
   */
  startOp: HostReference;
}

/** WHATWG URL components, as computed by the host's URL implementation. */
export interface UrlParts {
  href: string;
  origin: string;
  protocol: string;
  username: string;
  password: string;
  host: string;
  hostname: string;
  port: string;
  pathname: string;
  search: string;
  hash: string;
}
