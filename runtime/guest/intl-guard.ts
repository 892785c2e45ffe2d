/**
 * Intl.DateTimeFormat as functions see it: each instance is charged INTL_DATE_TIME_FORMAT_BYTES to
 * the native pool of the isolate's MemoryBudget, released once it is collected. ICU's formatters
 * live in the C++ heap, which isolated-vm's limit does not see: a function keeping formatters with
 * a time zone (25 KB each against 200 bytes of heap) reached 3 GB under memoryLimitMb=16.
 *
 * The other Intl constructors cost V8 13.6 at most about 1 KB outside the heap per instance
 * (measured), within isolated-vm's own 2-3x guideline, and are left alone. Temporary formatters
 * (`Date.prototype.toLocaleString` with options) are not retained by JS and V8 collects them on
 * its external-memory pressure.
 */
import { INTL_DATE_TIME_FORMAT_BYTES, need, type MemoryBudget } from './memory-budget.ts';
import { ObjectDefineProperty, ObjectGetOwnPropertyDescriptor, ReflectApply, ReflectConstruct, ReflectOwnKeys } from './primordials.ts';

export function installIntlGuard(global: typeof globalThis, budget: MemoryBudget): void {
  const intl = (global as unknown as { Intl?: Record<string, unknown> }).Intl;
  const Original = intl?.DateTimeFormat as (new (locales?: unknown, options?: unknown) => object) | undefined;
  if (intl === undefined || typeof Original !== 'function') return;

  // Callable with or without `new`, as ECMA-402 specifies for DateTimeFormat.
  function DateTimeFormat(this: unknown, locales?: unknown, options?: unknown): object {
    const charge = budget.reserve(need(0, INTL_DATE_TIME_FORMAT_BYTES, 0, 0), 'Intl.DateTimeFormat');
    let format: object;
    try {
      format = new.target === undefined ? ReflectApply(Original!, this, [locales, options]) : ReflectConstruct(Original!, [locales, options], new.target);
    } catch (thrown) {
      budget.release(charge);
      throw thrown;
    }
    budget.hold(charge, format, false);
    return format;
  }

  const keys = ReflectOwnKeys(Original);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (key === 'prototype' || key === 'name' || key === 'length' || key === 'arguments' || key === 'caller') continue;
    ObjectDefineProperty(DateTimeFormat, key, ObjectGetOwnPropertyDescriptor(Original, key)!);
  }
  ObjectDefineProperty(DateTimeFormat, 'length', { value: 0, writable: false, enumerable: false, configurable: true });
  ObjectDefineProperty(DateTimeFormat, 'prototype', { value: Original.prototype, writable: false, enumerable: false, configurable: false });
  ObjectDefineProperty(Original.prototype, 'constructor', { value: DateTimeFormat, writable: true, enumerable: false, configurable: true });
  ObjectDefineProperty(intl, 'DateTimeFormat', { value: DateTimeFormat, writable: true, enumerable: false, configurable: true });
}
