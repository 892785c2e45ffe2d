/** RFC 9110 productions the Fetch standard validates against. */
import { StringPrototypeCharCodeAt } from '../primordials.ts';

/** token = 1*tchar; tchar is DIGIT, ALPHA or one of !#$%&'*+-.^_`|~ */
export function isToken(input: string): boolean {
  if (input.length === 0) return false;
  for (let i = 0; i < input.length; i++) if (!isTokenUnit(StringPrototypeCharCodeAt(input, i))) return false;
  return true;
}

/** reason-phrase = *( HTAB / SP / VCHAR / obs-text ) */
export function isReasonPhrase(input: string): boolean {
  for (let i = 0; i < input.length; i++) {
    const unit = StringPrototypeCharCodeAt(input, i);
    if (!(unit === 0x09 || (unit >= 0x20 && unit <= 0x7e) || (unit >= 0x80 && unit <= 0xff))) return false;
  }
  return true;
}

function isTokenUnit(unit: number): boolean {
  if ((unit >= 0x30 && unit <= 0x39) || (unit >= 0x41 && unit <= 0x5a) || (unit >= 0x61 && unit <= 0x7a)) return true;
  return (
    unit === 0x21 || (unit >= 0x23 && unit <= 0x27) || unit === 0x2a || unit === 0x2b || unit === 0x2d ||
    unit === 0x2e || unit === 0x5e || unit === 0x5f || unit === 0x60 || unit === 0x7c || unit === 0x7e
  );
}
