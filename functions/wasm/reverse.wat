;; reverse.wat: a Tributary WASM function (byte ABI, see docs/wasm-abi.md).
;; fetch: answers with the request body reversed byte by byte. process: emits the record reversed.
;; Compiled to functions/build/reverse.wasm by scripts/build-wasm.ts (wabt) at build/test time.
(module
  (memory (export "memory") 1)
  ;; Input lives at INPUT, the reversed output right after it.
  (global $INPUT i32 (i32.const 1024))

  ;; alloc(len) -> ptr: grows memory so that input and output (2 * len bytes) fit, then returns INPUT.
  (func (export "alloc") (param $len i32) (result i32)
    (local $needed i32)
    (local.set $needed
      (i32.add (global.get $INPUT) (i32.shl (local.get $len) (i32.const 1))))
    (block $done
      (loop $grow
        (br_if $done (i32.le_u (local.get $needed) (i32.shl (memory.size) (i32.const 16))))
        ;; memory.grow answers -1 past the platform's cap (memoryLimitMb): trap, the call fails cleanly.
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (global.get $INPUT))

  ;; handle(ptr, len) -> (outPtr << 32) | outLen
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32)
    (local $out i32)
    (local.set $out (i32.add (local.get $ptr) (local.get $len)))
    (block $done
      (loop $copy
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (i32.store8
          (i32.add (local.get $out) (local.get $i))
          (i32.load8_u
            (i32.sub (i32.add (local.get $ptr) (local.get $len)) (i32.add (local.get $i) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))
)
