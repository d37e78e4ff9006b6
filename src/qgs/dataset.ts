// Turns session records into what the QGS trainer consumes: per-user timelines of requests (query
// term ids, candidate item ids, clicks, relevance labels, dense feature rows) and, per model variant,
// the token stream the sequence encoder reads (DESIGN.md §5):
//   qgs        — one (query, item) pair token per click, and before each request a read-out token
//                (next query, no item) whose output is P(item | history, next query);
//   item-only  — item tokens only, read-out token carries no query (query-blind next item);
//   flattened  — query tokens and item tokens in one stream, read-out placed *before* the request's
//                query token: the marginal next-item target of a flattened generative ranker.
// Read-out tokens never write into the recurrent state (their write mask is 0), so one encoder pass
// over a user's whole timeline serves every request in it.
import type { FeatureSpec, SessionRecord } from '../data/schema';
import { Random } from '../tensor';

/** Item token id 0 = "no item"; real items are shifted by one. */
export const NO_ITEM = 0;
/** Term id 0 = padding, 1 = "no query"; real terms are shifted by two. */
export const PAD_TERM = 0;
export const NO_QUERY = 1;
export const TERM_OFFSET = 2;
export const ITEM_OFFSET = 1;

export type SequenceVariant = 'qgs' | 'item-only' | 'flattened';

export interface PreparedRequest {
  /** 0 train, 1 validation, 2 test. */
  split: number;
  ts: number;
  /** Query term token ids (TERM_OFFSET-shifted), at most maxTerms; [NO_QUERY] when query-less. */
  terms: Int32Array;
  /** Candidate item token ids (ITEM_OFFSET-shifted), in display order. */
  items: Int32Array;
  clicks: Float32Array;
  /** Position-free relevance labels (evaluation), or null. */
  rel: Float32Array | null;
  /** Dense feature rows [items × featureDim] (NaN = missing). */
  features: Float32Array;
}

export interface UserTimeline {
  user: number;
  requests: PreparedRequest[];
}

export interface FeatureLayout {
  /** Groups in column order with their column range in the dense rows. */
  groups: { name: string; offset: number; width: number; features: readonly string[] }[];
  dim: number;
  /** Column that holds the logged-position feature (set to its rank-1 value at evaluation), or -1. */
  positionColumn: number;
}

/**
 * Observable item side information (data.md §4.5 items.tsv): categorical attributes and title terms,
 * indexed by item token id (row 0 = "no item"). Attribute id 0 means unknown.
 */
export interface ItemSideInfo {
  /** [itemVocab] category id + 1 (0 = unknown). */
  category: Int32Array;
  categories: number;
  /** [itemVocab] style id + 1 (0 = unknown). */
  style: Int32Array;
  styles: number;
  /** [itemVocab × maxTitle] title term token ids (TERM_OFFSET-shifted, PAD_TERM-padded). */
  title: Int32Array;
  maxTitle: number;
}

export interface PreparedData {
  users: UserTimeline[];
  side: ItemSideInfo;
  /** Size of the item token table (items + ITEM_OFFSET). */
  itemVocab: number;
  /** Size of the term token table (terms + TERM_OFFSET). */
  termVocab: number;
  maxTerms: number;
  layout: FeatureLayout;
}

export interface PrepareOptions {
  /** Split code per record (0/1/2), e.g. from splitByUserTime; records without one are training. */
  split?: ArrayLike<number>;
  maxTerms?: number;
  /** Feature name of the logged position (its rank-1 value is 0 for log-rank). */
  positionFeature?: string;
  /** Observable item catalogue (by raw item id): categories, styles, title term ids. */
  catalogue?: { category?: ArrayLike<number>; style?: ArrayLike<number>; titles?: readonly (readonly number[])[] };
  maxTitle?: number;
}

function buildSide(itemVocab: number, cat: PrepareOptions['catalogue'], maxTitle: number): { side: ItemSideInfo; maxTerm: number } {
  const category = new Int32Array(itemVocab);
  const style = new Int32Array(itemVocab);
  const title = new Int32Array(itemVocab * maxTitle);
  let categories = 1;
  let styles = 1;
  let maxTerm = -1;
  for (let it = 0; it + ITEM_OFFSET < itemVocab; it++) {
    const row = it + ITEM_OFFSET;
    const c = cat?.category?.[it];
    if (c !== undefined && c >= 0) categories = Math.max(categories, (category[row] = c + 1) + 1);
    const st = cat?.style?.[it];
    if (st !== undefined && st >= 0) styles = Math.max(styles, (style[row] = st + 1) + 1);
    const t = cat?.titles?.[it] ?? [];
    for (let j = 0; j < Math.min(maxTitle, t.length); j++) {
      title[row * maxTitle + j] = t[j] + TERM_OFFSET;
      if (t[j] > maxTerm) maxTerm = t[j];
    }
  }
  return { side: { category, categories, style, styles, title, maxTitle }, maxTerm };
}

function numericId(v: number | string, what: string): number {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`prepareTimelines: ${what} must be a non-negative integer id, got ${String(v)}`);
  return n;
}

/** Dense feature layout of a spec: numeric groups only (one column per feature). */
export function featureLayout(spec: FeatureSpec, positionFeature = 'log_rank'): FeatureLayout {
  const groups: FeatureLayout['groups'] = [];
  let dim = 0;
  let positionColumn = -1;
  for (const g of spec.groups) {
    if (g.kind !== 'numeric') throw new Error(`prepareTimelines: feature group '${g.name}' is ${g.kind}; the QGS trainer reads numeric groups (map ids to numbers first)`);
    g.features.forEach((f, i) => {
      if (f === positionFeature) positionColumn = dim + i;
    });
    groups.push({ name: g.name, offset: dim, width: g.features.length, features: g.features });
    dim += g.features.length;
  }
  return { groups, dim, positionColumn };
}

/**
 * Groups records by user (time order) into timelines with integer token ids and dense feature rows.
 * Item and user ids must be non-negative integers (the synthetic generator's are; map others with
 * data.Vocab first). Query terms must be term ids (query.terms).
 */
export function prepareTimelines(records: readonly SessionRecord[], spec: FeatureSpec, opts: PrepareOptions = {}): PreparedData {
  const maxTerms = opts.maxTerms ?? 4;
  const layout = featureLayout(spec, opts.positionFeature);
  const byUser = new Map<number, { r: SessionRecord; split: number }[]>();
  let maxItem = -1;
  let maxTerm = -1;
  records.forEach((r, idx) => {
    const u = numericId(r.user, `records[${idx}].user`);
    let list = byUser.get(u);
    if (list === undefined) byUser.set(u, (list = []));
    list.push({ r, split: opts.split ? opts.split[idx] : 0 });
  });
  const users: UserTimeline[] = [];
  for (const [user, list] of [...byUser.entries()].sort((a, b) => a[0] - b[0])) {
    list.sort((a, b) => a.r.ts - b.r.ts);
    const requests = list.map(({ r, split }, k): PreparedRequest => {
      const where = `user ${user} request ${k}`;
      const n = r.shown.length;
      const items = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const it = numericId(r.shown[i], `${where} shown[${i}]`);
        items[i] = it + ITEM_OFFSET;
        if (it > maxItem) maxItem = it;
      }
      const qt = r.query?.terms ?? [];
      const terms = qt.length === 0 ? Int32Array.of(NO_QUERY) : Int32Array.from(qt.slice(0, maxTerms), (t) => t + TERM_OFFSET);
      for (const t of qt) if (t > maxTerm) maxTerm = t;
      const features = new Float32Array(n * layout.dim).fill(Number.NaN);
      for (const g of layout.groups) {
        const col = r.features?.[g.name];
        if (col === undefined) continue;
        for (let i = 0; i < n; i++) {
          for (let f = 0; f < g.width; f++) {
            const v = (col as readonly (number | null)[])[i * g.width + f];
            features[i * layout.dim + g.offset + f] = v === null || v === undefined ? Number.NaN : Number(v);
          }
        }
      }
      return {
        split,
        ts: r.ts,
        terms,
        items,
        clicks: Float32Array.from(r.clicks, (c) => (c > 0 ? 1 : 0)),
        rel: r.rel ? Float32Array.from(r.rel) : null,
        features,
      };
    });
    users.push({ user, requests });
  }
  const catItems = Math.max(opts.catalogue?.category?.length ?? 0, opts.catalogue?.titles?.length ?? 0);
  const itemVocab = Math.max(maxItem + 1, catItems) + ITEM_OFFSET;
  const { side, maxTerm: maxTitleTerm } = buildSide(itemVocab, opts.catalogue, opts.maxTitle ?? 6);
  return { users, side, itemVocab, termVocab: Math.max(maxTerm, maxTitleTerm) + 1 + TERM_OFFSET, maxTerms, layout };
}

/** The token stream of one batch of users, packed back to back (jagged, with offsets). */
export interface TokenBatch {
  /** [tokens × maxTerms] term ids, PAD_TERM-padded. */
  terms: Int32Array;
  /** [tokens] item ids (NO_ITEM for query and read-out tokens). */
  items: Int32Array;
  /** [tokens] 1 when the token writes into the recurrent state, 0 for read-out tokens. */
  write: Float32Array;
  /** [users + 1] token offsets per user. */
  offsets: Int32Array;
  /** Per request in the batch (users in order, requests in time order): its read-out token index. */
  readout: Int32Array;
  /** The requests, aligned with `readout`. */
  requests: PreparedRequest[];
  tokens: number;
}

/** Builds the packed token stream of `users` for a model variant. */
export function buildTokens(users: readonly UserTimeline[], variant: SequenceVariant, maxTerms: number): TokenBatch {
  const terms: number[] = [];
  const items: number[] = [];
  const write: number[] = [];
  const offsets = [0];
  const readout: number[] = [];
  const requests: PreparedRequest[] = [];
  const push = (t: Int32Array | null, item: number, w: number): number => {
    const base = terms.length;
    for (let j = 0; j < maxTerms; j++) terms.push(PAD_TERM);
    if (t === null) terms[base] = NO_QUERY;
    else for (let j = 0; j < Math.min(maxTerms, t.length); j++) terms[base + j] = t[j];
    items.push(item);
    write.push(w);
    return items.length - 1;
  };
  for (const u of users) {
    for (const r of u.requests) {
      if (variant === 'qgs') {
        readout.push(push(r.terms, NO_ITEM, 0));
      } else if (variant === 'item-only') {
        readout.push(push(null, NO_ITEM, 0));
      } else {
        readout.push(push(null, NO_ITEM, 0));
        push(r.terms, NO_ITEM, 1);
      }
      requests.push(r);
      for (let i = 0; i < r.items.length; i++) {
        if (r.clicks[i] <= 0) continue;
        push(variant === 'qgs' ? r.terms : null, r.items[i], 1);
      }
    }
    offsets.push(items.length);
  }
  return {
    terms: Int32Array.from(terms),
    items: Int32Array.from(items),
    write: Float32Array.from(write),
    offsets: Int32Array.from(offsets),
    readout: Int32Array.from(readout),
    requests,
    tokens: items.length,
  };
}

/** Deterministic batches of users with about `tokenBudget` history events each (shuffled by seed). */
export function userBatches(users: readonly UserTimeline[], tokenBudget: number, seed: number): UserTimeline[][] {
  const order = users.map((_, i) => i);
  const rng = new Random(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const batches: UserTimeline[][] = [];
  let cur: UserTimeline[] = [];
  let size = 0;
  for (const i of order) {
    const u = users[i];
    const cost = u.requests.reduce((s, r) => s + 2 + r.clicks.reduce((a, c) => a + c, 0), 0);
    if (cur.length > 0 && size + cost > tokenBudget) {
      batches.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(u);
    size += cost;
  }
  if (cur.length > 0) batches.push(cur);
  return batches;
}
