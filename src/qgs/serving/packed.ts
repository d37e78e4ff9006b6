// Packed (columnar) forms of candidate lists and histories: what crosses the thread boundary.
//
// Why: structured-cloning 1,000 candidates with nested feature objects costs several milliseconds
// (more than scoring them), and so does re-validating them into object copies. Validation therefore
// writes straight into typed arrays (one pass, no per-element strings), the arrays are transferred
// to the worker without copying, and the backend reads numeric features as one dense matrix, which
// is also the layout an HFG ranking head wants (one [N, F] block per feature group).
import type { Candidate, FeatureValue, Interaction, ItemId, Query } from './backend';

/** One numeric feature column of a CandidateBatch. */
export interface FeatureColumn {
  group: string;
  feature: string;
}

/**
 * A feature value of one candidate that the float32 matrix does not carry: a string or array, or
 * the exact number behind a `values` entry of an exact feature (see ExactFeatures) that float32
 * rounds (a categorical id past 2^24, a fractional category).
 */
export interface FeatureExtra {
  row: number;
  group: string;
  feature: string;
  value: Exclude<FeatureValue, null>;
}

/**
 * Numeric features whose values a backend needs exactly rather than as float32 (categorical ids
 * sent as numbers: 16,777,217 as float32 is 16,777,216, another category). Group → feature names.
 * The packers still write such a value into `values` and, when float32 changes it, add the exact
 * number as an extra after it.
 */
export type ExactFeatures = ReadonlyMap<string, ReadonlySet<string>>;

/** ExactFeatures of a column list; null when it is empty (nothing to carry exactly). */
export function exactFeatureSet(columns: readonly FeatureColumn[]): ExactFeatures | null {
  if (columns.length === 0) return null;
  const m = new Map<string, Set<string>>();
  for (const c of columns) {
    let g = m.get(c.group);
    if (g === undefined) m.set(c.group, (g = new Set()));
    g.add(c.feature);
  }
  return m;
}

/** Plain data of a packed candidate list (structured-cloneable; typed arrays transferable). */
export interface PackedCandidates {
  /** Item ids that are int32s; -1 where the id is a string or a larger integer (then see rawItems). */
  items: Int32Array;
  /** Every candidate's id as given, present only when some id does not fit `items`. */
  rawItems?: ItemId[];
  columns: FeatureColumn[];
  /** [items.length, columns.length] row-major; NaN where a candidate lacks the feature (or it is null). */
  values: Float32Array;
  extras: FeatureExtra[];
}

/**
 * The candidates of one request as the backend sees them.
 * - `items[i]`: the item id of candidate i when it is an int32, else -1; `item(i)` gives every id
 *   as the caller sent it (string ids, integers past 2^31 − 1: `rawItems`, absent when there are none).
 * - numeric features: `values[i * columns.length + c]` is feature `columns[c]` of candidate i, NaN
 *   when absent or null. Columns are the (group, feature) pairs that occur in this request, in
 *   order of first appearance: map them to the model's own feature order with `column()`.
 * - `extras`: string and array-valued features, one entry per (candidate, feature), and the exact
 *   numbers of exact features that float32 rounds (read extras after `values`: they replace those
 *   entries). Rows are in order; a candidate's entries are in no set order.
 * - `toArray()` rebuilds `Candidate` objects (values as float32, exact features exact) for backends
 *   that prefer them.
 */
export class CandidateBatch implements PackedCandidates {
  readonly items: Int32Array;
  readonly rawItems: ItemId[] | undefined;
  readonly columns: FeatureColumn[];
  readonly values: Float32Array;
  readonly extras: FeatureExtra[];
  private index: Map<string, Map<string, number>> | null = null;
  private objects: Candidate[] | null = null;

  constructor(p: PackedCandidates) {
    this.items = p.items;
    this.rawItems = p.rawItems;
    this.columns = p.columns;
    this.values = p.values;
    this.extras = p.extras;
  }

  get length(): number {
    return this.items.length;
  }

  /** The id of candidate i as the request gave it. */
  item(i: number): ItemId {
    return this.rawItems === undefined ? this.items[i] : this.rawItems[i];
  }

  /** Index of the (group, feature) column, or -1 when no candidate of this request has it. */
  column(group: string, feature: string): number {
    if (this.index === null) {
      this.index = new Map();
      this.columns.forEach((c, i) => {
        let g = this.index!.get(c.group);
        if (g === undefined) this.index!.set(c.group, (g = new Map()));
        g.set(c.feature, i);
      });
    }
    return this.index.get(group)?.get(feature) ?? -1;
  }

  /** The value of numeric feature column `col` for candidate `row` (NaN when absent). */
  value(row: number, col: number): number {
    return this.values[row * this.columns.length + col];
  }

  /**
   * The numeric features in a model's own column order: `values` [length, features.length]
   * row-major (`fill` where absent) and `mask` (1 where present). Features this request lacks are
   * all `fill` / 0; columns of the request the model does not list are ignored.
   */
  featureMatrix(features: readonly FeatureColumn[], fill = 0): { values: Float32Array; mask: Uint8Array } {
    const n = this.items.length;
    const F = features.length;
    const C = this.columns.length;
    const values = new Float32Array(n * F);
    const mask = new Uint8Array(n * F);
    if (fill !== 0) values.fill(fill);
    for (let f = 0; f < F; f++) {
      const c = this.column(features[f].group, features[f].feature);
      if (c < 0) continue;
      for (let i = 0; i < n; i++) {
        const v = this.values[i * C + c];
        if (!Number.isNaN(v)) {
          values[i * F + f] = v;
          mask[i * F + f] = 1;
        }
      }
    }
    return { values, mask };
  }

  /** The candidates as objects (built once, on first call). */
  toArray(): Candidate[] {
    if (this.objects !== null) return this.objects;
    const n = this.items.length;
    const C = this.columns.length;
    const out: Candidate[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = { item: this.item(i) };
    const feats = (i: number, g: string): Record<string, FeatureValue> => {
      const c = out[i];
      if (c.features === undefined) c.features = {};
      return (c.features[g] ??= {});
    };
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < C; j++) {
        const v = this.values[i * C + j];
        if (!Number.isNaN(v)) feats(i, this.columns[j].group)[this.columns[j].feature] = v;
      }
    }
    for (const e of this.extras) feats(e.row, e.group)[e.feature] = e.value;
    this.objects = out;
    return out;
  }
}

/** Plain data of a packed history (structured-cloneable; typed arrays transferable). */
export interface PackedHistory {
  /** As PackedCandidates.items / rawItems. */
  items: Int32Array;
  rawItems?: ItemId[];
  /** NaN where absent. */
  ts: Float64Array;
  /** -1 where absent. */
  actions: Int32Array;
  /** Query id per event, -1 where absent. */
  queryIds: Int32Array;
  /** Query term ids of event t: terms[termOffsets[t] .. termOffsets[t + 1]); a query without a terms field has termOffsets[t] === termOffsets[t + 1] and hasTerms[t] = 0. */
  termOffsets: Int32Array;
  terms: Int32Array;
  hasTerms: Uint8Array;
  /** Query text per event (null where absent); null when no event has text. */
  texts: (string | null)[] | null;
}

/** Rebuilds the interactions of a packed history (in the worker; cheap, fixed-shape objects). */
export function unpackHistory(h: PackedHistory): Interaction[] {
  const n = h.items.length;
  const out: Interaction[] = new Array(n);
  for (let t = 0; t < n; t++) {
    const q: Query = {};
    if (h.hasTerms[t] === 1) {
      const a = h.termOffsets[t];
      const terms = new Array<number>(h.termOffsets[t + 1] - a);
      for (let j = 0; j < terms.length; j++) terms[j] = h.terms[a + j];
      q.terms = terms;
    }
    if (h.texts !== null && h.texts[t] !== null) q.text = h.texts[t] as string;
    if (h.queryIds[t] >= 0) q.id = h.queryIds[t];
    const e: Interaction = { query: q, item: h.rawItems === undefined ? h.items[t] : h.rawItems[t] };
    if (!Number.isNaN(h.ts[t])) e.ts = h.ts[t];
    if (h.actions[t] >= 0) e.action = h.actions[t];
    out[t] = e;
  }
  return out;
}

/** The typed-array buffers of packed data, for a postMessage transfer list. */
export function packedBuffers(p: PackedCandidates | PackedHistory): ArrayBuffer[] {
  const arrays: ArrayBufferView[] =
    'values' in p ? [p.items, p.values] : [p.items, p.ts, p.actions, p.queryIds, p.termOffsets, p.terms, p.hasTerms];
  return arrays.map((a) => a.buffer as ArrayBuffer);
}
