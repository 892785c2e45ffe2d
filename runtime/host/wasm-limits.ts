/**
 * Caps a WebAssembly module's linear memory at the function's `memoryLimitMb` by rewriting the
 * `maximum` of every memory in its memory section (binary format §5.5.8). WASM linear memory lives
 * outside the V8 heap, so isolated-vm's heap limit does not see it: without this cap an unbounded
 * `memory.grow` loop could take the whole host process down. With it, `memory.grow` past the
 * limit returns -1, as the spec allows.
 */
import { TributaryError } from '../errors.ts';

const WASM_PAGE_BYTES = 65536;
const MEMORY_SECTION = 5;
const MAGIC = [0x00, 0x61, 0x73, 0x6d];

function invalid(message: string): TributaryError {
  return new TributaryError('ERR_WASM_INVALID', message);
}

function readU32(bytes: Uint8Array, offset: number): [value: number, next: number] {
  let result = 0;
  let shift = 0;
  for (let i = offset; i < bytes.length && i < offset + 5; i++) {
    const byte = bytes[i];
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if ((byte & 0x80) === 0) return [result, i + 1];
  }
  throw invalid('malformed LEB128 integer');
}

function writeU32(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

export function capWasmMemory(bytes: Uint8Array, memoryLimitMb: number): Uint8Array {
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) throw invalid('not a WebAssembly module (bad magic number)');
  const maxPages = Math.floor((memoryLimitMb * 1024 * 1024) / WASM_PAGE_BYTES);
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  let offset = 8;
  while (offset < bytes.length) {
    const id = bytes[offset];
    const [size, contentStart] = readU32(bytes, offset + 1);
    const contentEnd = contentStart + size;
    if (contentEnd > bytes.length) throw invalid('section extends past the end of the module');
    if (id !== MEMORY_SECTION) {
      parts.push(bytes.subarray(offset, contentEnd));
    } else {
      const content = rewriteMemorySection(bytes.subarray(contentStart, contentEnd), maxPages, memoryLimitMb);
      parts.push(Uint8Array.of(MEMORY_SECTION, ...writeU32(content.length)), content);
    }
    offset = contentEnd;
  }
  return Buffer.concat(parts);
}

function rewriteMemorySection(section: Uint8Array, maxPages: number, memoryLimitMb: number): Uint8Array {
  let [count, offset] = readU32(section, 0);
  const out = writeU32(count);
  while (count-- > 0) {
    const flags = section[offset++];
    if (flags !== 0x00 && flags !== 0x01) throw invalid(`unsupported memory flags 0x${flags?.toString(16)} (shared or 64-bit memory)`);
    const [min, afterMin] = readU32(section, offset);
    offset = afterMin;
    let max = maxPages;
    if (flags === 0x01) {
      const [declaredMax, afterMax] = readU32(section, offset);
      offset = afterMax;
      max = Math.min(declaredMax, maxPages);
    }
    if (min > maxPages) {
      throw invalid(`module needs ${min} pages of memory at start, over memoryLimitMb=${memoryLimitMb} (${maxPages} pages)`);
    }
    out.push(0x01, ...writeU32(min), ...writeU32(max));
  }
  if (offset !== section.length) throw invalid('malformed memory section');
  return Uint8Array.from(out);
}
