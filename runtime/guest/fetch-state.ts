/**
 * `env.STATE` for fetch handlers: the function's own R2-like namespace, kept by the control plane
 * (runtime/function-state.ts) and reached through one asynchronous host operation per call, so
 * every host and instance sees the same values. Same shape as the stream handlers' STATE
 * (state-binding.ts): get → {key, size, text(), json(), arrayBuffer()} | null, put → {key},
 * delete(key | keys), list({prefix, limit, cursor}) → {objects, truncated, cursor}. Values are
 * strings or bytes up to 1 MiB. Failures reject with a TypeError or RangeError whose message
 * starts with a stable code (ERR_BAD_REQUEST, ERR_TOO_LARGE, ERR_QUOTA_EXCEEDED).
 */
import type { HostOps, OpOutcome } from './host-ops.ts';
import { JSONParse, ObjectFreeze, SafeRangeError, SafeTypeError, TypedArrayPrototypeGetSymbolToStringTag } from './primordials.ts';
import { byteLengthOf, copyOf, viewOf } from './web/bytes.ts';
import { utf8Decode, utf8Encode, utf8Length } from './web/utf8.ts';

type Stored = string | Uint8Array;

export function createFetchState(ops: HostOps): object {
  const call = async (op: string, args: unknown[]): Promise<unknown> => {
    const outcome: OpOutcome = await ops.run('state', [op, args]);
    if (!outcome.ok) {
      const { name, message } = outcome.error;
      throw name === 'RangeError' ? new SafeRangeError(message) : new SafeTypeError(message);
    }
    return outcome.value;
  };
  // Only strings and numbers cross to the host: anything else is refused here, with the same code.
  const keyArg = (key: unknown): string => {
    if (typeof key !== 'string') throw new SafeTypeError('ERR_BAD_REQUEST: state keys are non-empty strings of at most 1024 characters');
    return key;
  };
  const optional = (value: unknown, what: string, type: 'string' | 'number'): unknown => {
    if (value !== undefined && typeof value !== type) throw new SafeTypeError(`ERR_BAD_REQUEST: list ${what} must be a ${type}`);
    return value;
  };
  const bytesOf = (value: Stored): Uint8Array => (typeof value === 'string' ? utf8Encode(value) : copyOf(value));
  const body = (key: string, value: Stored) =>
    ObjectFreeze({
      key,
      size: typeof value === 'string' ? utf8Length(value) : byteLengthOf(value),
      text: async () => (typeof value === 'string' ? value : utf8Decode(value, byteLengthOf(value))),
      json: async () => JSONParse(typeof value === 'string' ? value : utf8Decode(value, byteLengthOf(value))),
      arrayBuffer: async () => bytesOf(value).buffer,
    });
  return ObjectFreeze({
    async get(key: unknown) {
      const value = await call('get', [keyArg(key)]);
      if (value === null) return null;
      if (typeof value !== 'string' && TypedArrayPrototypeGetSymbolToStringTag(value) !== 'Uint8Array') throw new SafeTypeError('state returned a malformed value');
      return body(key as string, value as Stored);
    },
    async put(key: unknown, value: unknown) {
      keyArg(key);
      let stored: Stored;
      if (typeof value === 'string') stored = value;
      else {
        const view = viewOf(value);
        if (view === null) throw new SafeTypeError('ERR_BAD_REQUEST: state values are strings, ArrayBuffers or ArrayBufferViews');
        stored = copyOf(view);
      }
      await call('put', [key, stored]);
      return ObjectFreeze({ key });
    },
    async delete(keys: unknown) {
      if (typeof keys === 'string') await call('delete', [keyArg(keys)]);
      else if (typeof keys === 'object' && keys !== null) {
        const list = keys as unknown[];
        const n = list.length;
        for (let i = 0; i < n && i < 1000; i++) await call('delete', [keyArg(list[i])]);
      } else throw new SafeTypeError('ERR_BAD_REQUEST: delete takes a key or an array of keys');
    },
    async list(options: unknown = undefined) {
      const o = typeof options === 'object' && options !== null ? (options as Record<string, unknown>) : {};
      const args = { prefix: optional(o.prefix, 'prefix', 'string'), limit: optional(o.limit, 'limit', 'number'), cursor: optional(o.cursor, 'cursor', 'string') };
      const result = (await call('list', [args])) as { keys: string[]; truncated: boolean; cursor?: string };
      const objects: Array<{ key: string }> = [];
      for (let i = 0; i < result.keys.length; i++) objects[i] = ObjectFreeze({ key: result.keys[i] });
      return ObjectFreeze({ objects, truncated: result.truncated === true, cursor: result.cursor, delimitedPrefixes: [] });
    },
  });
}

