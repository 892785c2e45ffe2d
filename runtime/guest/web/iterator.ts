/**
 * WebIDL iterators (`Headers Iterator`, `URLSearchParams Iterator`): objects inheriting from
 * %IteratorPrototype% whose `next` is a method of their own prototype, not a generator's, so a
 * patched %GeneratorPrototype%.next cannot reach them.
 */
import { IteratorPrototype, ObjectSetPrototypeOf } from '../primordials.ts';
import { defineToStringTag } from './webidl.ts';

/** Returns a factory of iterators tagged `tag`; `step` is called once per `next()`. */
export function iteratorFactory<T>(tag: string): (step: () => IteratorResult<T>) => IterableIterator<T> {
  class WebIterator {
    readonly #step: () => IteratorResult<T>;

    constructor(step: () => IteratorResult<T>) {
      this.#step = step;
    }

    next(): IteratorResult<T> {
      return this.#step();
    }
  }
  ObjectSetPrototypeOf(WebIterator.prototype, IteratorPrototype);
  // Built-in iterator prototypes have no `constructor` of their own.
  delete (WebIterator.prototype as { constructor?: unknown }).constructor;
  defineToStringTag(WebIterator.prototype, tag);
  return (step) => new WebIterator(step) as unknown as IterableIterator<T>;
}

/** Yields `at(0)`, `at(1)`, … while `index < size()`, re-reading both each step as WebIDL pair
 * iterators do, so entries added or removed during iteration are seen. */
export function listIterator<T>(
  make: (step: () => IteratorResult<T>) => IterableIterator<T>,
  size: () => number,
  at: (index: number) => T,
): IterableIterator<T> {
  let index = 0;
  return make(() => (index < size() ? { value: at(index++), done: false } : { value: undefined, done: true }));
}
