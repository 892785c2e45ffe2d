/**
 * What the host holds for guests' asynchronous operations (host/isolate-slot.ts `startOp`): each
 * operation's input is charged here from when it starts until its work completes — even past
 * the end of the invocation that started it, since the work still holds the bytes — so that the
 * host's own memory for tenants is bounded per invocation and per process
 * (MAX_HOST_OP_BYTES_PER_INVOCATION, MAX_HOST_OP_BYTES_PER_HOST).
 */
import { MAX_HOST_OP_BYTES_PER_HOST } from '../limits.ts';

/** Values counted before a payload counts as too large whatever its bytes (walking it costs too). */
const MAX_VALUES = 100_000;

let heldBytes = 0;

/** Charges `bytes` to the host; false (nothing charged) when that would pass the host's bound. */
export function chargeHostOpBytes(bytes: number): boolean {
  if (heldBytes + bytes > MAX_HOST_OP_BYTES_PER_HOST) return false;
  heldBytes += bytes;
  return true;
}

export function releaseHostOpBytes(bytes: number): void {
  heldBytes = Math.max(0, heldBytes - bytes);
}

export function hostOpBytesHeld(): number {
  return heldBytes;
}

/**
 * Bytes a copied-out payload holds: binary data by its length, strings by two bytes a character,
 * anything else a few bytes; walked with an explicit stack (payloads are tenant-shaped). Infinity
 * past MAX_VALUES values.
 */
export function payloadBytes(payload: unknown): number {
  let bytes = 0;
  let values = 0;
  const stack: unknown[] = [payload];
  while (stack.length > 0) {
    if (++values > MAX_VALUES) return Infinity;
    const value = stack.pop();
    if (typeof value === 'string') bytes += value.length * 2;
    else if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) bytes += value.byteLength;
    else if (typeof value === 'object' && value !== null) {
      bytes += 16;
      if (value instanceof Map) for (const entry of value) stack.push(entry);
      else if (value instanceof Set) for (const entry of value) stack.push(entry);
      else for (const key of Object.keys(value)) stack.push(key, (value as Record<string, unknown>)[key]);
    } else bytes += 8;
  }
  return bytes;
}
