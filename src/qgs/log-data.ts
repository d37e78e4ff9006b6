// Training on a search log instead of the synthetic generator: records from a file (JSONL, CSV/TSV,
// Parquet, KuaiSAR src_inter.csv, JDsearch) become the trainer's timelines, with the id mappings a
// checkpoint keeps so serving and evaluation map raw requests the same way (LogVocab):
//   - items: dense model ids from the training split only, in first-seen order; model item 0 stands
//     for every item the training split never showed (new items are scored on their features, as
//     they are at serving time, instead of being refused or aliased to a real item);
//   - query terms: term ids or text tokens hashed into a fixed number of buckets (data.hashTerm), so
//     no term vocabulary has to travel and unseen text still maps somewhere;
//   - users: dense ids for grouping only (a model has no user table);
//   - features: numeric groups as they are; categorical groups as indicator columns of the values
//     most frequent in training plus one "other" column; bag groups are dropped (named in the vocab).
import { inferFeatureSpec, parseFeatureSpec, type FeatureGroupSpec, type FeatureSpec, type Id, type Query, type SessionRecord } from '../data/schema';
import { readSessions, type SessionFormat } from '../data/sessions';
import { KUAISAR_FEATURE_SPEC, readJdsearch, readKuaisarSearch } from '../data/adapters';
import { TEST, TRAIN, VALID, splitByUserTime, type SplitOptions } from '../data/split';
import { Vocab, hashTerm, queryTermIds } from '../data/vocab';
import type { ReadOptions, RecordStream } from '../data/report';
import { ITEM_OFFSET, TERM_OFFSET, prepareTimelines, type PreparedData } from './dataset';

/** File formats `readLogRecords` understands: the generic session formats and two public logs. */
export type LogFormat = SessionFormat | 'kuaisar' | 'jdsearch';
export const LOG_FORMATS: readonly LogFormat[] = ['jsonl', 'csv', 'tsv', 'parquet', 'kuaisar', 'jdsearch'];

/** A categorical feature turned into indicator columns `${feature}=${value}` plus `${feature}=<other>`. */
export interface CategoricalColumns {
  group: string;
  feature: string;
  /** The values that have a column, most frequent in training first (ties by value). */
  values: string[];
}

/** How a log's raw ids, queries and features map to a model's inputs; saved in the checkpoint. */
export interface LogVocab {
  /** Raw item ids (as strings) in model-id order: items[i] is model item i + 1; model item 0 = unseen in training. */
  items: string[];
  /** Query terms (ids or text tokens) hash into 1 .. termBuckets - 1. */
  termBuckets: number;
  /** Categorical features expanded into indicator columns. */
  categorical: CategoricalColumns[];
  /** Numeric feature groups of the spec the model was trained on (after the expansion). */
  spec: FeatureSpec;
  /** Groups left out (bag groups: lists of ids per item have no dense form here). */
  dropped: string[];
  /** The logged-position feature (see LogDataOptions.positionFeature). */
  positionFeature: string;
}

export interface LogDataOptions {
  /** Feature spec of the records; inferred from them when omitted (see inferFeatureSpec). */
  spec?: FeatureSpec;
  /** Hash buckets for query terms (default 16384). */
  termBuckets?: number;
  /** Indicator columns per categorical feature, besides "other" (default 16). */
  maxCategories?: number;
  /** Query terms kept per token (default 4, the synthetic data's). */
  maxTerms?: number;
  split?: SplitOptions;
  /**
   * Feature holding the logged position (as in the synthetic data, log of the rank): evaluation and
   * serving pin it to its rank-1 value, so a model is not judged by the logging policy's order.
   * Default 'log_rank'; a spec without it has no position column.
   */
  positionFeature?: string;
  /**
   * Map with an existing vocabulary (a checkpoint's) instead of building one from the training split;
   * the vocabulary then decides (spec, termBuckets, maxCategories, positionFeature are not read).
   */
  vocab?: LogVocab;
  /**
   * Observable item side information (training only: the model keeps it), row r describing the item
   * whose raw id is `ids[r]` (default: the id r itself, as in 'qgs generate' metadata): category and
   * style ids (-1 unknown) and title terms (term ids or words, hashed like query terms, so a query
   * and a title share term embeddings).
   */
  catalogue?: LogCatalogue;
}

export interface LogCatalogue {
  ids?: readonly Id[];
  category?: ArrayLike<number>;
  style?: ArrayLike<number>;
  titles?: readonly (readonly (number | string)[])[];
}

export interface LogData {
  data: PreparedData;
  vocab: LogVocab;
  /** Records per split and items in the vocabulary. */
  stats: { records: number; train: number; valid: number; test: number; users: number; items: number; unseenItems: number };
}

export const DEFAULT_TERM_BUCKETS = 16384;
export const DEFAULT_MAX_CATEGORIES = 16;
const OTHER = '<other>';

/**
 * Streams a log file's records in the given format (inferred from the extension for the generic
 * ones), with the format's own feature spec where it has one (KuaiSAR's categorical groups).
 */
export function readLogRecords(file: string, format: LogFormat | undefined, opts: ReadOptions = {}): { stream: RecordStream<SessionRecord>; spec?: FeatureSpec } {
  if (format === 'kuaisar') return { stream: readKuaisarSearch(file, opts), spec: KUAISAR_FEATURE_SPEC };
  return { stream: format === 'jdsearch' ? readJdsearch(file, opts) : readSessions(file, { ...opts, format }) };
}

type Cell = number | string | null | readonly unknown[];

function checkInt(v: number | undefined, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`prepareLogData: ${name} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
}

/** The indicator column names of a categorical feature: one per kept value, then "other". */
function indicatorColumns(c: CategoricalColumns): string[] {
  return [...c.values.map((v) => `${c.feature}=${v}`), `${c.feature}=${OTHER}`];
}

/** Rows of the item table of a model trained with `vocab`: its items, the unseen-item row (model item 0) and the reserved tokens. */
export function logItemTableRows(vocab: LogVocab): number {
  return vocab.items.length + 1 + ITEM_OFFSET;
}

/** Checks a LogVocab read from JSON (a checkpoint); errors name `where` and the bad field. */
export function parseLogVocab(value: unknown, where: string): LogVocab {
  const v = value as Partial<LogVocab> | null;
  if (typeof v !== 'object' || v === null) throw new Error(`${where}: expected an object, got ${typeof value}`);
  if (!Array.isArray(v.items) || !v.items.every((x) => typeof x === 'string')) throw new Error(`${where}.items: expected an array of item id strings`);
  if (new Set(v.items).size !== v.items.length) throw new Error(`${where}.items: an item id appears twice`);
  if (typeof v.termBuckets !== 'number' || !Number.isInteger(v.termBuckets) || v.termBuckets < 2) throw new Error(`${where}.termBuckets: expected an integer >= 2, got ${String(v.termBuckets)}`);
  if (typeof v.positionFeature !== 'string') throw new Error(`${where}.positionFeature: expected a string, got ${String(v.positionFeature)}`);
  const spec = parseFeatureSpec(v.spec, `${where}.spec`);
  if (spec.groups.some((g) => g.kind !== 'numeric')) throw new Error(`${where}.spec: every group of a model's spec is numeric`);
  if (!Array.isArray(v.dropped) || !v.dropped.every((x) => typeof x === 'string')) throw new Error(`${where}.dropped: expected an array of group names`);
  if (!Array.isArray(v.categorical)) throw new Error(`${where}.categorical: expected an array`);
  const categorical = v.categorical.map((c: Partial<CategoricalColumns> | null, i): CategoricalColumns => {
    const at = `${where}.categorical[${i}]`;
    if (typeof c !== 'object' || c === null || typeof c.group !== 'string' || typeof c.feature !== 'string') throw new Error(`${at}: expected {group, feature, values}`);
    if (!Array.isArray(c.values) || !c.values.every((x) => typeof x === 'string')) throw new Error(`${at}.values: expected an array of strings`);
    const g = spec.groups.find((x) => x.name === c.group);
    if (g === undefined) throw new Error(`${at}.group: '${c.group}' is not a group of ${where}.spec`);
    return { group: c.group, feature: c.feature, values: [...c.values] };
  });
  // Each expanded group's columns must be exactly its categorical features' indicator columns.
  for (const g of spec.groups) {
    const cols = categorical.filter((c) => c.group === g.name);
    if (cols.length === 0) continue;
    const want = cols.reduce((s, c) => s + indicatorColumns(c).length, 0);
    if (g.features.length !== want) throw new Error(`${where}.spec: group '${g.name}' has ${g.features.length} columns, its categorical features need ${want}`);
  }
  return { items: [...v.items], termBuckets: v.termBuckets, categorical, spec, dropped: [...v.dropped], positionFeature: v.positionFeature };
}

/** Indicator columns of the categorical features (from the training records' value counts). */
function categoricalColumns(records: readonly SessionRecord[], train: (i: number) => boolean, spec: FeatureSpec, maxCategories: number): CategoricalColumns[] {
  const out: CategoricalColumns[] = [];
  for (const g of spec.groups) {
    if (g.kind !== 'categorical') continue;
    const w = g.features.length;
    const counts = g.features.map(() => new Map<string, number>());
    records.forEach((r, i) => {
      const col = r.features?.[g.name] as readonly Cell[] | undefined;
      if (!train(i) || col === undefined) return;
      for (let k = 0; k < col.length; k++) {
        const c = col[k];
        if (c === null || c === undefined) continue;
        const m = counts[k % w];
        const key = String(c);
        m.set(key, (m.get(key) ?? 0) + 1);
      }
    });
    g.features.forEach((f, j) => {
      const values = [...counts[j].entries()]
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        .slice(0, maxCategories)
        .map(([v]) => v);
      out.push({ group: g.name, feature: f, values });
    });
  }
  return out;
}

/** The numeric spec a model is trained on: numeric groups as they are, categorical ones expanded. */
function modelSpec(spec: FeatureSpec, cats: readonly CategoricalColumns[]): { spec: FeatureSpec; dropped: string[] } {
  const groups: FeatureGroupSpec[] = [];
  const dropped: string[] = [];
  for (const g of spec.groups) {
    if (g.kind === 'numeric') groups.push({ name: g.name, kind: 'numeric', features: [...g.features] });
    else if (g.kind === 'bag') dropped.push(g.name);
    else {
      const features = cats.filter((c) => c.group === g.name).flatMap(indicatorColumns);
      groups.push({ name: g.name, kind: 'numeric', features });
    }
  }
  return { spec: { groups }, dropped };
}

/**
 * Where one categorical feature's indicator columns sit in the model's feature layout: columns
 * `offset .. offset + width - 1` (the last one is "other"), `index` the value → column position.
 * (Within a group's own rows, as LogMapper.features writes them, the offset is from the group start.)
 */
export interface CategoricalSlot {
  group: string;
  feature: string;
  offset: number;
  width: number;
  index: ReadonlyMap<string, number>;
}

/** A categorical group's features (offsets within the group) and its row width. */
interface GroupExpansion {
  slots: CategoricalSlot[];
  rowWidth: number;
}

/**
 * The column of a raw categorical value among its feature's indicator columns: the value's own
 * (values are keyed as strings, as in training: 7 and "7" are one value), or "other" (the last).
 */
function indicatorColumn(slot: CategoricalSlot, value: string | number): number {
  return slot.index.get(String(value)) ?? slot.width - 1;
}

/**
 * One categorical group's cells [n × features] → indicator rows [n × rowWidth]: 1 at the value's
 * column (or "other"), 0 elsewhere; a null cell leaves its feature's columns missing (null).
 */
function expandCategorical(col: readonly Cell[], n: number, { slots, rowWidth }: GroupExpansion): (number | null)[] {
  const out = new Array<number | null>(n * rowWidth).fill(0);
  const w = slots.length;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < w; j++) {
      const c = col[i * w + j];
      const at = i * rowWidth + slots[j].offset;
      if (c === null || c === undefined) out.fill(null, at, at + slots[j].width);
      else out[at + indicatorColumn(slots[j], c as string | number)] = 1;
    }
  }
  return out;
}

/**
 * A raw categorical value as a request may send it: a string, a finite number, or null / absent;
 * anything else is refused naming `where`.
 */
export function checkCategory(v: unknown, where: string): string | number | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) return v;
  throw new Error(`${where}: expected a category (a string or a finite number) or null, got ${JSON.stringify(v)}`);
}

/**
 * Sets a candidate's indicator columns of one categorical feature in a feature row (`row` at `at`):
 * 1 at the raw value's column, or at "other" for a value training never kept; 0 in the feature's
 * other columns.
 */
export function setIndicator(row: Float32Array, at: number, slot: CategoricalSlot, value: string | number): void {
  const base = at + slot.offset;
  row.fill(0, base, base + slot.width);
  row[base + indicatorColumn(slot, value)] = 1;
}

/** Maps raw requests to model inputs the way a LogVocab says (training, evaluation and serving share it). */
export class LogMapper {
  private readonly items: Vocab;
  /** Categorical groups by name, derived once from vocab.categorical. */
  private readonly expansions = new Map<string, GroupExpansion>();

  constructor(readonly vocab: LogVocab, readonly maxTerms = Infinity) {
    this.items = Vocab.fromJSON(vocab.items);
    for (const c of vocab.categorical) {
      let e = this.expansions.get(c.group);
      if (e === undefined) this.expansions.set(c.group, (e = { slots: [], rowWidth: 0 }));
      const width = indicatorColumns(c).length;
      e.slots.push({ group: c.group, feature: c.feature, offset: e.rowWidth, width, index: new Map(c.values.map((v, k) => [v, k])) });
      e.rowWidth += width;
    }
  }

  /**
   * The categorical features' indicator columns in a model layout (group offsets from `layout`),
   * for serving raw categorical values (`features: { ad: { brand: "acme" } }`).
   */
  categoricalSlots(layout: { groups: readonly { name: string; offset: number }[] }): CategoricalSlot[] {
    return layout.groups.flatMap((g) => (this.expansions.get(g.name)?.slots ?? []).map((sl) => ({ ...sl, offset: g.offset + sl.offset })));
  }

  /** Model item id of a raw item id (0 for one the training split never showed). */
  item(id: Id): number {
    return this.items.get(id);
  }

  /** Hashed term ids of a query (its term ids when present, else its text's tokens); [] for none. */
  terms(q: Query | null | undefined): number[] {
    return queryTermIds(q ?? null, this.vocab.termBuckets, this.maxTerms);
  }

  /** A record's feature groups in the model's spec (categorical groups expanded, bag groups dropped). */
  features(r: SessionRecord): Record<string, (number | null)[]> | undefined {
    if (r.features === undefined) return undefined;
    const out: Record<string, (number | null)[]> = {};
    for (const g of this.vocab.spec.groups) {
      const col = r.features[g.name] as readonly Cell[] | undefined;
      if (col === undefined) continue;
      const e = this.expansions.get(g.name);
      out[g.name] = e === undefined ? (col as (number | null)[]) : expandCategorical(col, r.shown.length, e);
    }
    return out;
  }
}

/** A catalogue by raw id → arrays by model item id (row 0, the unseen item, has none). */
function sideByModelId(vocab: LogVocab, nItems: number, cat: LogCatalogue | undefined): { category: number[]; style: number[]; titles: number[][] } {
  const category = new Array<number>(nItems).fill(-1);
  const style = new Array<number>(nItems).fill(-1);
  const titles: number[][] = Array.from({ length: nItems }, () => []);
  if (cat === undefined) return { category, style, titles };
  const rows = cat.ids === undefined ? null : new Map(cat.ids.map((id, r) => [String(id), r]));
  const size = Math.max(cat.category?.length ?? 0, cat.style?.length ?? 0, cat.titles?.length ?? 0);
  const num = (v: number | undefined, what: string, r: number): number => {
    if (v === undefined) return -1;
    if (!Number.isInteger(v) || v < -1) throw new Error(`prepareLogData: catalogue.${what}[${r}] must be an integer id >= -1, got ${v}`);
    return v;
  };
  vocab.items.forEach((raw, k) => {
    const r = rows !== null ? rows.get(raw) : /^\d+$/.test(raw) && Number(raw) < size ? Number(raw) : undefined;
    if (r === undefined) return;
    const m = k + 1;
    category[m] = num(cat.category?.[r], 'category', r);
    style[m] = num(cat.style?.[r], 'style', r);
    titles[m] = (cat.titles?.[r] ?? []).map((t) => hashTerm(t, vocab.termBuckets));
  });
  return { category, style, titles };
}

/**
 * Session records of a log → the QGS trainer's PreparedData (per-user time split, dense ids) and the
 * LogVocab that maps raw requests the same way later. Pass `vocab` to reuse a checkpoint's mapping.
 */
export function prepareLogData(records: readonly SessionRecord[], opts: LogDataOptions = {}): LogData {
  if (records.length === 0) throw new Error('prepareLogData: no records (an empty file, or every record was bad)');
  const maxTerms = checkInt(opts.maxTerms, 'maxTerms', 1, 64, 4);
  const split = splitByUserTime(records, opts.split);
  const train = (i: number): boolean => split[i] === TRAIN;
  let vocab = opts.vocab;
  if (vocab === undefined) {
    const termBuckets = checkInt(opts.termBuckets, 'termBuckets', 2, 1 << 24, DEFAULT_TERM_BUCKETS);
    const maxCategories = checkInt(opts.maxCategories, 'maxCategories', 0, 4096, DEFAULT_MAX_CATEGORIES);
    const spec = opts.spec ?? inferFeatureSpec(records);
    const items = new Vocab();
    records.forEach((r, i) => {
      if (train(i)) for (const id of r.shown) items.add(id);
    });
    const categorical = categoricalColumns(records, train, spec, maxCategories);
    const m = modelSpec(spec, categorical);
    vocab = { items: items.toJSON(), termBuckets, categorical, spec: m.spec, dropped: m.dropped, positionFeature: opts.positionFeature ?? 'log_rank' };
  }
  const mapper = new LogMapper(vocab, maxTerms);
  const users = new Vocab();
  let unseen = 0;
  const mapped = records.map((r): SessionRecord => {
    const shown = r.shown.map((id) => {
      const m = mapper.item(id);
      if (m === 0) unseen++;
      return m;
    });
    const terms = mapper.terms(r.query);
    return {
      user: users.add(r.user),
      ts: r.ts,
      session: r.session,
      query: r.query === null ? null : { terms },
      shown,
      clicks: r.clicks,
      rel: r.rel,
      features: mapper.features(r),
    };
  });
  // The catalogue size fixes the item table (every vocabulary item, plus model item 0 for unseen ones),
  // whatever the records of this call show.
  const nItems = vocab.items.length + 1;
  const catalogue = sideByModelId(vocab, nItems, opts.catalogue);
  const data = prepareTimelines(mapped, vocab.spec, { split, maxTerms, positionFeature: vocab.positionFeature, catalogue });
  data.termVocab = vocab.termBuckets + TERM_OFFSET;
  if (data.itemVocab !== logItemTableRows(vocab)) throw new Error(`prepareLogData: internal: item table ${data.itemVocab}, expected ${logItemTableRows(vocab)}`);
  const count = (c: number): number => split.reduce((s, x) => s + (x === c ? 1 : 0), 0);
  return {
    data,
    vocab,
    stats: { records: records.length, train: count(TRAIN), valid: count(VALID), test: count(TEST), users: users.size - 1, items: vocab.items.length, unseenItems: unseen },
  };
}
