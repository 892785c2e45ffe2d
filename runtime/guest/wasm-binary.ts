/**
 * Reads and rewrites the resource limits of a WebAssembly module in the binary format
 * (WebAssembly Core Specification 2.0 §5.5, plus the proposals V8 ships): the memories and tables
 * a module defines (memory section §5.5.8, table section §5.5.7, with the function-references
 * form `0x40 0x00 tabletype expr`) and the ones it imports (§5.5.5).
 *
 * Shared by the host (uploaded modules, runtime/host/wasm-limits.ts) and the guest (modules
 * compiled from JS, wasm-guard.ts). In the guest it runs on bytes handed over by user code after
 * that code had every chance to patch built-ins, so it is iterative, allocates only typed arrays
 * and literals, and calls captured built-ins only: no array iteration, no destructuring of
 * arrays, no species-using methods (`subarray`, `slice`).
 *
 * Refused rather than rewritten: shared memories and tables (threads), 64-bit memories and tables
 * (memory64), custom page sizes. Everything outside the memory and table sections is copied byte
 * for byte, so V8 validates exactly what it would have, with lower maximums.
 */
import {
  NumberPrototypeToString, SafeError, SafeFloat64Array, SafeUint8Array, TypedArrayPrototypeGetBuffer, TypedArrayPrototypeGetByteOffset, TypedArrayPrototypeGetLength,
  TypedArrayPrototypeSet,
} from './primordials.ts';

const IMPORT_SECTION = 2;
const TABLE_SECTION = 4;
const MEMORY_SECTION = 5;
const START_SECTION = 8;
/** Limits flag: a maximum follows the minimum. Every other bit (shared, 64-bit, page size) is refused. */
const HAS_MAXIMUM = 0x01;
const NO_MAXIMUM = -1;

/** Why a module was not accepted: `invalid` bytes V8 would reject too, or a feature functions may not use. */
export class WasmBinaryError extends SafeError {
  readonly kind: 'invalid' | 'unsupported';
  constructor(kind: 'invalid' | 'unsupported', message: string) {
    super(message);
    this.kind = kind;
  }
}

/** The limits of the memories (or tables) one section defines, and where each sits in the bytes. */
export interface LimitsList {
  count: number;
  mins: Float64Array;
  /** -1 when no maximum is declared. */
  maxs: Float64Array;
  /** Byte range of each entry's limits (flags, min, max), for rewriting. */
  starts: Float64Array;
  ends: Float64Array;
  /** The section: its id byte, where the entry count ends, where the content ends; -1 when absent. */
  sectionStart: number;
  countEnd: number;
  contentEnd: number;
}

export interface ModuleLimits {
  memories: LimitsList;
  tables: LimitsList;
  importedMemories: number;
  importedTables: number;
  /**
   * Instantiating may hand the new instance's functions to JS before the instance is returned (a
   * start function runs, element segments write into imported tables): a failed instantiation
   * may then leave its memory reachable.
   */
  mayLeakOnFailure: boolean;
}

interface Reader {
  bytes: Uint8Array;
  pos: number;
  end: number;
}

const invalid = (message: string) => new WasmBinaryError('invalid', message);
const unsupported = (message: string) => new WasmBinaryError('unsupported', message);

function byte(r: Reader): number {
  if (r.pos >= r.end) throw invalid(`unexpected end of section at byte ${r.pos}`);
  return r.bytes[r.pos++];
}

function u32(r: Reader): number {
  let result = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    const b = byte(r);
    result += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) {
      if (result > 0xffffffff) throw invalid('LEB128 integer out of range');
      return result;
    }
  }
  throw invalid('malformed LEB128 integer');
}

/** Skips a signed LEB128 of at most `maxBytes` bytes (s33 heap types, s32/s64 constants). */
function skipLeb(r: Reader, maxBytes: number): void {
  for (let i = 0; i < maxBytes; i++) if ((byte(r) & 0x80) === 0) return;
  throw invalid('malformed LEB128 integer');
}

function skipBytes(r: Reader, n: number): void {
  if (n > r.end - r.pos) throw invalid('name or immediate extends past its section');
  r.pos += n;
}

/** Value and reference types: one byte, except `(ref null? ht)` (0x63, 0x64) followed by an s33 heap type. */
function skipValType(r: Reader): void {
  const b = byte(r);
  if (b === 0x63 || b === 0x64) skipLeb(r, 5);
}

function emptyList(count: number): LimitsList {
  return {
    count,
    mins: new SafeFloat64Array(count),
    maxs: new SafeFloat64Array(count),
    starts: new SafeFloat64Array(count),
    ends: new SafeFloat64Array(count),
    sectionStart: -1,
    countEnd: -1,
    contentEnd: -1,
  };
}

/** Reads one `limits` into entry `i` of `list` (or nowhere, for imports); refuses every flag but HAS_MAXIMUM. */
function readLimits(r: Reader, what: 'memory' | 'table', list: LimitsList | null, i: number): void {
  const start = r.pos;
  const flags = byte(r);
  if ((flags & ~HAS_MAXIMUM) !== 0) {
    throw unsupported(
      `${what} limits flags 0x${NumberPrototypeToString(flags, 16)}: shared, 64-bit and custom-page-size ${what === 'memory' ? 'memories' : 'tables'} are not available in functions`,
    );
  }
  const min = u32(r);
  const max = (flags & HAS_MAXIMUM) !== 0 ? u32(r) : NO_MAXIMUM;
  if (max !== NO_MAXIMUM && max < min) throw invalid(`${what} maximum ${max} is below its minimum ${min}`);
  if (list === null) return;
  list.mins[i] = min;
  list.maxs[i] = max;
  list.starts[i] = start;
  list.ends[i] = r.pos;
}

/**
 * Skips a constant expression up to and including its `end` (0x0B): the instructions allowed in
 * table initializers (core 2.0, extended-const, function references and GC). Anything else is
 * refused: the expression's extent must be known to copy it.
 */
function skipConstExpr(r: Reader): void {
  for (;;) {
    const op = byte(r);
    switch (op) {
      case 0x0b:
        return;
      case 0x41: // i32.const
        skipLeb(r, 5);
        break;
      case 0x42: // i64.const
        skipLeb(r, 10);
        break;
      case 0x43: // f32.const
        skipBytes(r, 4);
        break;
      case 0x44: // f64.const
        skipBytes(r, 8);
        break;
      case 0x23: // global.get
      case 0xd2: // ref.func
        u32(r);
        break;
      case 0xd0: // ref.null heaptype
        skipLeb(r, 5);
        break;
      case 0x6a: case 0x6b: case 0x6c: case 0x7c: case 0x7d: case 0x7e: // i32/i64 add, sub, mul
        break;
      case 0xfb: {
        const sub = u32(r);
        if (sub === 0 || sub === 1 || sub === 6 || sub === 7) u32(r); // struct.new(_default), array.new(_default)
        else if (sub === 8) { u32(r); u32(r); } // array.new_fixed
        else if (sub !== 0x1a && sub !== 0x1b && sub !== 0x1c) throw unsupported(`constant instruction 0xfb ${sub} in a table initializer`);
        break;
      }
      case 0xfd:
        if (u32(r) !== 12) throw unsupported('SIMD instruction in a table initializer');
        skipBytes(r, 16); // v128.const
        break;
      default:
        throw unsupported(`instruction 0x${NumberPrototypeToString(op, 16)} in a table initializer`);
    }
  }
}

/** A vector's element count, bounded by the bytes left (every entry takes at least `minEntryBytes`). */
function vectorCount(r: Reader, minEntryBytes: number): number {
  const count = u32(r);
  if (count * minEntryBytes > r.end - r.pos) throw invalid('vector count exceeds its section');
  return count;
}

function readImports(r: Reader, limits: ModuleLimits): void {
  const count = vectorCount(r, 3);
  for (let i = 0; i < count; i++) {
    skipBytes(r, u32(r)); // module name
    skipBytes(r, u32(r)); // field name
    const kind = byte(r);
    if (kind === 0x00) u32(r);
    else if (kind === 0x01) {
      skipValType(r);
      readLimits(r, 'table', null, 0);
      limits.importedTables++;
    } else if (kind === 0x02) {
      readLimits(r, 'memory', null, 0);
      limits.importedMemories++;
    } else if (kind === 0x03) {
      skipValType(r);
      byte(r); // mutability
    } else if (kind === 0x04) {
      byte(r); // tag attribute
      u32(r);
    } else throw invalid(`unknown import kind 0x${NumberPrototypeToString(kind, 16)}`);
  }
}

function readTables(r: Reader, sectionStart: number): LimitsList {
  const list = emptyList(vectorCount(r, 2));
  list.sectionStart = sectionStart;
  list.countEnd = r.pos;
  for (let i = 0; i < list.count; i++) {
    const withInit = r.pos < r.end && r.bytes[r.pos] === 0x40;
    if (withInit) {
      r.pos++;
      if (byte(r) !== 0x00) throw invalid('malformed table entry');
    }
    skipValType(r);
    readLimits(r, 'table', list, i);
    if (withInit) skipConstExpr(r);
  }
  if (r.pos !== r.end) throw invalid('malformed table section');
  list.contentEnd = r.end;
  return list;
}

function readMemories(r: Reader, sectionStart: number): LimitsList {
  const list = emptyList(vectorCount(r, 2));
  list.sectionStart = sectionStart;
  list.countEnd = r.pos;
  for (let i = 0; i < list.count; i++) readLimits(r, 'memory', list, i);
  if (r.pos !== r.end) throw invalid('malformed memory section');
  list.contentEnd = r.end;
  return list;
}

/** Reads a section header at `r.pos`: returns its id and leaves `r.pos`/`r.end` around its content. */
function enterSection(r: Reader, moduleEnd: number): number {
  r.end = moduleEnd;
  const id = byte(r);
  const size = u32(r);
  if (size > moduleEnd - r.pos) throw invalid('section extends past the end of the module');
  r.end = r.pos + size;
  return id;
}

function checkHeader(bytes: Uint8Array, length: number): void {
  if (length < 8 || bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw invalid('not a WebAssembly module (bad magic number)');
  }
  if (bytes[4] !== 0x01 || bytes[5] !== 0x00 || bytes[6] !== 0x00 || bytes[7] !== 0x00) {
    throw invalid('unsupported WebAssembly binary version (components are not modules)');
  }
}

/** The memories and tables `bytes` defines and imports. Throws WasmBinaryError. */
export function readModuleLimits(bytes: Uint8Array): ModuleLimits {
  const length = TypedArrayPrototypeGetLength(bytes);
  checkHeader(bytes, length);
  const limits: ModuleLimits = { memories: emptyList(0), tables: emptyList(0), importedMemories: 0, importedTables: 0, mayLeakOnFailure: false };
  const r: Reader = { bytes, pos: 8, end: length };
  let seenImports = false;
  while (r.pos < length) {
    const sectionStart = r.pos;
    const id = enterSection(r, length);
    const contentEnd = r.end;
    if (id === IMPORT_SECTION || id === TABLE_SECTION || id === MEMORY_SECTION) {
      const seen = id === IMPORT_SECTION ? seenImports : id === TABLE_SECTION ? limits.tables.sectionStart >= 0 : limits.memories.sectionStart >= 0;
      if (seen) throw invalid(`duplicate section ${id}`);
      if (id === IMPORT_SECTION) {
        seenImports = true;
        readImports(r, limits);
        if (r.pos !== r.end) throw invalid('malformed import section');
      } else if (id === TABLE_SECTION) limits.tables = readTables(r, sectionStart);
      else limits.memories = readMemories(r, sectionStart);
    }
    if (id === START_SECTION) limits.mayLeakOnFailure = true;
    r.pos = contentEnd;
  }
  if (limits.importedTables > 0) limits.mayLeakOnFailure = true;
  return limits;
}

interface Writer {
  buf: Uint8Array;
  len: number;
}

function newWriter(capacity: number): Writer {
  return { buf: new SafeUint8Array(capacity), len: 0 };
}

function reserveBytes(w: Writer, n: number): void {
  if (w.len + n <= TypedArrayPrototypeGetLength(w.buf)) return;
  const grown = new SafeUint8Array((w.len + n) * 2);
  TypedArrayPrototypeSet(grown, w.buf);
  w.buf = grown;
}

function putByte(w: Writer, b: number): void {
  reserveBytes(w, 1);
  w.buf[w.len++] = b;
}

function putU32(w: Writer, value: number): void {
  do {
    let b = value % 128;
    value = (value - b) / 128;
    if (value !== 0) b += 0x80;
    putByte(w, b);
  } while (value !== 0);
}

/** Appends bytes [start, end) of `src` through a fresh view: no species lookup on `src`. */
function putRange(w: Writer, src: Uint8Array, start: number, end: number): void {
  if (end <= start) return;
  reserveBytes(w, end - start);
  const view = new SafeUint8Array(TypedArrayPrototypeGetBuffer(src), TypedArrayPrototypeGetByteOffset(src) + start, end - start);
  TypedArrayPrototypeSet(w.buf, view, w.len);
  w.len += end - start;
}

/** The section content with every entry's limits replaced by `min`, `caps[i]` (always with a maximum). */
function rewrittenContent(bytes: Uint8Array, list: LimitsList, caps: Float64Array): Writer {
  const w = newWriter(list.contentEnd - list.sectionStart + 16);
  let copied = list.countEnd;
  // The count itself is unchanged: copy it from just after the section's size.
  const r: Reader = { bytes, pos: list.sectionStart, end: list.contentEnd };
  byte(r);
  u32(r);
  putRange(w, bytes, r.pos, list.countEnd);
  for (let i = 0; i < list.count; i++) {
    putRange(w, bytes, copied, list.starts[i]);
    putByte(w, HAS_MAXIMUM);
    putU32(w, list.mins[i]);
    putU32(w, caps[i]);
    copied = list.ends[i];
  }
  putRange(w, bytes, copied, list.contentEnd);
  return w;
}

/**
 * `bytes` with the maximum of every memory it defines set to `memoryCaps[i]` and of every table to
 * `tableCaps[i]`; all other bytes unchanged. `limits` must come from readModuleLimits(bytes).
 */
export function writeModuleLimits(bytes: Uint8Array, limits: ModuleLimits, memoryCaps: Float64Array, tableCaps: Float64Array): Uint8Array {
  const length = TypedArrayPrototypeGetLength(bytes);
  const out = newWriter(length + 32);
  putRange(out, bytes, 0, 8);
  const r: Reader = { bytes, pos: 8, end: length };
  while (r.pos < length) {
    const sectionStart = r.pos;
    enterSection(r, length);
    const contentEnd = r.end;
    const list = sectionStart === limits.memories.sectionStart ? limits.memories : sectionStart === limits.tables.sectionStart ? limits.tables : null;
    if (list === null) {
      putRange(out, bytes, sectionStart, contentEnd);
    } else {
      const content = rewrittenContent(bytes, list, list === limits.memories ? memoryCaps : tableCaps);
      putByte(out, bytes[sectionStart]);
      putU32(out, content.len);
      putRange(out, content.buf, 0, content.len);
    }
    r.pos = contentEnd;
  }
  const result = new SafeUint8Array(out.len);
  TypedArrayPrototypeSet(result, new SafeUint8Array(TypedArrayPrototypeGetBuffer(out.buf), 0, out.len));
  return result;
}
