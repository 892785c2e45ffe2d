/**
 * Numeric query parameters, parsed strictly: plain decimal digits only. `Number()` would accept
 * `0x10`, `1e3`, ` 5`, `+5`, `5.0` and turn an empty string into 0; each is a 400 here, so a
 * value means one thing whoever reads it.
 *
 * @example
 *   const limit = integerParam(c.req.query('limit'), 'limit', { fallback: 100, min: 1, max: 10_000 });
 */
import { TributaryError } from '../runtime/errors.ts';

export interface IntegerRange {
  /** Used when the parameter is absent (present but empty is an error). */
  fallback: number;
  min: number;
  max: number;
}

/** More digits than any safe integer has: refused before Number() rounds them. */
const MAX_DIGITS = 16;

export function integerParam(value: string | undefined, name: string, range: IntegerRange): number {
  if (value === undefined) return range.fallback;
  const parsed = /^[0-9]+$/.test(value) && value.length <= MAX_DIGITS ? Number(value) : NaN;
  if (!Number.isSafeInteger(parsed) || parsed < range.min || parsed > range.max) {
    throw new TributaryError('ERR_BAD_REQUEST', `${name} must be an integer in [${range.min}, ${range.max}] written in decimal digits, got '${value.slice(0, 40)}'`, {
      details: { parameter: name },
    });
  }
  return parsed;
}
