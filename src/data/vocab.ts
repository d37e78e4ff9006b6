// Id ↔ index maps for items, queries and users, and hashed query-term ids. Index 0 is reserved
// (padding / unknown) in every vocabulary, so embedding tables have `size` rows and an unknown id
// never aliases a real one.
import type { Id, Query } from './schema';

/** Maps ids to dense indices 1..n (0 = padding/unknown). `7` and `"7"` are the same id. */
export class Vocab {
  private readonly index = new Map<string, number>();
  private readonly ids: string[] = [''];
  private frozen = false;

  /** Number of rows an embedding table needs (including the reserved row 0). */
  get size(): number {
    return this.ids.length;
  }

  /** Adds `id` if new (unless frozen) and returns its index (0 when frozen and unknown). */
  add(id: Id): number {
    const key = String(id);
    const got = this.index.get(key);
    if (got !== undefined) return got;
    if (this.frozen) return 0;
    const i = this.ids.length;
    this.index.set(key, i);
    this.ids.push(key);
    return i;
  }

  /** Index of `id`, or 0 when unknown. */
  get(id: Id): number {
    return this.index.get(String(id)) ?? 0;
  }

  has(id: Id): boolean {
    return this.index.has(String(id));
  }

  /** The id (as a string) at `index`; throws on an out-of-range index. */
  idAt(index: number): string {
    if (!Number.isInteger(index) || index < 1 || index >= this.ids.length) throw new Error(`Vocab.idAt: index ${index} out of range [1, ${this.ids.length - 1}]`);
    return this.ids[index];
  }

  /** Stops growing: later unknown ids map to 0. */
  freeze(): this {
    this.frozen = true;
    return this;
  }

  /** The ids in index order (index 1 first), for checkpoints. */
  toJSON(): string[] {
    return this.ids.slice(1);
  }

  static fromJSON(ids: readonly string[]): Vocab {
    const v = new Vocab();
    for (const id of ids) {
      if (v.has(id)) throw new Error(`Vocab.fromJSON: duplicate id ${JSON.stringify(id)}`);
      v.add(id);
    }
    return v.freeze();
  }
}

/** A stable key for a query: its term ids when present (joined by spaces), else its normalised text. */
export function queryKey(q: Query): string {
  if (q.terms !== undefined && q.terms.length > 0) return `t:${q.terms.join(' ')}`;
  return `x:${tokenize(q.text ?? '').join(' ')}`;
}

/** Lower-cased word tokens of a text (Unicode letters and digits). */
export function tokenize(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/**
 * FNV-1a 32-bit hash of a term into buckets 1..buckets-1 (0 = padding). Hashing keeps the term
 * table bounded for open vocabularies (real query text); collisions are the price.
 */
export function hashTerm(term: number | string, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets < 2) throw new Error(`hashTerm: buckets must be an integer >= 2, got ${buckets}`);
  const s = typeof term === 'number' ? `#${term}` : term;
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return 1 + (h % (buckets - 1));
}

/** Hashed term ids of a query: its term ids when present, else the tokens of its text. */
export function queryTermIds(q: Query | null, buckets: number, maxTerms = Infinity): number[] {
  if (q === null) return [];
  const raw: (number | string)[] = q.terms !== undefined && q.terms.length > 0 ? [...q.terms] : tokenize(q.text ?? '');
  return raw.slice(0, maxTerms).map((t) => hashTerm(t, buckets));
}
