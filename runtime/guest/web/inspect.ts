/**
 * A small `util.inspect` for console output: single-line, depth-limited, cycle-safe, and bounded
 * in size. It reads properties through descriptors, so user getters are shown as `[Getter]`
 * instead of being run, and any throw while inspecting (a hostile Proxy) yields `[Uninspectable]`.
 */
import {
  ArrayBufferPrototypeGetByteLength,
  ArrayIsArray,
  ArrayPrototypePush,
  DatePrototypeGetTime,
  DatePrototypeToISOString,
  ErrorIsError,
  FunctionPrototypeToString,
  MapPrototypeForEach,
  MapPrototypeGetSize,
  NumberIsFinite,
  ObjectGetOwnPropertyDescriptor,
  ObjectGetPrototypeOf,
  ObjectIs,
  ReflectApply,
  ReflectOwnKeys,
  RegExpPrototypeGetFlags,
  RegExpPrototypeGetSource,
  SetPrototypeForEach,
  SetPrototypeGetSize,
  StringPrototypeCharCodeAt,
  StringPrototypeIndexOf,
  StringPrototypeSlice,
  StringPrototypeStartsWith,
  SymbolPrototypeToString,
  TypedArrayPrototypeGetLength,
  TypedArrayPrototypeGetSymbolToStringTag,
  ownValue,
} from '../primordials.ts';

/** Platform classes implement `[INSPECT]()` returning a plain snapshot of their internal state. */
export const INSPECT: unique symbol = Symbol('tributary.inspect');

export const DEFAULT_DEPTH = 4;
/** Array, Map and Set items shown before "... N more items". */
const MAX_ITEMS = 100;
/** Output characters after which the inspector stops descending: console lines are cut at 8 KiB. */
const MAX_CHARS = 16 * 1024;

interface Context {
  readonly maxDepth: number;
  readonly seen: object[];
  remaining: number;
}

/** `value` as console.log shows it; `depth` nested levels are expanded (default 4). */
export function inspect(value: unknown, depth = DEFAULT_DEPTH): string {
  const context: Context = { maxDepth: depth, seen: [], remaining: MAX_CHARS };
  try {
    return formatValue(context, value, 0, false);
  } catch {
    return '[Uninspectable]';
  }
}

/** `name: message` followed by the stack frames V8 recorded, as Node prints a thrown error. */
export function formatError(error: Error): string {
  const name = safeString(readProperty(error, 'name'), 'Error');
  const message = safeString(readProperty(error, 'message'), '');
  const header = message === '' ? name : `${name}: ${message}`;
  const stack = readProperty(error, 'stack');
  if (typeof stack !== 'string') return header;
  const frames = StringPrototypeIndexOf(stack, '\n    at ');
  return frames < 0 ? header : header + StringPrototypeSlice(stack, frames);
}

function formatValue(context: Context, value: unknown, depth: number, nested: boolean): string {
  const text = formatAny(context, value, depth, nested);
  // Containers are made of leaves already counted; count each leaf once.
  if (typeof value !== 'object' || value === null) context.remaining -= text.length;
  return text;
}

function formatAny(context: Context, value: unknown, depth: number, nested: boolean): string {
  switch (typeof value) {
    case 'string':
      return nested ? quote(value) : value;
    case 'number':
      return ObjectIs(value, -0) ? '-0' : `${value}`;
    case 'bigint':
      return `${value}n`;
    case 'symbol':
      return SymbolPrototypeToString(value);
    case 'undefined':
    case 'boolean':
      return `${value}`;
    case 'function':
      return formatFunction(value);
  }
  if (value === null) return 'null';
  const object = value as object;
  for (let i = 0; i < context.seen.length; i++) if (context.seen[i] === object) return '[Circular]';
  if (ErrorIsError(object)) return nested ? `[${formatError(object)}]` : formatError(object);
  const date = dateTime(object);
  if (date !== undefined) return NumberIsFinite(date) ? DatePrototypeToISOString(object) : 'Invalid Date';
  const regexp = regexpText(object);
  if (regexp !== undefined) return regexp;
  ArrayPrototypePush(context.seen, object);
  try {
    return formatObject(context, object, depth);
  } finally {
    context.seen.length--;
  }
}

function formatObject(context: Context, object: object, depth: number): string {
  const expand = depth < context.maxDepth;
  const custom = (object as { [INSPECT]?: unknown })[INSPECT];
  if (typeof custom === 'function') {
    const name = constructorName(object) ?? 'Object';
    return expand ? `${name} ${formatValue(context, ReflectApply(custom, object, []), depth, true)}` : `[${name}]`;
  }
  if (ArrayIsArray(object)) {
    if (!expand) return '[Array]';
    return list('[', ']', indexedItems(context, object, object.length, depth));
  }
  const typedTag = TypedArrayPrototypeGetSymbolToStringTag(object);
  if (typedTag !== undefined) {
    const length = TypedArrayPrototypeGetLength(object);
    if (!expand) return `[${typedTag}]`;
    return `${typedTag}(${length}) ` + list('[', ']', indexedItems(context, object as ArrayLike<unknown>, length, depth));
  }
  const byteLength = arrayBufferLength(object);
  if (byteLength !== undefined) return `ArrayBuffer { byteLength: ${byteLength} }`;
  const mapSize = sizeOf(MapPrototypeGetSize, object);
  if (mapSize !== undefined) {
    if (!expand) return '[Map]';
    const items: string[] = [];
    MapPrototypeForEach(object as Map<unknown, unknown>, (item: unknown, key: unknown) => {
      if (!hasRoom(context, items)) return;
      const entry = `${formatValue(context, key, depth + 1, true)} => ${formatValue(context, item, depth + 1, true)}`;
      ArrayPrototypePush(items, entry);
    });
    return `Map(${mapSize}) ` + list('{', '}', withRest(items, mapSize));
  }
  const setSize = sizeOf(SetPrototypeGetSize, object);
  if (setSize !== undefined) {
    if (!expand) return '[Set]';
    const items: string[] = [];
    SetPrototypeForEach(object as Set<unknown>, (item: unknown) => {
      if (hasRoom(context, items)) ArrayPrototypePush(items, formatValue(context, item, depth + 1, true));
    });
    return `Set(${setSize}) ` + list('{', '}', withRest(items, setSize));
  }
  const name = constructorName(object);
  const prefix = name === null ? '[Object: null prototype] ' : name === 'Object' ? '' : `${name} `;
  if (!expand) return `[${name ?? 'Object'}]`;
  const keys = ReflectOwnKeys(object);
  const items: string[] = [];
  for (let i = 0; i < keys.length; i++) {
    const descriptor = ObjectGetOwnPropertyDescriptor(object, keys[i]);
    if (descriptor === undefined || !descriptor.enumerable) continue;
    if (context.remaining <= 0) {
      ArrayPrototypePush(items, '...');
      break;
    }
    ArrayPrototypePush(items, `${formatKey(keys[i])}: ${formatProperty(context, descriptor, depth)}`);
  }
  return prefix + list('{', '}', items);
}

function indexedItems(context: Context, object: ArrayLike<unknown>, length: number, depth: number): string[] {
  const items: string[] = [];
  for (let i = 0; i < length && hasRoom(context, items); i++) {
    const descriptor = ObjectGetOwnPropertyDescriptor(object, `${i}`);
    ArrayPrototypePush(items, descriptor === undefined ? '<empty>' : formatProperty(context, descriptor, depth));
  }
  return withRest(items, length);
}

function formatProperty(context: Context, descriptor: PropertyDescriptor, depth: number): string {
  if (descriptor.get !== undefined) return descriptor.set !== undefined ? '[Getter/Setter]' : '[Getter]';
  if (descriptor.set !== undefined) return '[Setter]';
  return formatValue(context, descriptor.value, depth + 1, true);
}

function hasRoom(context: Context, items: string[]): boolean {
  return items.length < MAX_ITEMS && context.remaining > 0;
}

function withRest(items: string[], total: number): string[] {
  const rest = total - items.length;
  if (rest > 0) ArrayPrototypePush(items, `... ${rest} more item${rest === 1 ? '' : 's'}`);
  return items;
}

function list(open: string, close: string, items: string[]): string {
  if (items.length === 0) return open + close;
  let out = `${open} ${items[0]}`;
  for (let i = 1; i < items.length; i++) out += `, ${items[i]}`;
  return `${out} ${close}`;
}

function formatFunction(fn: Function): string {
  const name = ownValue(fn, 'name');
  let source = '';
  try {
    source = FunctionPrototypeToString(fn);
  } catch {
    // Proxies of functions may refuse; treat them as plain functions.
  }
  const kind = StringPrototypeStartsWith(source, 'class') ? 'class' : 'Function';
  if (typeof name !== 'string' || name === '') return kind === 'class' ? '[class (anonymous)]' : '[Function (anonymous)]';
  return kind === 'class' ? `[class ${name}]` : `[Function: ${name}]`;
}

function formatKey(key: PropertyKey): string {
  if (typeof key === 'symbol') return `[${SymbolPrototypeToString(key)}]`;
  return isIdentifier(key as string) ? (key as string) : quote(key as string);
}

/** The name of the constructor on the prototype chain's first object, without running getters. */
function constructorName(object: object): string | null {
  let proto = ObjectGetPrototypeOf(object);
  if (proto === null) return null;
  while (proto !== null) {
    const ctor = ownValue(proto, 'constructor');
    if (typeof ctor === 'function') {
      const name = ownValue(ctor, 'name');
      if (typeof name === 'string' && name !== '') return name;
    }
    proto = ObjectGetPrototypeOf(proto);
  }
  return 'Object';
}

function isIdentifier(key: string): boolean {
  if (key.length === 0) return false;
  for (let i = 0; i < key.length; i++) {
    const unit = StringPrototypeCharCodeAt(key, i);
    const letter = (unit >= 0x41 && unit <= 0x5a) || (unit >= 0x61 && unit <= 0x7a) || unit === 0x24 || unit === 0x5f;
    if (!letter && !(i > 0 && unit >= 0x30 && unit <= 0x39)) return false;
  }
  return true;
}

function quote(text: string): string {
  let out = "'";
  for (let i = 0; i < text.length; i++) {
    const unit = StringPrototypeCharCodeAt(text, i);
    if (unit === 0x27) out += "\\'";
    else if (unit === 0x5c) out += '\\\\';
    else if (unit === 0x0a) out += '\\n';
    else if (unit === 0x0d) out += '\\r';
    else if (unit === 0x09) out += '\\t';
    else out += text[i];
  }
  return `${out}'`;
}

function dateTime(object: object): number | undefined {
  try {
    return DatePrototypeGetTime(object);
  } catch {
    return undefined;
  }
}

function regexpText(object: object): string | undefined {
  try {
    return `/${RegExpPrototypeGetSource(object)}/${RegExpPrototypeGetFlags(object)}`;
  } catch {
    return undefined;
  }
}

function arrayBufferLength(object: object): number | undefined {
  try {
    return ArrayBufferPrototypeGetByteLength(object);
  } catch {
    return undefined;
  }
}

function sizeOf(getter: (self: unknown) => number, object: object): number | undefined {
  try {
    return getter(object);
  } catch {
    return undefined;
  }
}

function readProperty(object: object, key: string): unknown {
  try {
    return (object as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function safeString(value: unknown, fallback: string): string {
  if (typeof value === 'string') return value;
  if (value === undefined || value === null) return fallback;
  try {
    return `${value as string}`;
  } catch {
    return fallback;
  }
}
