/**
 * Blob and File (https://w3c.github.io/FileAPI/), FormData (https://xhr.spec.whatwg.org/#interface-formdata)
 * and the two form encodings a body may carry: multipart/form-data (RFC 7578, serialized as the
 * HTML spec's "multipart/form-data encoding algorithm") and application/x-www-form-urlencoded.
 * Blobs hold their bytes in memory (a body is bounded by maxBodyBytes anyway).
 */
import {
  DatePrototypeGetTime,
  MathMax,
  MathMin,
  NumberCtor,
  NumberIsFinite,
  MathTrunc,
  SafeDate,
  SafeTypeError,
  SafeUint8Array,
  StringPrototypeIndexOf,
  StringPrototypeSlice,
  StringPrototypeToLowerCase,
  TypedArrayPrototypeSet,
  TypedArrayPrototypeSubarray,
  ArrayPrototypeSplice,
  StringPrototypeCharCodeAt,
  ReflectApply,
} from '../primordials.ts';
import { byteLengthOf, copyOf, viewOf } from './bytes.ts';
import { parseUrlencoded } from './form-urlencoded.ts';
import { iteratorFactory, listIterator } from './iterator.ts';
import { streamOfBytes, type ReadableStream } from './streams.ts';
import { utf8Decode, utf8Encode } from './utf8.ts';
import { defineToStringTag, requireArguments, sequenceOf, toDOMString, toUSVString } from './webidl.ts';
import { randomBoundary } from './form-boundary.ts';

export let isBlob: (value: unknown) => value is Blob;
export let blobBytes: (blob: Blob) => Uint8Array;
export let blobType: (blob: Blob) => string;

export interface BlobPropertyBag {
  type?: string;
  endings?: string;
}

/** The spec lowercases a type made only of U+0020-U+007E and drops any other. */
function normalizeType(value: unknown): string {
  const type = toDOMString(value);
  for (let i = 0; i < type.length; i++) {
    const c = StringPrototypeCharCodeAt(type, i);
    if (c < 0x20 || c > 0x7e) return '';
  }
  return StringPrototypeToLowerCase(type);
}

export class Blob {
  readonly #bytes: Uint8Array;
  readonly #type: string;

  static {
    isBlob = (value): value is Blob => typeof value === 'object' && value !== null && #bytes in value;
    blobBytes = (blob) => blob.#bytes;
    blobType = (blob) => blob.#type;
  }

  constructor(parts: unknown = undefined, options: BlobPropertyBag | null | undefined = undefined) {
    if (options !== undefined && options !== null && typeof options !== 'object' && typeof options !== 'function') {
      throw new SafeTypeError("Blob: 'options' must be an object");
    }
    const items = parts === undefined ? [] : sequenceOf(parts, "Blob: 'blobParts'");
    // Dictionary members in lexicographic order (endings, then type).
    void options?.endings;
    const type = options?.type === undefined ? '' : normalizeType(options.type);
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      let bytes: Uint8Array;
      if (isBlob(item)) bytes = item.#bytes;
      else {
        const view = viewOf(item);
        bytes = view !== null ? copyOf(view) : utf8Encode(toUSVString(item));
      }
      chunks[chunks.length] = bytes;
      total += byteLengthOf(bytes);
    }
    this.#bytes = concat(chunks, total);
    this.#type = type;
  }

  get size(): number {
    return byteLengthOf(this.#bytes);
  }

  get type(): string {
    return this.#type;
  }

  slice(start: unknown = undefined, end: unknown = undefined, contentType: unknown = undefined): Blob {
    const size = byteLengthOf(this.#bytes);
    const from = relativeIndex(start, size, 0);
    const to = relativeIndex(end, size, size);
    const span = MathMax(to - from, 0);
    const bytes = copyOf(TypedArrayPrototypeSubarray(this.#bytes, from, from + span));
    return new Blob([bytes], { type: contentType === undefined ? '' : normalizeType(contentType) });
  }

  async text(): Promise<string> {
    return utf8Decode(this.#bytes, byteLengthOf(this.#bytes));
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    return copyOf(this.#bytes).buffer as ArrayBuffer;
  }

  async bytes(): Promise<Uint8Array> {
    return copyOf(this.#bytes);
  }

  stream(): ReadableStream<Uint8Array> {
    return streamOfBytes(copyOf(this.#bytes));
  }
}
defineToStringTag(Blob.prototype, 'Blob');

export interface FilePropertyBag extends BlobPropertyBag {
  lastModified?: number;
}

export class File extends Blob {
  readonly #name: string;
  readonly #lastModified: number;

  constructor(parts: unknown, name: unknown, options: FilePropertyBag | null | undefined = undefined) {
    requireArguments(arguments.length, 2, 'File');
    super(parts, options);
    this.#name = toUSVString(name);
    const lastModified = options?.lastModified;
    this.#lastModified = lastModified === undefined ? DatePrototypeGetTime(new SafeDate()) : toLongLong(lastModified);
  }

  get name(): string {
    return this.#name;
  }

  get lastModified(): number {
    return this.#lastModified;
  }
}
defineToStringTag(File.prototype, 'File');

function toLongLong(value: unknown): number {
  const n = MathTrunc(NumberCtor(value));
  return NumberIsFinite(n) ? n : 0;
}

function relativeIndex(value: unknown, size: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = MathTrunc(NumberCtor(value));
  if (!NumberIsFinite(n)) return n > 0 ? size : 0;
  return n < 0 ? MathMax(size + n, 0) : MathMin(n, size);
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new SafeUint8Array(total);
  let offset = 0;
  for (let i = 0; i < chunks.length; i++) {
    TypedArrayPrototypeSet(out, chunks[i], offset);
    offset += byteLengthOf(chunks[i]);
  }
  return out;
}

type FormEntry = [name: string, value: string | File];
const makeFormDataIterator = iteratorFactory<unknown>('FormData Iterator');

export let isFormData: (value: unknown) => value is FormData;
let formEntries: (form: FormData) => FormEntry[];

/** The spec's "create an entry": a Blob value becomes a File named `filename` (or 'blob'). */
function toEntryValue(value: unknown, filename: unknown, given: number): string | File {
  if (!isBlob(value)) {
    if (given > 2) throw new SafeTypeError("FormData: a filename is only allowed with a Blob value");
    return toUSVString(value);
  }
  if (value instanceof File && given <= 2) return value;
  const name = given > 2 ? toUSVString(filename) : value instanceof File ? value.name : 'blob';
  return new File([value], name, { type: value.type, lastModified: value instanceof File ? value.lastModified : undefined });
}

export class FormData {
  readonly #entries: FormEntry[] = [];

  static {
    isFormData = (value): value is FormData => typeof value === 'object' && value !== null && #entries in value;
    formEntries = (form) => form.#entries;
  }

  constructor(form: unknown = undefined) {
    if (form !== undefined) throw new SafeTypeError('FormData: an HTML form element is not supported here');
  }

  append(name: unknown, value: unknown, filename: unknown = undefined): void {
    requireArguments(arguments.length, 2, 'FormData.append');
    const entries = this.#entries;
    entries[entries.length] = [toUSVString(name), toEntryValue(value, filename, arguments.length)];
  }

  delete(name: unknown): void {
    requireArguments(arguments.length, 1, 'FormData.delete');
    const key = toUSVString(name);
    const entries = this.#entries;
    for (let i = entries.length - 1; i >= 0; i--) if (entries[i][0] === key) ArrayPrototypeSplice(entries, i, 1);
  }

  get(name: unknown): string | File | null {
    requireArguments(arguments.length, 1, 'FormData.get');
    const key = toUSVString(name);
    const entries = this.#entries;
    for (let i = 0; i < entries.length; i++) if (entries[i][0] === key) return entries[i][1];
    return null;
  }

  getAll(name: unknown): Array<string | File> {
    requireArguments(arguments.length, 1, 'FormData.getAll');
    const key = toUSVString(name);
    const entries = this.#entries;
    const out: Array<string | File> = [];
    for (let i = 0; i < entries.length; i++) if (entries[i][0] === key) out[out.length] = entries[i][1];
    return out;
  }

  has(name: unknown): boolean {
    requireArguments(arguments.length, 1, 'FormData.has');
    const key = toUSVString(name);
    const entries = this.#entries;
    for (let i = 0; i < entries.length; i++) if (entries[i][0] === key) return true;
    return false;
  }

  set(name: unknown, value: unknown, filename: unknown = undefined): void {
    requireArguments(arguments.length, 2, 'FormData.set');
    const key = toUSVString(name);
    const entry: FormEntry = [key, toEntryValue(value, filename, arguments.length)];
    const entries = this.#entries;
    let replaced = false;
    for (let i = 0; i < entries.length; i++) {
      if (entries[i][0] !== key) continue;
      if (replaced) ArrayPrototypeSplice(entries, i--, 1);
      else {
        entries[i] = entry;
        replaced = true;
      }
    }
    if (!replaced) entries[entries.length] = entry;
  }

  forEach(callback: (value: unknown, key: string, parent: FormData) => void, thisArg: unknown = undefined): void {
    if (typeof callback !== 'function') throw new SafeTypeError("FormData.forEach: 'callback' must be a function");
    const entries = this.#entries;
    for (let i = 0; i < entries.length; i++) ReflectApply(callback, thisArg, [entries[i][1], entries[i][0], this]);
  }

  entries(): IterableIterator<unknown> {
    const entries = this.#entries;
    return listIterator(makeFormDataIterator, () => entries.length, (i) => [entries[i][0], entries[i][1]]);
  }

  keys(): IterableIterator<unknown> {
    const entries = this.#entries;
    return listIterator(makeFormDataIterator, () => entries.length, (i) => entries[i][0]);
  }

  values(): IterableIterator<unknown> {
    const entries = this.#entries;
    return listIterator(makeFormDataIterator, () => entries.length, (i) => entries[i][1]);
  }

  [Symbol.iterator](): IterableIterator<unknown> {
    return this.entries();
  }
}
defineToStringTag(FormData.prototype, 'FormData');

/** Names and filenames in a multipart header: the HTML spec escapes LF, CR and '"' as %0A, %0D, %22. */
function escapeMultipart(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    out += c === '\n' ? '%0A' : c === '\r' ? '%0D' : c === '"' ? '%22' : c;
  }
  return out;
}

/** Normalizes line breaks in names and string values to CRLF, as the spec's "convert to a list of name-value pairs". */
function crlf(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\r') {
      out += '\r\n';
      if (value[i + 1] === '\n') i++;
    } else if (c === '\n') out += '\r\n';
    else out += c;
  }
  return out;
}

export function serializeFormData(form: FormData): { bytes: Uint8Array; contentType: string } {
  const boundary = randomBoundary();
  const entries = formEntries(form);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const push = (bytes: Uint8Array) => {
    chunks[chunks.length] = bytes;
    total += byteLengthOf(bytes);
  };
  for (let i = 0; i < entries.length; i++) {
    const [name, value] = entries[i];
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${escapeMultipart(crlf(name))}"`;
    if (typeof value === 'string') {
      push(utf8Encode(`${head}\r\n\r\n${crlf(value)}\r\n`));
    } else {
      head += `; filename="${escapeMultipart(value.name)}"\r\nContent-Type: ${value.type === '' ? 'application/octet-stream' : value.type}\r\n\r\n`;
      push(utf8Encode(head));
      push(blobBytes(value));
      push(utf8Encode('\r\n'));
    }
  }
  push(utf8Encode(`--${boundary}--\r\n`));
  return { bytes: concat(chunks, total), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** The essence (type/subtype) of a Content-Type and its `boundary` parameter. */
function parseContentType(value: string): { essence: string; boundary: string | null } {
  const semi = StringPrototypeIndexOf(value, ';');
  const essence = StringPrototypeToLowerCase(trimSpaces(semi < 0 ? value : StringPrototypeSlice(value, 0, semi)));
  let boundary: string | null = null;
  if (semi >= 0) {
    const params = StringPrototypeSlice(value, semi + 1);
    let rest = params;
    while (rest.length > 0) {
      const next = StringPrototypeIndexOf(rest, ';');
      const part = trimSpaces(next < 0 ? rest : StringPrototypeSlice(rest, 0, next));
      rest = next < 0 ? '' : StringPrototypeSlice(rest, next + 1);
      const eq = StringPrototypeIndexOf(part, '=');
      if (eq < 0) continue;
      if (StringPrototypeToLowerCase(trimSpaces(StringPrototypeSlice(part, 0, eq))) !== 'boundary') continue;
      let v = trimSpaces(StringPrototypeSlice(part, eq + 1));
      if (v.length >= 2 && v[0] === '"' && v[v.length - 1] === '"') v = StringPrototypeSlice(v, 1, v.length - 1);
      boundary = v;
      break;
    }
  }
  return { essence, boundary };
}

function trimSpaces(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start++;
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end--;
  return StringPrototypeSlice(value, start, end);
}

/** Body.formData(): multipart/form-data or application/x-www-form-urlencoded, else TypeError. */
export function parseFormData(bytes: Uint8Array, contentType: string | null): FormData {
  const type = contentType === null ? { essence: '', boundary: null } : parseContentType(contentType);
  const form = new FormData();
  if (type.essence === 'application/x-www-form-urlencoded') {
    const pairs = parseUrlencoded(utf8Decode(bytes, byteLengthOf(bytes)));
    for (let i = 0; i < pairs.length; i++) form.append(pairs[i][0], pairs[i][1]);
    return form;
  }
  if (type.essence === 'multipart/form-data') {
    if (type.boundary === null || type.boundary === '' || type.boundary.length > 70) {
      throw new SafeTypeError('formData: multipart body without a valid boundary parameter');
    }
    parseMultipart(bytes, type.boundary, form);
    return form;
  }
  throw new SafeTypeError(`formData: cannot parse a body of type "${contentType ?? ''}"`);
}

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  const n = byteLengthOf(needle);
  const last = byteLengthOf(haystack) - n;
  outer: for (let i = from; i <= last; i++) {
    for (let j = 0; j < n; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** RFC 7578 parts: headers (Content-Disposition name/filename, Content-Type), then content up to CRLF--boundary. */
function parseMultipart(bytes: Uint8Array, boundary: string, form: FormData): void {
  const bad = () => new SafeTypeError('formData: malformed multipart/form-data body');
  const delimiter = utf8Encode(`--${boundary}`);
  const next = utf8Encode(`\r\n--${boundary}`);
  const headEnd = utf8Encode('\r\n\r\n');
  let at = indexOfBytes(bytes, delimiter, 0);
  if (at < 0) throw bad();
  at += byteLengthOf(delimiter);
  for (;;) {
    // After a delimiter: "--" ends the body, CRLF starts a part.
    if (bytes[at] === 0x2d && bytes[at + 1] === 0x2d) return;
    if (bytes[at] !== 0x0d || bytes[at + 1] !== 0x0a) throw bad();
    at += 2;
    const headStop = indexOfBytes(bytes, headEnd, at);
    if (headStop < 0) throw bad();
    const head = utf8Decode(TypedArrayPrototypeSubarray(bytes, at, headStop), headStop - at);
    const contentStart = headStop + 4;
    const contentEnd = indexOfBytes(bytes, next, contentStart);
    if (contentEnd < 0) throw bad();
    const content = TypedArrayPrototypeSubarray(bytes, contentStart, contentEnd);
    let name: string | null = null;
    let filename: string | null = null;
    let partType = '';
    let rest = head;
    while (rest.length > 0) {
      const eol = StringPrototypeIndexOf(rest, '\r\n');
      const line = eol < 0 ? rest : StringPrototypeSlice(rest, 0, eol);
      rest = eol < 0 ? '' : StringPrototypeSlice(rest, eol + 2);
      const colon = StringPrototypeIndexOf(line, ':');
      if (colon < 0) continue;
      const field = StringPrototypeToLowerCase(trimSpaces(StringPrototypeSlice(line, 0, colon)));
      const value = trimSpaces(StringPrototypeSlice(line, colon + 1));
      if (field === 'content-type') partType = value;
      else if (field === 'content-disposition') {
        name = dispositionParam(value, 'name');
        filename = dispositionParam(value, 'filename');
      }
    }
    if (name === null) throw bad();
    if (filename !== null) form.append(name, new File([copyOf(content)], filename, { type: partType }));
    else form.append(name, utf8Decode(content, byteLengthOf(content)));
    at = contentEnd + byteLengthOf(next);
  }
}

/** A quoted (or bare) parameter of Content-Disposition; %22, %0D, %0A unescaped as browsers write them. */
function dispositionParam(value: string, param: string): string | null {
  let from = 0;
  for (;;) {
    const semi = StringPrototypeIndexOf(value, ';', from);
    if (semi < 0) return null;
    let i = semi + 1;
    while (value[i] === ' ' || value[i] === '\t') i++;
    const eq = StringPrototypeIndexOf(value, '=', i);
    if (eq < 0) return null;
    const key = StringPrototypeToLowerCase(trimSpaces(StringPrototypeSlice(value, i, eq)));
    let j = eq + 1;
    let result: string;
    if (value[j] === '"') {
      const close = StringPrototypeIndexOf(value, '"', j + 1);
      if (close < 0) return null;
      result = StringPrototypeSlice(value, j + 1, close);
      j = close + 1;
    } else {
      const end = StringPrototypeIndexOf(value, ';', j);
      result = trimSpaces(StringPrototypeSlice(value, j, end < 0 ? value.length : end));
      j = end < 0 ? value.length : end;
    }
    if (key === param) return unescapeQuoted(result);
    from = j;
  }
}

function unescapeQuoted(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '%' && i + 2 < value.length) {
      const code = StringPrototypeSlice(value, i, i + 3);
      if (code === '%22') out += '"';
      else if (code === '%0D' || code === '%0d') out += '\r';
      else if (code === '%0A' || code === '%0a') out += '\n';
      else {
        out += '%';
        continue;
      }
      i += 2;
    } else out += value[i];
  }
  return out;
}
