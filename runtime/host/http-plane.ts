/**
 * A host's HTTP plane: the client connections the control plane accepted and handed to this host
 * (over the Node IPC channel, as Node's cluster round-robin does) are served here by node:http.
 * An invoke of a function in the routing table runs on this host's FunctionLanes and its
 * response is written to the socket: no control-plane hop. Anything else on the connection — the
 * management API, /metrics, the console, a name this host does not know — is proxied, streaming
 * both ways, to the control plane's internal listener (a unix socket), so every route works on
 * every connection.
 *
 * The invoke semantics are api/invoke-semantics.ts, the body reader api/body.ts and the error
 * rendering api/errors.ts: the same code the control plane's invoke route runs. Metrics and
 * console lines go to the control plane as aggregated deltas (runtime/invoke-telemetry.ts).
 * Nothing a tenant or client controls can throw out of a handler here: every path ends in a
 * rendered error or a destroyed socket.
 */
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { BodyBudget, nodeBodySource, readChunks, type BodyLimits } from '../../api/body.ts';
import { renderError } from '../../api/errors.ts';
import { httpServerOptions } from '../../api/http-options.ts';
import { checkResponseHead, invokeTarget, isForwarded, NO_BODY_METHODS, plainUrlParts, tokenMatcher, wireRequest, type ResponseHead, type TokenMatcher, type UrlParts } from '../../api/invoke-semantics.ts';
import { TributaryError } from '../errors.ts';
import type { FunctionSpec } from '../function-spec.ts';
import type { WireResponse } from '../guest/wire.ts';
import type { HttpPlaneConfig, InvokeRoute } from '../host-protocol.ts';
import type { TelemetryTally } from '../invoke-telemetry.ts';
import type { LogLine } from './function-instance.ts';
import type { IsolatePool } from './isolate-pool.ts';
import type { ResponseSink } from './isolate-slot.ts';

/** Client connections one host holds at once; Node closes further ones at once. */
const MAX_CONNECTIONS = 16_384;
/** Sockets to the control plane's internal listener (proxied requests beyond wait in the agent's queue). */
const MAX_PROXY_SOCKETS = 256;
/** A Host header we put in a URL as is; anything else goes to the control plane, which judges it. */
const PLAIN_HOST = /^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;
/** Bodies up to this size are written together with the response head. */
const JOIN_BODY_BELOW_BYTES = 16 * 1024;
/** Request headers that describe the client's connection, not the request: not sent upstream. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'expect']);

export interface HttpPlaneOptions {
  pool: IsolatePool;
  telemetry: TelemetryTally;
}

export class HttpPlane {
  private readonly pool: IsolatePool;
  private readonly telemetry: TelemetryTally;
  private readonly routes = new Map<string, FunctionSpec>();
  private server: Server | null = null;
  private agent: Agent | null = null;
  private config: HttpPlaneConfig | null = null;
  private body: BodyLimits | null = null;
  private token: TokenMatcher | null = null;
  private open = 0;

  constructor(options: HttpPlaneOptions) {
    this.pool = options.pool;
    this.telemetry = options.telemetry;
  }

  /** Client connections open now (reported in the heartbeat: the control plane's routing policy). */
  get connections(): number {
    return this.open;
  }

  configure(config: HttpPlaneConfig): void {
    this.config = config;
    this.token = tokenMatcher(config.token);
    this.body = { maxBytes: config.maxBodyBytes, timeoutMs: config.bodyReadTimeoutMs, budget: new BodyBudget(config.maxInflightBodyBytes) };
    if (this.server) return;
    this.agent = new Agent({ keepAlive: true, maxSockets: MAX_PROXY_SOCKETS, maxFreeSockets: 32 });
    const server = createServer({ ...httpServerOptions(config.bodyReadTimeoutMs) }, (req, res) => this.onRequest(req, res));
    server.maxConnections = MAX_CONNECTIONS;
    server.on('connection', (socket: Socket) => {
      this.open++;
      socket.once('close', () => this.open--);
    });
    // A malformed request (header flood, bad framing): Node's default answer, then the socket goes.
    server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
      if (socket.writable && !socket.writableEnded) {
        const status = error.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
        socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      }
      socket.destroy();
    });
    // This server never listens (its connections arrive over IPC), but Node arms the checks of
    // headersTimeout and requestTimeout on 'listening': without them a stalled client would pin its connection.
    server.emit('listening');
    this.server = server;
  }

  setRoutes(replace: boolean, routes: InvokeRoute[]): void {
    if (replace) this.routes.clear();
    for (const [name, spec] of routes) {
      if (spec === null) this.routes.delete(name);
      else this.routes.set(name, spec);
    }
  }

  /** Takes a connection the control plane handed over. */
  accept(socket: Socket): void {
    const server = this.server;
    if (server === null || this.open >= MAX_CONNECTIONS) return void socket.destroy();
    socket.on('error', () => {});
    server.emit('connection', socket);
    socket.resume();
  }

  /** Stops taking requests; resolves when the open ones ended or after `graceMs`. */
  close(graceMs: number): Promise<void> {
    const server = this.server;
    if (server === null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.closeAllConnections();
        resolve();
      }, graceMs);
      server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      server.closeIdleConnections();
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const spec = this.route(req);
    if (spec === null) {
      try {
        return this.proxy(req, res);
      } catch (error) {
        return this.fail(res, error);
      }
    }
    this.invoke(spec.spec, spec.url, spec.name, spec.rest, req, res).catch((error: unknown) => {
      // The body was refused or cut short: answer, then close (what is left of it is not read).
      if (!req.complete) res.shouldKeepAlive = false;
      this.fail(res, error);
    });
  }

  /** The route of an invoke this host serves, or null (proxied). */
  private route(req: IncomingMessage): { spec: FunctionSpec; url: UrlParts; name: string; rest: string } | null {
    const path = req.url;
    const host = req.headers.host;
    if (path === undefined || path[0] !== '/' || host === undefined || !PLAIN_HOST.test(host)) return null;
    // Most requests are already in URL's serialized form: no URL object for them.
    let url = plainUrlParts(host, path);
    if (url === null) {
      try {
        url = new URL(`http://${host}${path}`);
      } catch {
        return null;
      }
    }
    const target = invokeTarget(url.pathname);
    const spec = target === null ? undefined : this.routes.get(target.name);
    return spec === undefined ? null : { spec, url, name: target!.name, rest: target!.rest };
  }

  private async invoke(spec: FunctionSpec, url: UrlParts, name: string, rest: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const headers: [string, string][] = [];
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const key = raw[i].toLowerCase();
      if (isForwarded(key, raw[i + 1], this.token)) headers.push([key, raw[i + 1]]);
    }
    const limits = this.body!;
    const body = NO_BODY_METHODS.has(method) ? null : await readChunks(nodeBodySource(req), req.headers['content-length'] ?? null, limits);
    const wire = wireRequest(method, url.origin, { name, rest }, url.search, headers, body);
    wire.stream = true;
    const sink = new StreamedResponse(res, this.config!.maxResponseHeaderBytes, this.config!.maxBodyBytes);
    const logs: LogLine[] = [];
    let outcome = 'ok';
    let coldStart = false;
    this.pool.callStarted();
    try {
      // Most calls finish within runNow: no promise to wait for.
      const running = this.pool.runNow(spec, 'fetch', wire, logs, body?.byteLength ?? 0, sink);
      const ran = running instanceof Promise ? await running : running;
      coldStart = ran.coldStart;
      if (ran.value.streamed === true && sink.committed) sink.end();
      else this.respond(res, ran.value);
    } catch (error) {
      // What the sink refused (a bad head, a client gone) says more than the guest's echo of it.
      const failure = sink.failure ?? error;
      outcome = failure instanceof TributaryError ? failure.code : 'ERR_INTERNAL';
      this.fail(res, failure);
    } finally {
      this.pool.callEnded();
      this.telemetry.record(spec.name, spec.version, outcome, (performance.now() - started) / 1000, coldStart, logs);
    }
  }

  /** A buffered response: head re-checked, the platform's own Content-Length. */
  private respond(res: ServerResponse, wire: WireResponse): void {
    const head = checkResponseHead(wire, this.config!.maxResponseHeaderBytes);
    const flat: string[] = [];
    for (const [key, value] of head.headers) flat.push(key, value);
    const body = head.nullBody || wire.body === null ? null : wire.body;
    if (!head.nullBody) flat.push('content-length', String(body?.byteLength ?? 0));
    if (res.destroyed) return;
    res.writeHead(head.status, head.statusText, flat);
    // A small body as a latin1 string leaves with the head in one write (Node joins string data to
    // the head); bytes would take a writev of two buffers.
    if (body !== null && body.byteLength <= JOIN_BODY_BELOW_BYTES) res.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1'), 'latin1');
    else res.end(body);
  }

  /** Renders a failure as the control plane would; once the head is out, the response is cut instead. */
  private fail(res: ServerResponse, error: unknown): void {
    if (res.destroyed) return;
    if (res.headersSent) return void res.destroy();
    try {
      const rendered = renderError(error);
      const text = JSON.stringify(rendered.body);
      res.writeHead(rendered.status, { ...rendered.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    } catch {
      res.destroy();
    }
  }

  /** Pipes a request to the control plane's internal listener and its answer back, chunk by chunk. */
  private proxy(req: IncomingMessage, res: ServerResponse): void {
    const config = this.config!;
    const headers: string[] = [];
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) if (!HOP_BY_HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
    const upstream = httpRequest({ socketPath: config.controlSocket, method: req.method, path: req.url, headers, agent: this.agent!, setHost: false });
    upstream.on('response', (answer) => {
      const back: string[] = [];
      const rawBack = answer.rawHeaders;
      for (let i = 0; i < rawBack.length; i += 2) if (!HOP_BY_HOP.has(rawBack[i].toLowerCase())) back.push(rawBack[i], rawBack[i + 1]);
      if (res.destroyed) return void answer.destroy();
      try {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, back);
      } catch (error) {
        answer.destroy();
        return this.fail(res, error);
      }
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', () => this.fail(res, new TributaryError('ERR_UNAVAILABLE', 'the control plane did not answer')));
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.on('error', () => upstream.destroy());
    // The head goes upstream now, not with the first body byte: the control plane answers 401, 404
    // or 413 from the head alone, without waiting for a body nobody wants.
    upstream.flushHeaders();
    req.pipe(upstream);
  }
}

/**
 * A response streamed as the function produces it: the head once checked (chunked framing, set by
 * Node, never by the function), then each chunk, the next one asked for only once the socket took
 * this one (backpressure down to the stream's `pull`). Bounded by the response body limit; a
 * client that goes away fails the pending or next write, which cancels the function's stream.
 */
class StreamedResponse implements ResponseSink {
  private readonly res: ServerResponse;
  private readonly maxHeaderBytes: number;
  private readonly maxBodyBytes: number;
  private head: ResponseHead | null = null;
  private bytes = 0;
  private gone = false;
  private waiting: ((failure: string | null) => void) | null = null;
  committed = false;
  /** Why the sink refused (the call fails with it rather than with the guest's echo). */
  failure: TributaryError | null = null;

  constructor(res: ServerResponse, maxHeaderBytes: number, maxBodyBytes: number) {
    this.res = res;
    this.maxHeaderBytes = maxHeaderBytes;
    this.maxBodyBytes = maxBodyBytes;
  }

  check(head: unknown): string | null {
    try {
      this.head = checkResponseHead(head as WireResponse, this.maxHeaderBytes);
      return null;
    } catch (error) {
      this.failure = error instanceof TributaryError ? error : new TributaryError('ERR_FN_BAD_RESPONSE', 'function returned a malformed response head');
      return this.failure.message;
    }
  }

  commit(): void {
    const head = this.head!;
    this.committed = true;
    // Listeners only now: a buffered response (most calls) never pays for them.
    this.res.once('close', () => {
      this.gone = true;
      this.wake('the client disconnected');
    });
    this.res.on('drain', () => this.wake(null));
    if (this.res.destroyed) return;
    const flat: string[] = [];
    for (const [key, value] of head.headers) flat.push(key, value);
    try {
      this.res.writeHead(head.status, head.statusText, flat);
      // The head now, not with the first chunk: an event stream's client learns at once that it is open.
      this.res.flushHeaders();
      if (head.nullBody) this.res.end();
    } catch {
      // Called from the slot's completion of a host operation: nothing may throw out of it.
      this.failure = new TributaryError('ERR_FN_BAD_RESPONSE', 'function returned a response head that cannot be written');
      this.res.destroy();
    }
  }

  write(bytes: unknown): Promise<string | null> {
    if (this.gone || this.res.destroyed) {
      this.clientGone();
      return Promise.resolve('the client disconnected');
    }
    if (!(bytes instanceof Uint8Array)) return Promise.resolve('a response chunk must be bytes');
    this.bytes += bytes.byteLength;
    if (this.bytes > this.maxBodyBytes) {
      this.failure = new TributaryError('ERR_FN_BAD_RESPONSE', `response body exceeds ${this.maxBodyBytes} bytes`);
      return Promise.resolve(this.failure.message);
    }
    if (this.head?.nullBody || this.res.writableEnded) return Promise.resolve(null);
    try {
      if (this.res.write(bytes)) return Promise.resolve(null);
    } catch {
      this.clientGone();
      return Promise.resolve('the client disconnected');
    }
    return new Promise((resolve) => (this.waiting = resolve));
  }

  end(): void {
    if (!this.res.destroyed && !this.res.writableEnded) this.res.end();
  }

  private clientGone(): void {
    this.failure ??= new TributaryError('ERR_BAD_REQUEST', 'the client disconnected during the streamed response');
  }

  private wake(failure: string | null): void {
    if (failure !== null) this.clientGone();
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.(failure);
  }
}
