// Per-user state cache: LRU bounded by bytes, O(1) get / put / delete / evict.
// A JS Map iterates in insertion order, so re-inserting on access keeps the least recently used
// entry first: eviction takes `keys().next()`. Lives in the serving worker (DESIGN.md §6).

export type UserKey = string | number;

export interface StateCacheStats {
  /** Users currently cached. */
  entries: number;
  /** Bytes accounted to cached states (payload + per-entry overhead). */
  bytes: number;
  /** The bound (cacheBytes). */
  maxBytes: number;
  hits: number;
  misses: number;
  evictions: number;
  /** States not cached because one alone exceeds maxBytes. */
  rejected: number;
}

/** Rough per-entry bookkeeping cost (Map entry, typed-array header, key) counted against the bound. */
export const ENTRY_OVERHEAD_BYTES = 96;

export function entryBytes(key: UserKey, state: Float32Array): number {
  return state.byteLength + ENTRY_OVERHEAD_BYTES + (typeof key === 'string' ? 2 * key.length : 8);
}

export class StateCache {
  private readonly map = new Map<UserKey, Float32Array>();
  private bytesUsed = 0;
  private hitCount = 0;
  private missCount = 0;
  private evictionCount = 0;
  private rejectedCount = 0;

  constructor(readonly maxBytes: number) {
    if (!(Number.isSafeInteger(maxBytes) && maxBytes >= 0)) {
      throw new RangeError(`StateCache: maxBytes: expected a non-negative integer, got ${String(maxBytes)}`);
    }
  }

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.bytesUsed;
  }

  /** The user's state (marks it most recently used), or undefined; counts a hit or a miss. */
  get(key: UserKey): Float32Array | undefined {
    const s = this.map.get(key);
    if (s === undefined) {
      this.missCount++;
      return undefined;
    }
    this.hitCount++;
    this.map.delete(key);
    this.map.set(key, s);
    return s;
  }

  /** The user's state without touching recency or statistics. */
  peek(key: UserKey): Float32Array | undefined {
    return this.map.get(key);
  }

  has(key: UserKey): boolean {
    return this.map.has(key);
  }

  /**
   * Stores the state as the most recently used entry and evicts least recently used entries until
   * the bound holds. A state larger than the whole bound is not cached (returns false).
   */
  put(key: UserKey, state: Float32Array): boolean {
    const old = this.map.get(key);
    if (old !== undefined) {
      this.map.delete(key);
      this.bytesUsed -= entryBytes(key, old);
    }
    const b = entryBytes(key, state);
    if (b > this.maxBytes) {
      this.rejectedCount++;
      return false;
    }
    this.map.set(key, state);
    this.bytesUsed += b;
    while (this.bytesUsed > this.maxBytes) {
      const lru = this.map.keys().next();
      /* c8 ignore next */
      if (lru.done) break;
      const k = lru.value;
      this.bytesUsed -= entryBytes(k, this.map.get(k) as Float32Array);
      this.map.delete(k);
      this.evictionCount++;
    }
    return true;
  }

  delete(key: UserKey): boolean {
    const s = this.map.get(key);
    if (s === undefined) return false;
    this.map.delete(key);
    this.bytesUsed -= entryBytes(key, s);
    return true;
  }

  clear(): void {
    this.map.clear();
    this.bytesUsed = 0;
  }

  /** Keys from least to most recently used. */
  keys(): UserKey[] {
    return [...this.map.keys()];
  }

  stats(): StateCacheStats {
    return {
      entries: this.map.size,
      bytes: this.bytesUsed,
      maxBytes: this.maxBytes,
      hits: this.hitCount,
      misses: this.missCount,
      evictions: this.evictionCount,
      rejected: this.rejectedCount,
    };
  }
}
