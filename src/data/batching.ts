// Turning session records into the packed tensors a trainer feeds the encoder kernels: jagged
// histories are never padded to the longest — each batch holds flat Int32Arrays plus offsets of
// length B+1 (sequence b = [offsets[b], offsets[b+1])), the layout of the packed linear-recurrence
// kernels. Batch order is a seeded shuffle, so a (seed, epoch) pair always yields the same batches.
import { Random } from '../tensor';
import { inferFeatureSpec, type FeatureGroupSpec, type FeatureSpec, type SessionRecord } from './schema';
import { TRAIN } from './split';
import { Vocab, hashTerm, queryKey, queryTermIds } from './vocab';

export interface IndexOptions {
  /** Most recent history events kept per example (default 50). */
  maxHistory?: number;
  /** Hash buckets for query terms (default 2^15; 0 = padding). */
  termBuckets?: number;
  /** Query terms kept per query (default 8). */
  maxQueryTerms?: number;
  /** Hash buckets for categorical feature values (default 2^12). */
  categoricalBuckets?: number;
  /** Feature groups to pack (default: every group seen in the records, as numeric). */
  spec?: FeatureSpec;
  /**
   * Split code per record (splitByUserTime). When given, the query vocabulary is built from
   * training records only, so validation/test queries never seen in training map to 0.
   */
  split?: Uint8Array;
}

/** One interaction in a user's history: a clicked (or acted-on) item and the query it came from. */
export interface HistoryEvent {
  record: number;
  ts: number;
  item: number;
  query: number;
  terms: number[];
  action: number;
}

/**
 * Vocabularies plus per-user timelines over a record array, built once; batches are then cut from
 * it by record index. Items, users: all records (the catalogue is known at serving time);
 * queries: training records when a split is given.
 */
export class SessionIndex {
  readonly items = new Vocab();
  readonly queries = new Vocab();
  readonly users = new Vocab();
  readonly maxHistory: number;
  readonly termBuckets: number;
  readonly maxQueryTerms: number;
  readonly categoricalBuckets: number;
  /** The feature groups packed into batches, in order. */
  readonly groups: readonly FeatureGroupSpec[];
  private readonly timelines = new Map<number, HistoryEvent[]>();
  /** Per record: its user's vocab index and how many of the user's events precede it. */
  private readonly userOf: Int32Array;
  private readonly historyEnd: Int32Array;

  constructor(readonly records: readonly SessionRecord[], opts: IndexOptions = {}) {
    this.maxHistory = opts.maxHistory ?? 50;
    this.termBuckets = opts.termBuckets ?? 1 << 15;
    this.maxQueryTerms = opts.maxQueryTerms ?? 8;
    this.categoricalBuckets = opts.categoricalBuckets ?? 1 << 12;
    if (!Number.isInteger(this.maxHistory) || this.maxHistory < 0) throw new Error(`SessionIndex: maxHistory must be an integer >= 0, got ${this.maxHistory}`);
    if (opts.split && opts.split.length !== records.length) throw new Error(`SessionIndex: split has ${opts.split.length} codes for ${records.length} records`);
    this.groups = opts.spec ? opts.spec.groups.filter((g) => g.kind !== 'bag') : inferFeatureSpec(records).groups.filter((g) => g.kind === 'numeric');
    records.forEach((r, i) => {
      this.users.add(r.user);
      for (const it of r.shown) this.items.add(it);
      if (r.query !== null && (!opts.split || opts.split[i] === TRAIN)) this.queries.add(queryKey(r.query));
    });
    this.items.freeze();
    this.queries.freeze();
    this.users.freeze();
    // Timelines: each user's events in time order (records by ts, then list position).
    const order = records.map((_, i) => i).sort((a, b) => records[a].ts - records[b].ts || a - b);
    this.userOf = new Int32Array(records.length);
    this.historyEnd = new Int32Array(records.length);
    for (const i of order) {
      const r = records[i];
      const u = this.users.get(r.user);
      this.userOf[i] = u;
      let tl = this.timelines.get(u);
      if (!tl) this.timelines.set(u, (tl = []));
      // Events strictly before this record's time: same-ts records do not see each other.
      let end = tl.length;
      while (end > 0 && tl[end - 1].ts >= r.ts) end--;
      this.historyEnd[i] = end;
      const q = r.query === null ? 0 : this.queries.get(queryKey(r.query));
      const terms = queryTermIds(r.query, this.termBuckets, this.maxQueryTerms);
      for (let j = 0; j < r.shown.length; j++) {
        if (!(r.clicks[j] > 0) && !(r.labels !== undefined && r.labels[j] > 0)) continue;
        const action = r.labels !== undefined && r.labels[j] > 0 ? r.labels[j] : 1;
        tl.push({ record: i, ts: r.ts, item: this.items.get(r.shown[j]), query: q, terms, action });
      }
    }
  }

  /** Number of history events record `i` sees (before truncation to maxHistory). */
  historyLength(i: number): number {
    return this.historyEnd[i];
  }

  /** Total width of the numeric features of a group (categorical: ids per item). */
  groupWidth(g: FeatureGroupSpec): number {
    return g.features.length;
  }

  /** Packs the requests `recordIdx` (in that order) into one batch. */
  rankingBatch(recordIdx: readonly number[]): RankingBatch {
    const B = recordIdx.length;
    const histOffsets = new Int32Array(B + 1);
    const candOffsets = new Int32Array(B + 1);
    const queryTermOffsets = new Int32Array(B + 1);
    let H = 0;
    let C = 0;
    let QT = 0;
    recordIdx.forEach((i, b) => {
      if (!Number.isInteger(i) || i < 0 || i >= this.records.length) throw new Error(`rankingBatch: record index ${i} out of range [0, ${this.records.length})`);
      H += Math.min(this.maxHistory, this.historyEnd[i]);
      C += this.records[i].shown.length;
      QT += queryTermIds(this.records[i].query, this.termBuckets, this.maxQueryTerms).length;
      histOffsets[b + 1] = H;
      candOffsets[b + 1] = C;
      queryTermOffsets[b + 1] = QT;
    });
    const hist = allocHistory(H);
    const queryIds = new Int32Array(B);
    const queryTerms = new Int32Array(QT);
    const userIds = new Int32Array(B);
    const candItems = new Int32Array(C);
    const candClicks = new Float32Array(C);
    const candLabels = new Float32Array(C);
    const candPositions = new Int32Array(C);
    const hasRel = recordIdx.every((i) => this.records[i].rel !== undefined);
    const candRel = hasRel ? new Float32Array(C) : null;
    const features: Record<string, Float32Array> = {};
    const categorical: Record<string, Int32Array> = {};
    const featureMissing: Record<string, Uint8Array> = {};
    for (const g of this.groups) {
      if (g.kind === 'numeric') features[g.name] = new Float32Array(C * g.features.length);
      else categorical[g.name] = new Int32Array(C * g.features.length);
      featureMissing[g.name] = new Uint8Array(C);
    }
    const histTermParts: number[][] = [];
    let h = 0;
    recordIdx.forEach((i, b) => {
      const r = this.records[i];
      const u = this.userOf[i];
      userIds[b] = u;
      const tl = this.timelines.get(u) ?? [];
      const end = this.historyEnd[i];
      const start = Math.max(0, end - this.maxHistory);
      for (let e = start; e < end; e++, h++) {
        const ev = tl[e];
        hist.items[h] = ev.item;
        hist.queries[h] = ev.query;
        hist.actions[h] = ev.action;
        hist.dtBuckets[h] = timeBucket(r.ts - ev.ts);
        histTermParts.push(ev.terms);
      }
      queryIds[b] = r.query === null ? 0 : this.queries.get(queryKey(r.query));
      queryTerms.set(queryTermIds(r.query, this.termBuckets, this.maxQueryTerms), queryTermOffsets[b]);
      const c0 = candOffsets[b];
      for (let j = 0; j < r.shown.length; j++) {
        const c = c0 + j;
        candItems[c] = this.items.get(r.shown[j]);
        candClicks[c] = r.clicks[j] > 0 ? 1 : 0;
        candLabels[c] = r.labels !== undefined ? r.labels[j] : candClicks[c];
        candPositions[c] = j + 1;
        if (candRel) candRel[c] = r.rel![j];
      }
      for (const g of this.groups) {
        const col = r.features?.[g.name];
        const width = g.features.length;
        if (col === undefined) {
          featureMissing[g.name].fill(1, c0, c0 + r.shown.length);
          continue;
        }
        for (let j = 0; j < r.shown.length; j++) {
          for (let f = 0; f < width; f++) {
            const v = col[j * width + f];
            if (g.kind === 'numeric') {
              if (typeof v === 'number' && Number.isFinite(v)) features[g.name][(c0 + j) * width + f] = v;
              else featureMissing[g.name][c0 + j] = 1;
            } else if (v === null || v === undefined || Array.isArray(v)) featureMissing[g.name][c0 + j] = 1;
            else categorical[g.name][(c0 + j) * width + f] = hashTerm(`${g.features[f]}=${String(v)}`, this.categoricalBuckets);
          }
        }
      }
    });
    const { offsets: histTermOffsets, flat: histTerms } = packJagged(histTermParts);
    return {
      size: B,
      records: Int32Array.from(recordIdx),
      users: userIds,
      histOffsets,
      histItems: hist.items,
      histQueries: hist.queries,
      histActions: hist.actions,
      histDtBuckets: hist.dtBuckets,
      histTermOffsets,
      histTerms,
      queryIds,
      queryTermOffsets,
      queryTerms,
      candOffsets,
      candItems,
      candClicks,
      candLabels,
      candRel,
      candPositions,
      features,
      categorical,
      featureMissing,
    };
  }

  /**
   * Training sequences for the every-position objective: each user's events (restricted to
   * records with `allowed[record]`), cut into windows of at most maxHistory + 1 events that overlap
   * by one, so every event after the first is a target exactly once. Position t's target is event
   * t+1 of the same window: its query (the conditioning input) and item, plus the impressed but
   * unclicked items of its request as hard negatives.
   */
  sequenceWindows(allowed?: (record: number) => boolean): SequenceWindow[] {
    const out: SequenceWindow[] = [];
    const L = Math.max(2, this.maxHistory + 1);
    for (const [u, tl] of this.timelines) {
      const evs = allowed ? tl.filter((e) => allowed(e.record)) : tl;
      if (evs.length < 2) continue;
      for (let s = 0; s < evs.length - 1; s += L - 1) out.push({ user: u, events: evs.slice(s, Math.min(evs.length, s + L)) });
    }
    return out;
  }

  /** Packs windows (from sequenceWindows) into one batch. */
  sequenceBatch(windows: readonly SequenceWindow[]): SequenceBatch {
    const B = windows.length;
    const offsets = new Int32Array(B + 1);
    windows.forEach((w, b) => (offsets[b + 1] = offsets[b] + w.events.length));
    const N = offsets[B];
    const ev = allocHistory(N);
    const targetItems = new Int32Array(N);
    const targetQueries = new Int32Array(N);
    const users = new Int32Array(B);
    const termParts: number[][] = [];
    const targetTermParts: number[][] = [];
    const negParts: number[][] = [];
    windows.forEach((w, b) => {
      users[b] = w.user;
      w.events.forEach((e, t) => {
        const p = offsets[b] + t;
        ev.items[p] = e.item;
        ev.queries[p] = e.query;
        ev.actions[p] = e.action;
        ev.dtBuckets[p] = t === 0 ? 0 : timeBucket(e.ts - w.events[t - 1].ts);
        termParts.push(e.terms);
        const next = w.events[t + 1];
        if (next === undefined) {
          targetTermParts.push([]);
          negParts.push([]);
          return;
        }
        targetItems[p] = next.item;
        targetQueries[p] = next.query;
        targetTermParts.push(next.terms);
        const r = this.records[next.record];
        const neg: number[] = [];
        for (let j = 0; j < r.shown.length; j++) if (!(r.clicks[j] > 0)) neg.push(this.items.get(r.shown[j]));
        negParts.push(neg);
      });
    });
    const terms = packJagged(termParts);
    const tterms = packJagged(targetTermParts);
    const negs = packJagged(negParts);
    return {
      size: B,
      users,
      offsets,
      items: ev.items,
      queries: ev.queries,
      actions: ev.actions,
      dtBuckets: ev.dtBuckets,
      termOffsets: terms.offsets,
      terms: terms.flat,
      targetItems,
      targetQueries,
      targetTermOffsets: tterms.offsets,
      targetTerms: tterms.flat,
      negOffsets: negs.offsets,
      negItems: negs.flat,
    };
  }
}

/** A window of one user's events (opaque; pass to sequenceBatch). */
export interface SequenceWindow {
  readonly user: number;
  readonly events: readonly Readonly<HistoryEvent>[];
}

/**
 * A batch of B requests. History of request b: rows [histOffsets[b], histOffsets[b+1]) of the
 * hist* arrays (oldest first, at most maxHistory); its query terms: [histTermOffsets[h],
 * histTermOffsets[h+1]) of histTerms for history row h. Candidates of request b: rows
 * [candOffsets[b], candOffsets[b+1]) of the cand* arrays, in display order. Ids are vocab indices
 * (0 = padding/unknown); query terms are hashed ids in [1, termBuckets).
 */
export interface RankingBatch {
  size: number;
  /** Record index of each request. */
  records: Int32Array;
  users: Int32Array;
  histOffsets: Int32Array;
  histItems: Int32Array;
  histQueries: Int32Array;
  /** 1 = click; graded sources: the label (JDsearch 2 cart, 3 purchase). */
  histActions: Int32Array;
  /** floor(log2(1 + seconds between the event and the request)), capped at 31. */
  histDtBuckets: Int32Array;
  histTermOffsets: Int32Array;
  histTerms: Int32Array;
  /** The request's query (vocab index; 0 = unseen in training) and its hashed terms. */
  queryIds: Int32Array;
  queryTermOffsets: Int32Array;
  queryTerms: Int32Array;
  candOffsets: Int32Array;
  candItems: Int32Array;
  /** 0/1 logged clicks (the BCE target). */
  candClicks: Float32Array;
  /** Graded labels where the source has them, else the clicks. */
  candLabels: Float32Array;
  /** Position-free relevance (synthetic data; evaluation only), or null. */
  candRel: Float32Array | null;
  /** 1-based display positions. */
  candPositions: Int32Array;
  /** Numeric groups: [C × features] row-major; missing values are 0 with featureMissing set. */
  features: Record<string, Float32Array>;
  /** Categorical groups: hashed ids [C × features] in [1, categoricalBuckets). */
  categorical: Record<string, Int32Array>;
  /** Per group, 1 where a candidate's group (or one of its values) is missing — the HFG key mask. */
  featureMissing: Record<string, Uint8Array>;
}

/**
 * A batch of B event windows for the every-position next-item objective. Window b = rows
 * [offsets[b], offsets[b+1]). Row p's target is the next event of the same window: targetItems[p]
 * (0 at a window's last row: no target), its query targetQueries[p] and hashed terms
 * [targetTermOffsets[p], targetTermOffsets[p+1]), and hard negatives [negOffsets[p],
 * negOffsets[p+1]) of negItems (impressed, unclicked in the target's request).
 */
export interface SequenceBatch {
  size: number;
  users: Int32Array;
  offsets: Int32Array;
  items: Int32Array;
  queries: Int32Array;
  actions: Int32Array;
  /** floor(log2(1 + seconds since the previous event of the window)); 0 for the first. */
  dtBuckets: Int32Array;
  termOffsets: Int32Array;
  terms: Int32Array;
  targetItems: Int32Array;
  targetQueries: Int32Array;
  targetTermOffsets: Int32Array;
  targetTerms: Int32Array;
  negOffsets: Int32Array;
  negItems: Int32Array;
}

function allocHistory(n: number): { items: Int32Array; queries: Int32Array; actions: Int32Array; dtBuckets: Int32Array } {
  return { items: new Int32Array(n), queries: new Int32Array(n), actions: new Int32Array(n), dtBuckets: new Int32Array(n) };
}

/** floor(log2(1 + Δt seconds)), capped at 31 (≈ 68 years); negative gaps count as 0. */
export function timeBucket(dtMs: number): number {
  const s = Math.max(0, dtMs) / 1000;
  return Math.min(31, Math.floor(Math.log2(1 + s)));
}

/** Packs lists into a flat Int32Array plus offsets (length lists + 1). */
export function packJagged(lists: readonly (readonly number[])[]): { offsets: Int32Array; flat: Int32Array } {
  const offsets = new Int32Array(lists.length + 1);
  for (let i = 0; i < lists.length; i++) offsets[i + 1] = offsets[i] + lists[i].length;
  const flat = new Int32Array(offsets[lists.length]);
  lists.forEach((l, i) => flat.set(l, offsets[i]));
  return { offsets, flat };
}

/** A seeded permutation of 0..n-1 (Fisher–Yates); the same (seed, epoch) gives the same order. */
export function shuffledOrder(n: number, seed: number, epoch = 0): Int32Array {
  const rng = new Random((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0);
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle with this seed (default: keep the given order). */
  seed?: number;
  epoch?: number;
  /** Drop a final batch smaller than batchSize (default false). */
  dropLast?: boolean;
}

/** Splits `items` into batches of `batchSize`, in a seeded shuffled order when `seed` is set. */
export function* batchIndices<T>(items: readonly T[], opts: BatchOptions): Generator<T[]> {
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new Error(`batchIndices: batchSize must be an integer >= 1, got ${opts.batchSize}`);
  const order = opts.seed === undefined ? null : shuffledOrder(items.length, opts.seed, opts.epoch ?? 0);
  for (let s = 0; s < items.length; s += opts.batchSize) {
    const e = Math.min(items.length, s + opts.batchSize);
    if (opts.dropLast && e - s < opts.batchSize) break;
    const out: T[] = [];
    for (let k = s; k < e; k++) out.push(items[order ? order[k] : k]);
    yield out;
  }
}

/** Seeded ranking batches over records `recordIdx`. */
export function* rankingBatches(index: SessionIndex, recordIdx: readonly number[], opts: BatchOptions): Generator<RankingBatch> {
  for (const b of batchIndices(recordIdx, opts)) yield index.rankingBatch(b);
}

/** Seeded sequence batches over windows. */
export function* sequenceBatches(index: SessionIndex, windows: readonly SequenceWindow[], opts: BatchOptions): Generator<SequenceBatch> {
  for (const b of batchIndices(windows, opts)) yield index.sequenceBatch(b);
}
