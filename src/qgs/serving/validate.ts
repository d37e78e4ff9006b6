// Request validation for serving: every field is checked on the caller's thread, before anything is
// queued for the worker, with a message that names the path, what was expected and what was given
// (`candidates[3].item: expected a non-negative integer, got -1`).
//
// Validation returns a clean copy holding only the known fields, so (a) the worker receives exactly
// what was validated even if the caller mutates its objects afterwards, and (b) extra fields on
// candidates / interactions (titles, metadata...) are dropped instead of being copied to the worker.
// Unknown top-level request fields are rejected (they are usually typos: `candidate`, `histroy`).
import type { Candidate, FeatureValue, Interaction, ItemId, Query } from './backend';
import type { UserKey } from './state-cache';
import type { ExactFeatures, FeatureExtra, FeatureColumn, PackedCandidates, PackedHistory } from './packed';
import { isPlainObject, ShapeReaders } from './candidate-reader';

export interface ServingLimits {
  /** Candidates per score request. */
  maxCandidates: number;
  /** Events in a request's history (and per observe call). */
  maxHistory: number;
  /** Term ids per query. */
  maxQueryTerms: number;
  /** Characters in query text, string features and string user keys. */
  maxTextLength: number;
  /** Feature groups per candidate. */
  maxFeatureGroups: number;
  /** Features per group. */
  maxFeaturesPerGroup: number;
  /** Elements in an array-valued feature. */
  maxFeatureArrayLength: number;
}

export const DEFAULT_LIMITS: Readonly<ServingLimits> = Object.freeze({
  maxCandidates: 10_000,
  maxHistory: 10_000,
  maxQueryTerms: 1024,
  maxTextLength: 4096,
  maxFeatureGroups: 64,
  maxFeaturesPerGroup: 1024,
  maxFeatureArrayLength: 1024,
});

/** Item, term, query and action ids are non-negative integers below 2^31 (native i32 indices). */
export const MAX_ID = 2 ** 31 - 1;

export class ValidationError extends Error {
  constructor(
    readonly path: string,
    detail: string,
    prefix = '',
  ) {
    super(`${prefix}${path}: ${detail}`);
    this.name = 'ValidationError';
  }
}

/** A short description of a value for error messages. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'bigint') return `${v}n (a bigint)`;
  if (typeof v === 'string') return v.length > 40 ? `${JSON.stringify(v.slice(0, 40))}... (${v.length} chars)` : JSON.stringify(v);
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'symbol') return 'a symbol';
  return 'an object';
}

function fail(path: string, expected: string, got: unknown): never {
  throw new ValidationError(path, `expected ${expected}, got ${describeValue(got)}`);
}

function checkObject(v: unknown, path: string): Record<string, unknown> {
  if (!isPlainObject(v)) fail(path, 'an object', v);
  return v;
}

function checkId(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(path, 'a non-negative integer', v);
  if (v > MAX_ID) fail(path, `a non-negative integer below 2^31`, v);
  return v;
}

const ITEM_ID = 'an item id (a non-negative integer or a non-empty string)';

/**
 * An item id: a non-negative safe integer or a non-empty string (what a model trained on a log maps
 * through its vocabulary; the synthetic data's models take integers below their catalogue size).
 */
function checkItemId(v: unknown, path: string, limits: ServingLimits): ItemId {
  if (typeof v === 'string') {
    if (v.length === 0) fail(path, ITEM_ID, v);
    return checkString(v, path, limits.maxTextLength);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(path, ITEM_ID, v);
  if (v > Number.MAX_SAFE_INTEGER) fail(path, `${ITEM_ID} (integers up to 2^53 - 1)`, v);
  return v;
}

function checkFinite(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(path, 'a finite number', v);
  return v;
}

function checkArray(v: unknown, path: string, max: number, what: string): readonly unknown[] {
  if (!Array.isArray(v)) fail(path, `an array of ${what}`, v);
  if (v.length > max) throw new ValidationError(path, `at most ${max} ${what} allowed (limit), got ${v.length}`);
  return v;
}

function checkString(v: unknown, path: string, max: number): string {
  if (typeof v !== 'string') fail(path, 'a string', v);
  if (v.length > max) throw new ValidationError(path, `expected at most ${max} characters (limit), got ${v.length}`);
  return v;
}

export function validateUser(v: unknown, path: string, limits: ServingLimits): UserKey {
  if (typeof v === 'string') {
    if (v.length === 0) fail(path, 'a non-empty string or a safe integer user key', v);
    return checkString(v, path, limits.maxTextLength);
  }
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  return fail(path, 'a non-empty string or a safe integer user key', v);
}

export function validateQuery(v: unknown, path: string, limits: ServingLimits): Query {
  const o = checkObject(v, path);
  const q: Query = {};
  if (o.terms !== undefined) {
    const t = checkArray(o.terms, `${path}.terms`, limits.maxQueryTerms, 'term ids');
    const terms = new Array<number>(t.length);
    for (let i = 0; i < t.length; i++) terms[i] = checkId(t[i], `${path}.terms[${i}]`);
    q.terms = terms;
  }
  if (o.text !== undefined) q.text = checkString(o.text, `${path}.text`, limits.maxTextLength);
  if (o.id !== undefined) q.id = checkId(o.id, `${path}.id`);
  if ((q.terms === undefined || q.terms.length === 0) && q.text === undefined && q.id === undefined) {
    throw new ValidationError(path, 'expected at least one of terms (non-empty), text or id, got none');
  }
  return q;
}

export function validateInteraction(v: unknown, path: string, limits: ServingLimits): Interaction {
  const o = checkObject(v, path);
  const e: Interaction = { query: validateQuery(o.query, `${path}.query`, limits), item: checkItemId(o.item, `${path}.item`, limits) };
  if (o.ts !== undefined) e.ts = checkFinite(o.ts, `${path}.ts`);
  if (o.action !== undefined) e.action = checkId(o.action, `${path}.action`);
  return e;
}

export function validateHistory(v: unknown, path: string, limits: ServingLimits): Interaction[] {
  const a = checkArray(v, path, limits.maxHistory, 'events');
  const out = new Array<Interaction>(a.length);
  for (let i = 0; i < a.length; i++) out[i] = validateInteraction(a[i], `${path}[${i}]`, limits);
  return out;
}

export function validateFeatureValue(v: unknown, path: string, limits: ServingLimits): FeatureValue {
  if (v === null) return null;
  if (typeof v === 'number') return checkFinite(v, path);
  if (typeof v === 'string') return checkString(v, path, limits.maxTextLength);
  if (Array.isArray(v)) {
    if (v.length > limits.maxFeatureArrayLength) {
      throw new ValidationError(path, `at most ${limits.maxFeatureArrayLength} elements allowed (limit), got ${v.length}`);
    }
    if (v.length === 0) return [];
    if (typeof v[0] === 'string') {
      const out = new Array<string>(v.length);
      for (let i = 0; i < v.length; i++) {
        if (typeof v[i] !== 'string') fail(`${path}[${i}]`, 'a string (array features hold all numbers or all strings)', v[i]);
        out[i] = checkString(v[i], `${path}[${i}]`, limits.maxTextLength);
      }
      return out;
    }
    const out = new Array<number>(v.length);
    for (let i = 0; i < v.length; i++) {
      if (typeof v[i] !== 'number') fail(`${path}[${i}]`, 'a finite number (array features hold all numbers or all strings)', v[i]);
      out[i] = checkFinite(v[i], `${path}[${i}]`);
    }
    return out;
  }
  return fail(path, 'a number, string, array of numbers, array of strings or null', v);
}

export function validateCandidate(v: unknown, path: string, limits: ServingLimits): Candidate {
  const o = checkObject(v, path);
  const c: Candidate = { item: checkItemId(o.item, `${path}.item`, limits) };
  if (o.features !== undefined) {
    const groups = checkObject(o.features, `${path}.features`);
    const gNames = Object.keys(groups);
    if (gNames.length > limits.maxFeatureGroups) {
      throw new ValidationError(`${path}.features`, `at most ${limits.maxFeatureGroups} feature groups allowed (limit), got ${gNames.length}`);
    }
    const fOut: Record<string, Record<string, FeatureValue>> = {};
    for (const g of gNames) {
      const gPath = `${path}.features.${g}`;
      const feats = checkObject(groups[g], gPath);
      const fNames = Object.keys(feats);
      if (fNames.length > limits.maxFeaturesPerGroup) {
        throw new ValidationError(gPath, `at most ${limits.maxFeaturesPerGroup} features per group allowed (limit), got ${fNames.length}`);
      }
      const gOut: Record<string, FeatureValue> = {};
      for (const f of fNames) gOut[f] = validateFeatureValue(feats[f], `${gPath}.${f}`, limits);
      fOut[g] = gOut;
    }
    c.features = fOut;
  }
  return c;
}

/**
 * Candidates already in columnar form (what a high-rate caller can build without one object per
 * candidate): item ids, the numeric feature columns, and one row-major [items.length, columns.length]
 * matrix of their values (NaN = missing). Ranker.score copies the arrays: the caller's stay usable.
 * Item ids are an Int32Array, or an array of ids as the object form takes them (non-negative safe
 * integers or non-empty strings: a log-trained model's raw ids).
 */
export interface CandidateColumns {
  items: Int32Array | readonly ItemId[];
  columns: readonly { group: string; feature: string }[];
  values: Float32Array;
}

const isTyped = (v: unknown, tag: string): boolean => Object.prototype.toString.call(v) === `[object ${tag}]`;

/**
 * True for the columnar form (an object with `items`; a list is an array), false for a candidate
 * list. A wrong `items` is then reported as the columnar field it is.
 */
export function isCandidateColumns(v: unknown): boolean {
  return isPlainObject(v) && 'items' in v;
}

/** Validates columnar candidates (same limits as the object form) and packs a copy. */
export function packCandidateColumns(v: unknown, path: string, limits: ServingLimits): PackedCandidates {
  const o = checkObject(v, path);
  for (const k in o) if (k !== 'items' && k !== 'columns' && k !== 'values') throw new ValidationError(`${path}.${k}`, 'unknown field (expected items, columns, values)');
  const typed = isTyped(o.items, 'Int32Array');
  if (!typed && !Array.isArray(o.items)) fail(`${path}.items`, 'an Int32Array of item ids, or an array of item ids (non-negative integers or non-empty strings)', o.items);
  const given = o.items as Int32Array | readonly unknown[];
  const n = given.length;
  if (n > limits.maxCandidates) throw new ValidationError(`${path}.items`, `at most ${limits.maxCandidates} candidates allowed (limit), got ${n}`);
  const ids = new ItemIdColumn(new Int32Array(n));
  if (typed) {
    const items = given as Int32Array;
    for (let i = 0; i < n; i++) if (items[i] < 0) fail(`${path}.items[${i}]`, 'a non-negative integer', items[i]);
    ids.items.set(items);
  } else {
    for (let i = 0; i < n; i++) if (!ids.put(i, given[i], limits)) invalid(() => checkItemId(given[i], `${path}.items[${i}]`, limits), `${path}.items[${i}]`);
  }
  const cols = checkArray(o.columns, `${path}.columns`, limits.maxFeatureGroups * limits.maxFeaturesPerGroup, 'feature columns');
  const columns: FeatureColumn[] = [];
  const perGroup = new Map<string, Set<string>>();
  cols.forEach((c, j) => {
    const co = checkObject(c, `${path}.columns[${j}]`);
    const group = checkString(co.group, `${path}.columns[${j}].group`, limits.maxTextLength);
    const feature = checkString(co.feature, `${path}.columns[${j}].feature`, limits.maxTextLength);
    let fs = perGroup.get(group);
    if (fs === undefined) {
      if (perGroup.size >= limits.maxFeatureGroups) throw new ValidationError(`${path}.columns[${j}].group`, `at most ${limits.maxFeatureGroups} feature groups allowed (limit)`);
      perGroup.set(group, (fs = new Set()));
    }
    if (fs.has(feature)) throw new ValidationError(`${path}.columns[${j}]`, `duplicate column ${group}.${feature}`);
    if (fs.size >= limits.maxFeaturesPerGroup) throw new ValidationError(`${path}.columns[${j}].feature`, `at most ${limits.maxFeaturesPerGroup} features per group allowed (limit)`);
    fs.add(feature);
    columns.push({ group, feature });
  });
  if (!isTyped(o.values, 'Float32Array')) fail(`${path}.values`, 'a Float32Array of feature values', o.values);
  const values = o.values as Float32Array;
  if (values.length !== n * columns.length) {
    throw new ValidationError(`${path}.values`, `expected ${n * columns.length} values (${n} candidates × ${columns.length} columns), got ${values.length}`);
  }
  for (let k = 0; k < values.length; k++) {
    const x = values[k];
    if (x === Infinity || x === -Infinity) fail(`${path}.values[${k}] (candidate ${Math.floor(k / columns.length)}, ${columns[k % columns.length].group}.${columns[k % columns.length].feature})`, 'a finite number or NaN (missing)', x);
  }
  return ids.attach<PackedCandidates>({ items: ids.items, columns, values: values.slice(), extras: [] });
}

export function validateCandidates(v: unknown, path: string, limits: ServingLimits): Candidate[] {
  const a = checkArray(v, path, limits.maxCandidates, 'candidates');
  const out = new Array<Candidate>(a.length);
  for (let i = 0; i < a.length; i++) out[i] = validateCandidate(a[i], `${path}[${i}]`, limits);
  return out;
}

/** What `Ranker.score` accepts. */
export interface ScoreRequest {
  /** Cache key of the user. With `history`, the encoded state is (re)cached under it; without,
   *  the cached state is used (see RankerOptions.onMissingState). */
  user?: UserKey;
  /** The user's past interactions, oldest first. Given: a full re-encode (cold path). */
  history?: readonly Interaction[];
  query: Query;
  /** The candidates: a list of objects, or the columnar form (CandidateColumns). */
  candidates: readonly Candidate[] | CandidateColumns;
}

const REQUEST_KEYS = new Set(['user', 'history', 'query', 'candidates']);

/** Validates a score request; returns a clean copy (known fields only). Throws ValidationError. */
export function validateScoreRequest(v: unknown, limits: ServingLimits = DEFAULT_LIMITS): ScoreRequest {
  const o = checkObject(v, 'request');
  for (const k of Object.keys(o)) {
    if (!REQUEST_KEYS.has(k)) throw new ValidationError(`request.${k}`, `unknown field (expected user, history, query, candidates)`);
  }
  const r: ScoreRequest = {
    query: validateQuery(o.query, 'query', limits),
    candidates: isCandidateColumns(o.candidates)
      ? (({ items, rawItems, columns, values }) => ({ items: rawItems ?? items, columns, values }))(packCandidateColumns(o.candidates, 'candidates', limits))
      : validateCandidates(o.candidates, 'candidates', limits),
  };
  if (o.user !== undefined) r.user = validateUser(o.user, 'user', limits);
  if (o.history !== undefined) r.history = validateHistory(o.history, 'history', limits);
  return r;
}

/** Checks user-supplied limits (partial) and fills in the defaults. */
export function resolveLimits(partial: Partial<ServingLimits> | undefined, path = 'limits'): ServingLimits {
  const out: ServingLimits = { ...DEFAULT_LIMITS };
  if (partial === undefined) return out;
  const o = checkObject(partial, path);
  for (const k of Object.keys(o)) {
    if (!(k in DEFAULT_LIMITS)) throw new ValidationError(`${path}.${k}`, `unknown limit (expected one of ${Object.keys(DEFAULT_LIMITS).join(', ')})`);
    const x = o[k];
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 1) fail(`${path}.${k}`, 'a positive integer', x);
    out[k as keyof ServingLimits] = x;
  }
  return out;
}

// ---- one-pass validation into packed form (what the Ranker sends to the worker) ----
// The fast paths build no strings and no copies; on the first invalid element they hand it to the
// per-element validators above, which throw the same messages validateScoreRequest gives.

/** Ids that fit the packed Int32Arrays (term, query, action ids; item ids that are not travel in `rawItems`). */
function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_ID;
}

/** checkItemId's test without the message (the packers' hot loops). */
function isItemKey(v: unknown, limits: ServingLimits): boolean {
  if (typeof v === 'string') return v.length > 0 && v.length <= limits.maxTextLength;
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER;
}

/**
 * The item ids of a packed list: int32 ids in `items`; from the first other id on (a string, an
 * integer past 2^31 − 1), every id as given in `raw`, with -1 in `items` for the others.
 */
class ItemIdColumn {
  raw: ItemId[] | null = null;
  constructor(readonly items: Int32Array) {}

  /** Stores id at i; false when it is not an item id (the caller reports it). */
  put(i: number, id: unknown, limits: ServingLimits): boolean {
    if (isId(id)) {
      this.items[i] = id;
      if (this.raw !== null) this.raw[i] = id;
      return true;
    }
    if (!isItemKey(id, limits)) return false;
    this.raw ??= Array.from(this.items.subarray(0, i));
    this.items[i] = -1;
    this.raw[i] = id as ItemId;
    return true;
  }

  /** `packed` with this column's ids: `rawItems` only when some id does not fit `items`. */
  attach<T extends { items: Int32Array; rawItems?: ItemId[] }>(packed: T): T {
    if (this.raw !== null) packed.rawItems = this.raw;
    return packed;
  }
}

function invalid(check: () => unknown, path: string): never {
  check();
  throw new ValidationError(path, 'invalid value'); // not reached: check() throws
}

// Compiled readers for candidate lists of one shape (candidate-reader.ts).
const SHAPE_READERS = new ShapeReaders(MAX_ID);

/** Below this many candidates the generic path is as fast as compiling and running a reader. */
const SHAPE_READER_MIN = 16;

/**
 * Validates a candidate list and packs it (numeric features as a dense NaN-padded matrix). Values
 * of `exact` features that float32 would change are also added to `extras` as they are.
 */
export function packCandidates(v: unknown, path: string, limits: ServingLimits, exact: ExactFeatures | null = null): PackedCandidates {
  if (isCandidateColumns(v)) return packCandidateColumns(v, path, limits);
  const a = checkArray(v, path, limits.maxCandidates, 'candidates');
  const n = a.length;
  if (n >= SHAPE_READER_MIN) {
    // All candidates shaped like the first, with finite numeric features only: read by the
    // compiled reader. Anything else (first mismatch) → the generic packer, from the start.
    const shape = SHAPE_READERS.shapeOf(a[0], limits.maxFeatureGroups, limits.maxFeaturesPerGroup, exact);
    if (shape !== null) {
      const items = new Int32Array(n);
      const values = new Float32Array(n * shape.columns.length);
      const extras: FeatureExtra[] = [];
      if (shape.read(a, items, values, extras) === n) return { items, columns: shape.columns, values, extras };
    }
  }
  return packCandidateList(a, path, limits, exact);
}

/**
 * The generic candidate packer: any mix of shapes, string/array values, and the error report for
 * the first bad candidate. Exported for the tests that hold the compiled readers to it.
 */
export function packCandidateList(a: readonly unknown[], path: string, limits: ServingLimits, exact: ExactFeatures | null = null): PackedCandidates {
  const n = a.length;
  const items = new Int32Array(n);
  const colIndex = new Map<string, Map<string, number>>();
  const columns: FeatureColumn[] = [];
  const extras: FeatureExtra[] = [];
  let cap = 1024;
  let eRow = new Int32Array(cap);
  let eCol = new Int32Array(cap);
  let eVal = new Float64Array(cap);
  let nnz = 0;
  // Candidates of one request almost always list the same groups and features in the same order:
  // the (group, feature) → column pairs of the previous candidate, matched by position, spare the
  // two Map lookups per value (property keys are interned, so the string tests are cheap).
  const seqG: string[] = [];
  const seqK: string[] = [];
  const seqCol: number[] = [];
  const ids = new ItemIdColumn(items);
  const bad: (i: number) => never = (i) => invalid(() => validateCandidate(a[i], `${path}[${i}]`, limits), `${path}[${i}]`);
  for (let i = 0; i < n; i++) {
    const c = a[i];
    if (!isPlainObject(c) || !ids.put(i, c.item, limits)) bad(i);
    const f = c.features;
    if (f === undefined) continue;
    if (!isPlainObject(f)) bad(i);
    let ng = 0;
    let pos = 0;
    for (const g in f) {
      const grp = f[g];
      if (++ng > limits.maxFeatureGroups || !isPlainObject(grp)) bad(i);
      let gm: Map<string, number> | undefined;
      let nf = 0;
      for (const k in grp as Record<string, unknown>) {
        if (++nf > limits.maxFeaturesPerGroup) bad(i);
        const x = (grp as Record<string, unknown>)[k];
        if (typeof x === 'number') {
          if (!Number.isFinite(x)) bad(i);
          let col: number;
          if (pos < seqCol.length && seqG[pos] === g && seqK[pos] === k) {
            col = seqCol[pos];
          } else {
            if (gm === undefined) {
              gm = colIndex.get(g);
              if (gm === undefined) colIndex.set(g, (gm = new Map()));
            }
            let c2 = gm.get(k);
            if (c2 === undefined) {
              c2 = columns.length;
              columns.push({ group: g, feature: k });
              gm.set(k, c2);
            }
            col = c2;
            seqG[pos] = g;
            seqK[pos] = k;
            seqCol[pos] = col;
          }
          pos++;
          if (nnz === cap) {
            cap *= 2;
            const r = new Int32Array(cap);
            r.set(eRow);
            eRow = r;
            const cc = new Int32Array(cap);
            cc.set(eCol);
            eCol = cc;
            const vv = new Float64Array(cap);
            vv.set(eVal);
            eVal = vv;
          }
          eRow[nnz] = i;
          eCol[nnz] = col;
          eVal[nnz] = x;
          nnz++;
          if (exact !== null && Math.fround(x) !== x && exact.get(g)?.has(k) === true) extras.push({ row: i, group: g, feature: k, value: x });
        } else if (x !== null) {
          let val: FeatureValue;
          try {
            val = validateFeatureValue(x, `${path}[${i}].features.${g}.${k}`, limits);
          } catch (e) {
            bad(i); // reports the first problem of the candidate in document order
            throw e;
          }
          extras.push({ row: i, group: g, feature: k, value: val as FeatureExtra['value'] });
        }
      }
    }
  }
  const C = columns.length;
  const values = new Float32Array(n * C);
  if (C > 0) values.fill(NaN);
  for (let e = 0; e < nnz; e++) values[eRow[e] * C + eCol[e]] = eVal[e];
  return ids.attach<PackedCandidates>({ items, columns, values, extras });
}

/** Validates a history and packs it into typed arrays. */
export function packHistory(v: unknown, path: string, limits: ServingLimits): PackedHistory {
  const a = checkArray(v, path, limits.maxHistory, 'events');
  const n = a.length;
  const items = new Int32Array(n);
  const ts = new Float64Array(n);
  const actions = new Int32Array(n);
  const queryIds = new Int32Array(n);
  const termOffsets = new Int32Array(n + 1);
  const hasTerms = new Uint8Array(n);
  let terms = new Int32Array(Math.max(16, 4 * n));
  let nt = 0;
  let texts: (string | null)[] | null = null;
  const ids = new ItemIdColumn(items);
  for (let t = 0; t < n; t++) {
    const e = a[t];
    const bad: () => never = () => invalid(() => validateInteraction(e, `${path}[${t}]`, limits), `${path}[${t}]`);
    if (!isPlainObject(e) || !isPlainObject(e.query) || !ids.put(t, e.item, limits)) bad();
    const ev = e as Record<string, unknown>;
    const q = ev.query as Record<string, unknown>;
    if (ev.ts === undefined) ts[t] = NaN;
    else if (typeof ev.ts === 'number' && Number.isFinite(ev.ts)) ts[t] = ev.ts;
    else bad();
    if (ev.action === undefined) actions[t] = -1;
    else if (isId(ev.action)) actions[t] = ev.action;
    else bad();
    let content = false;
    if (q.terms !== undefined) {
      const qt = q.terms;
      if (!Array.isArray(qt) || qt.length > limits.maxQueryTerms) bad();
      const arr = qt as unknown[];
      if (nt + arr.length > terms.length) {
        const bigger = new Int32Array(Math.max(2 * terms.length, nt + arr.length));
        bigger.set(terms.subarray(0, nt));
        terms = bigger;
      }
      for (let j = 0; j < arr.length; j++) {
        const x = arr[j];
        if (!isId(x)) bad();
        terms[nt++] = x as number;
      }
      hasTerms[t] = 1;
      content = arr.length > 0;
    }
    termOffsets[t + 1] = nt;
    if (q.text !== undefined) {
      if (typeof q.text !== 'string' || q.text.length > limits.maxTextLength) bad();
      if (texts === null) texts = new Array<string | null>(n).fill(null);
      texts[t] = q.text as string;
      content = true;
    }
    if (q.id === undefined) queryIds[t] = -1;
    else if (isId(q.id)) {
      queryIds[t] = q.id;
      content = true;
    } else bad();
    if (!content) bad();
  }
  return ids.attach<PackedHistory>({ items, ts, actions, queryIds, termOffsets, terms: terms.slice(0, nt), hasTerms, texts });
}

/** A validated score request in the packed form the Ranker sends to its worker. */
export interface PackedScoreRequest {
  user?: UserKey;
  query: Query;
  history?: PackedHistory;
  candidates: PackedCandidates;
}

/** Validates a score request (same checks and messages as validateScoreRequest) and packs it. */
export function packScoreRequest(v: unknown, limits: ServingLimits = DEFAULT_LIMITS, exact: ExactFeatures | null = null): PackedScoreRequest {
  const o = checkObject(v, 'request');
  for (const k in o) {
    if (!REQUEST_KEYS.has(k)) throw new ValidationError(`request.${k}`, `unknown field (expected user, history, query, candidates)`);
  }
  const r: PackedScoreRequest = {
    query: validateQuery(o.query, 'query', limits),
    candidates: packCandidates(o.candidates, 'candidates', limits, exact),
  };
  if (o.user !== undefined) r.user = validateUser(o.user, 'user', limits);
  if (o.history !== undefined) r.history = packHistory(o.history, 'history', limits);
  return r;
}
