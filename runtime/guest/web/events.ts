/**
 * DOMException (https://webidl.spec.whatwg.org/#idl-DOMException) with its legacy codes, Event
 * and EventTarget (https://dom.spec.whatwg.org/#interface-event: no DOM tree, so no capture or
 * bubbling phases), AbortController and AbortSignal (incl. `abort`, `timeout`, `any`).
 * Listeners are called with captured Reflect.apply; a listener that throws is reported to the
 * console (as browsers report it) and the others still run.
 */
import {
  ObjectDefineProperty,
  ObjectFreeze,
  ReflectApply,
  SafeError,
  SafeTypeError,
  ArrayPrototypeSlice,
  ArrayPrototypeSplice,
  DatePrototypeGetTime,
  SafeDate,
  MathTrunc,
  NumberCtor,
  NumberIsFinite,
} from '../primordials.ts';
import { defineToStringTag, requireArguments, sequenceOf, toDOMString } from './webidl.ts';

/** Legacy `code` of each DOMException name that has one (WebIDL's table); others are 0. */
const LEGACY_CODES: Record<string, number> = ObjectFreeze({
  __proto__: null,
  IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4, InvalidCharacterError: 5,
  NoModificationAllowedError: 7, NotFoundError: 8, NotSupportedError: 9, InUseAttributeError: 10,
  InvalidStateError: 11, SyntaxError: 12, InvalidModificationError: 13, NamespaceError: 14,
  InvalidAccessError: 15, TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20,
  URLMismatchError: 21, QuotaExceededError: 22, TimeoutError: 23, InvalidNodeTypeError: 24, DataCloneError: 25,
} as unknown as Record<string, number>);

export class DOMException extends SafeError {
  readonly #name: string;
  readonly #message: string;

  constructor(message: unknown = '', name: unknown = 'Error') {
    const text = toDOMString(message);
    super(text);
    this.#message = text;
    this.#name = toDOMString(name);
    // Error's own `message` property would shadow the getter; DOMException has none.
    delete (this as { message?: string }).message;
  }

  get name(): string {
    return this.#name;
  }

  get message(): string {
    return this.#message;
  }

  get code(): number {
    const code = LEGACY_CODES[this.#name];
    return code === undefined ? 0 : code;
  }
}
defineToStringTag(DOMException.prototype, 'DOMException');
{
  const names = [
    'INDEX_SIZE_ERR', 'DOMSTRING_SIZE_ERR', 'HIERARCHY_REQUEST_ERR', 'WRONG_DOCUMENT_ERR', 'INVALID_CHARACTER_ERR',
    'NO_DATA_ALLOWED_ERR', 'NO_MODIFICATION_ALLOWED_ERR', 'NOT_FOUND_ERR', 'NOT_SUPPORTED_ERR', 'INUSE_ATTRIBUTE_ERR',
    'INVALID_STATE_ERR', 'SYNTAX_ERR', 'INVALID_MODIFICATION_ERR', 'NAMESPACE_ERR', 'INVALID_ACCESS_ERR', 'VALIDATION_ERR',
    'TYPE_MISMATCH_ERR', 'SECURITY_ERR', 'NETWORK_ERR', 'ABORT_ERR', 'URL_MISMATCH_ERR', 'QUOTA_EXCEEDED_ERR',
    'TIMEOUT_ERR', 'INVALID_NODE_TYPE_ERR', 'DATA_CLONE_ERR',
  ];
  for (let i = 0; i < names.length; i++) {
    const descriptor = { value: i + 1, writable: false, enumerable: true, configurable: false };
    ObjectDefineProperty(DOMException, names[i], descriptor);
    ObjectDefineProperty(DOMException.prototype, names[i], descriptor);
  }
}

export interface EventInit {
  bubbles?: boolean;
  cancelable?: boolean;
  composed?: boolean;
}

let setEventTarget: (event: Event, target: EventTarget | null) => void;
let eventStopped: (event: Event) => boolean;

export class Event {
  readonly #type: string;
  readonly #bubbles: boolean;
  readonly #cancelable: boolean;
  readonly #composed: boolean;
  readonly #timeStamp: number;
  #target: EventTarget | null = null;
  #defaultPrevented = false;
  #stopImmediate = false;
  #dispatching = false;

  static {
    setEventTarget = (event, target) => {
      event.#target = target;
      event.#dispatching = target !== null;
    };
    eventStopped = (event) => event.#stopImmediate;
  }

  static readonly NONE = 0;
  static readonly CAPTURING_PHASE = 1;
  static readonly AT_TARGET = 2;
  static readonly BUBBLING_PHASE = 3;

  constructor(type: unknown, init: EventInit | null | undefined = undefined) {
    requireArguments(arguments.length, 1, 'Event');
    this.#type = toDOMString(type);
    this.#bubbles = !!init?.bubbles;
    this.#cancelable = !!init?.cancelable;
    this.#composed = !!init?.composed;
    this.#timeStamp = DatePrototypeGetTime(new SafeDate());
  }

  get type(): string {
    return this.#type;
  }
  get target(): EventTarget | null {
    return this.#target;
  }
  get currentTarget(): EventTarget | null {
    return this.#dispatching ? this.#target : null;
  }
  get srcElement(): EventTarget | null {
    return this.#target;
  }
  get eventPhase(): number {
    return this.#dispatching ? 2 : 0;
  }
  get bubbles(): boolean {
    return this.#bubbles;
  }
  get cancelable(): boolean {
    return this.#cancelable;
  }
  get composed(): boolean {
    return this.#composed;
  }
  get defaultPrevented(): boolean {
    return this.#defaultPrevented;
  }
  get returnValue(): boolean {
    return !this.#defaultPrevented;
  }
  get isTrusted(): boolean {
    return false;
  }
  get timeStamp(): number {
    return this.#timeStamp;
  }
  composedPath(): EventTarget[] {
    return this.#dispatching && this.#target !== null ? [this.#target] : [];
  }
  preventDefault(): void {
    if (this.#cancelable) this.#defaultPrevented = true;
  }
  stopPropagation(): void {}
  stopImmediatePropagation(): void {
    this.#stopImmediate = true;
  }
}
defineToStringTag(Event.prototype, 'Event');

interface Listener {
  callback: unknown;
  once: boolean;
  removed: boolean;
  signal: AbortSignal | null;
}

let reportListenerError: (error: unknown) => void = () => {};

/** Where a throwing listener is reported (console.error); set at install. */
export function setListenerErrorReporter(report: (error: unknown) => void): void {
  reportListenerError = report;
}

export class EventTarget {
  readonly #listeners: Record<string, Listener[]> = { __proto__: null } as unknown as Record<string, Listener[]>;

  addEventListener(type: unknown, callback: unknown, options: unknown = undefined): void {
    requireArguments(arguments.length, 2, 'EventTarget.addEventListener');
    const name = toDOMString(type);
    if (callback === null || callback === undefined) return;
    if (typeof callback !== 'function' && typeof callback !== 'object') {
      throw new SafeTypeError("EventTarget.addEventListener: 'callback' must be a function or an object");
    }
    const opts = typeof options === 'object' && options !== null ? (options as { once?: unknown; signal?: unknown }) : null;
    const once = !!opts?.once;
    const signal = opts?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new SafeTypeError("addEventListener: 'signal' must be an AbortSignal");
    if (signal instanceof AbortSignal && signal.aborted) return;
    let list = this.#listeners[name];
    if (list === undefined) list = this.#listeners[name] = [];
    for (let i = 0; i < list.length; i++) if (list[i].callback === callback) return;
    const listener: Listener = { callback, once, removed: false, signal: signal instanceof AbortSignal ? signal : null };
    list[list.length] = listener;
    if (listener.signal !== null) {
      listener.signal.addEventListener('abort', () => this.removeEventListener(name, callback));
    }
  }

  removeEventListener(type: unknown, callback: unknown, _options: unknown = undefined): void {
    requireArguments(arguments.length, 2, 'EventTarget.removeEventListener');
    const list = this.#listeners[toDOMString(type)];
    if (list === undefined) return;
    for (let i = 0; i < list.length; i++) {
      if (list[i].callback !== callback) continue;
      list[i].removed = true;
      ArrayPrototypeSplice(list, i, 1);
      return;
    }
  }

  dispatchEvent(event: Event): boolean {
    requireArguments(arguments.length, 1, 'EventTarget.dispatchEvent');
    if (!(event instanceof Event)) throw new SafeTypeError("EventTarget.dispatchEvent: 'event' must be an Event");
    const list = this.#listeners[event.type];
    setEventTarget(event, this);
    try {
      if (list !== undefined) {
        const snapshot = ArrayPrototypeSlice(list) as Listener[];
        for (let i = 0; i < snapshot.length; i++) {
          const listener = snapshot[i];
          if (listener.removed) continue;
          if (listener.once) this.removeEventListener(event.type, listener.callback);
          try {
            const callback = listener.callback;
            if (typeof callback === 'function') ReflectApply(callback, this, [event]);
            else {
              const handleEvent = (callback as { handleEvent?: unknown }).handleEvent;
              if (typeof handleEvent !== 'function') throw new SafeTypeError("listener's handleEvent is not a function");
              ReflectApply(handleEvent, callback, [event]);
            }
          } catch (error) {
            reportListenerError(error);
          }
          if (eventStopped(event)) break;
        }
      }
    } finally {
      setEventTarget(event, null);
    }
    return !event.defaultPrevented;
  }
}
defineToStringTag(EventTarget.prototype, 'EventTarget');

type TimerFn = (callback: () => void, delayMs: number) => unknown;
let armTimer: TimerFn = () => undefined;

/** The platform's setTimeout, captured at install (AbortSignal.timeout uses it). */
export function setAbortTimer(timer: TimerFn): void {
  armTimer = timer;
}

const INTERNAL = Symbol('internal');
let signalAbort: (signal: AbortSignal, reason: unknown) => void;

export class AbortSignal extends EventTarget {
  #aborted = false;
  #reason: unknown = undefined;
  #onabort: unknown = null;

  static {
    signalAbort = (signal, reason) => {
      if (signal.#aborted) return;
      signal.#aborted = true;
      signal.#reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
      const event = new Event('abort');
      const handler = signal.#onabort;
      if (typeof handler === 'function') {
        try {
          ReflectApply(handler, signal, [event]);
        } catch (error) {
          reportListenerError(error);
        }
      }
      signal.dispatchEvent(event);
    };
  }

  constructor(token: unknown = undefined) {
    if (token !== INTERNAL) throw new SafeTypeError('Illegal constructor');
    super();
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  get onabort(): unknown {
    return this.#onabort;
  }

  set onabort(handler: unknown) {
    this.#onabort = typeof handler === 'function' || (typeof handler === 'object' && handler !== null) ? handler : null;
  }

  throwIfAborted(): void {
    if (this.#aborted) throw this.#reason;
  }

  static abort(reason: unknown = undefined): AbortSignal {
    const signal = new AbortSignal(INTERNAL);
    signalAbort(signal, reason);
    return signal;
  }

  /** Aborts with a TimeoutError DOMException after `ms`; timers live as long as the invocation. */
  static timeout(ms: unknown): AbortSignal {
    requireArguments(arguments.length, 1, 'AbortSignal.timeout');
    const delay = MathTrunc(NumberCtor(ms));
    if (!NumberIsFinite(delay) || delay < 0 || delay > 2 ** 53 - 1) throw new SafeTypeError('AbortSignal.timeout: ms must be a non-negative integer');
    const signal = new AbortSignal(INTERNAL);
    armTimer(() => signalAbort(signal, new DOMException('The operation timed out', 'TimeoutError')), delay);
    return signal;
  }

  static any(signals: unknown): AbortSignal {
    requireArguments(arguments.length, 1, 'AbortSignal.any');
    const items = sequenceOf(signals, 'AbortSignal.any: signals');
    const list: AbortSignal[] = [];
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (!(item instanceof AbortSignal)) throw new SafeTypeError('AbortSignal.any: every item must be an AbortSignal');
      list[list.length] = item;
    }
    const combined = new AbortSignal(INTERNAL);
    for (let i = 0; i < list.length; i++) {
      if (list[i].aborted) {
        signalAbort(combined, list[i].reason);
        return combined;
      }
    }
    for (let i = 0; i < list.length; i++) {
      const source = list[i];
      source.addEventListener('abort', () => signalAbort(combined, source.reason));
    }
    return combined;
  }
}
defineToStringTag(AbortSignal.prototype, 'AbortSignal');

export class AbortController {
  readonly #signal = new AbortSignal(INTERNAL);

  get signal(): AbortSignal {
    return this.#signal;
  }

  abort(reason: unknown = undefined): void {
    signalAbort(this.#signal, reason);
  }
}
defineToStringTag(AbortController.prototype, 'AbortController');

/** A `request.signal`: nothing in the platform aborts a request. */
export function neverAbortedSignal(): AbortSignal {
  return new AbortSignal(INTERNAL);
}
