/**
 * `performance` (https://w3c.github.io/hr-time/) and `navigator`, as Workers has them:
 * `performance.timeOrigin` is 0 and `performance.now()` is milliseconds since the epoch (the
 * same clock as Date.now(); no sub-millisecond timer is exposed to tenants, which also keeps
 * high-resolution timing attacks harder). `navigator.userAgent` starts with
 * "Cloudflare-Workers", which libraries (hono's getRuntimeKey, for one) use to pick their
 * Workers code paths; `hardwareConcurrency` is 1 (a function runs on one thread).
 */
import { SafeDate, SafeTypeError } from '../primordials.ts';
import { defineToStringTag } from './webidl.ts';

const dateNow = SafeDate.now;
const INTERNAL = Symbol('internal');
export const USER_AGENT = 'Cloudflare-Workers (compatible; Tributary)';

export class Performance {
  constructor(token: unknown = undefined) {
    if (token !== INTERNAL) throw new SafeTypeError('Illegal constructor');
  }

  get timeOrigin(): number {
    return 0;
  }

  now(): number {
    return dateNow();
  }

  toJSON(): object {
    return { timeOrigin: 0 };
  }
}
defineToStringTag(Performance.prototype, 'Performance');

export class Navigator {
  constructor(token: unknown = undefined) {
    if (token !== INTERNAL) throw new SafeTypeError('Illegal constructor');
  }

  get userAgent(): string {
    return USER_AGENT;
  }

  get hardwareConcurrency(): number {
    return 1;
  }

  get language(): string {
    return 'en-US';
  }
}
defineToStringTag(Navigator.prototype, 'Navigator');

export function createPerformance(): Performance {
  return new Performance(INTERNAL);
}

export function createNavigator(): Navigator {
  return new Navigator(INTERNAL);
}
