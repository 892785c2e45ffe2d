/**
 * The Tributary WASM byte ABI (documented in docs/wasm-abi.md): a raw module exporting
 *   memory                      the linear memory
 *   alloc(len: i32) -> i32      returns a pointer to `len` writable bytes
 *   handle(ptr: i32, len: i32) -> i64   processes the input bytes; returns (outPtr << 32) | outLen
 * and importing nothing. `fetch` passes the request body and answers 200 with the output bytes;
 * `process` passes the record value (bytes as is, strings as UTF-8, anything else as JSON) and
 * emits the output as a UTF-8 string unless it is empty.
 */
import type { Handlers } from './dispatch.ts';
import { guestError, type GuestError } from './errors.ts';
import { webGlobals } from './web-globals.ts';
import type { WasmGuard } from './wasm-guard.ts';
import { ArrayBufferIsView, ArrayBufferPrototypeGetByteLength, JSONStringify, SafeUint8Array, TypedArrayPrototypeSet, Wasm, WebAssemblyMemory } from './primordials.ts';

interface AbiExports {
  memory: { buffer: ArrayBuffer };
  alloc: (len: number) => number;
  handle: (ptr: number, len: number) => bigint;
}

export function loadWasm(global: typeof globalThis, bytes: Uint8Array, guard: WasmGuard): { handlers: Handlers } | { error: GuestError } {
  let exports: AbiExports;
  try {
    // Charged to the isolate's memory budget like any module, its memories capped by the host already.
    exports = Wasm.instanceExports(guard.instantiateTrusted(bytes)) as unknown as AbiExports;
  } catch (thrown) {
    return { error: guestError('ERR_WASM_INVALID', `cannot instantiate module: ${String((thrown as Error)?.message ?? thrown)}`) };
  }
  if (!(exports.memory instanceof WebAssemblyMemory) || typeof exports.alloc !== 'function' || typeof exports.handle !== 'function') {
    return { error: guestError('ERR_WASM_INVALID', 'module must export memory, alloc(len) and handle(ptr, len) -> i64') };
  }
  const web = webGlobals(global);
  const encoder = new web.TextEncoder();
  const decoder = new web.TextDecoder();
  const ResponseCtor = web.Response;

  const memory = () => Wasm.memoryBuffer(exports.memory);
  const call = (input: Uint8Array): Uint8Array => {
    const ptr = exports.alloc(input.length) >>> 0;
    TypedArrayPrototypeSet(new SafeUint8Array(memory(), ptr, input.length), input);
    const packed = BigInt.asUintN(64, BigInt(exports.handle(ptr, input.length)));
    const outPtr = Number(packed >> 32n);
    const outLen = Number(packed & 0xffffffffn);
    if (outPtr + outLen > ArrayBufferPrototypeGetByteLength(memory())) {
      throw new RangeError(`handle returned bytes [${outPtr}, ${outPtr + outLen}) outside linear memory`);
    }
    // Copy out: the module may reuse that memory on the next call.
    return new SafeUint8Array(new SafeUint8Array(memory(), outPtr, outLen));
  };

  const toBytes = (value: unknown): Uint8Array => {
    if (value instanceof SafeUint8Array) return value;
    if (ArrayBufferIsView(value)) return new SafeUint8Array(value.buffer, value.byteOffset, value.byteLength);
    return encoder.encode(typeof value === 'string' ? value : JSONStringify(value) ?? '');
  };

  return {
    handlers: {
      async fetch(request: unknown) {
        const body = new SafeUint8Array(await (request as InstanceType<typeof web.Request>).arrayBuffer());
        return new ResponseCtor(call(body), { headers: { 'content-type': 'application/octet-stream' } });
      },
      process(record: unknown) {
        const out = call(toBytes((record as { value: unknown }).value));
        return out.length === 0 ? undefined : decoder.decode(out);
      },
    },
  };
}
