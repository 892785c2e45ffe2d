/**
 * Which function versions this host runs with asynchronous entries (see budget.ts): those seen
 * outliving a synchronous slice, separately for module evaluation (load) and for calls (entry),
 * so that a heavy top level does not slow down cheap calls. Bounded: a forgotten version just
 * pays one more cut slice.
 */
import { LRUCache } from 'lru-cache';
import type { FunctionSpec } from '../function-spec.ts';

export type EntryKind = 'load' | 'entry';

const REMEMBERED_VERSIONS = 4096;

export class EntryModes {
  private readonly slow = new LRUCache<string, Set<EntryKind>>({ max: REMEMBERED_VERSIONS });

  isAsync(spec: Pick<FunctionSpec, 'name' | 'sha256'>, kind: EntryKind): boolean {
    // Asked on every call; most hosts never see a slow version, and then no key is built.
    if (this.slow.size === 0) return false;
    return this.slow.get(versionOf(spec))?.has(kind) ?? false;
  }

  markAsync(spec: Pick<FunctionSpec, 'name' | 'sha256'>, kind: EntryKind): void {
    const key = versionOf(spec);
    const kinds = this.slow.get(key) ?? new Set<EntryKind>();
    kinds.add(kind);
    this.slow.set(key, kinds);
  }
}

function versionOf(spec: Pick<FunctionSpec, 'name' | 'sha256'>): string {
  return `${spec.name}@${spec.sha256}`;
}
