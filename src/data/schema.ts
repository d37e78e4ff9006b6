// The session-log record every reader, adapter and the synthetic generator produce (DESIGN.md §7):
// one record = one search request (or one query-less interaction) of one user: who, when, which
// query, which items were shown in which order, which were clicked, and per-item features in named
// groups. Position-free relevance labels ride along where known (synthetic data) for evaluation only.

/** Ids of users, items, sessions, requests. Numbers and strings are both accepted; the vocab code
 * treats `7` and `"7"` as the same id (ids are compared by their decimal/string form). */
export type Id = number | string;

/** A query as text and/or anonymised term ids (KuaiSAR, JDsearch ship term ids, not text). */
export interface Query {
  text?: string;
  terms?: readonly number[];
}

/** Kinds of feature groups: numeric vectors, categorical ids, or bags (variable-length id lists). */
export type FeatureKind = 'numeric' | 'categorical' | 'bag';

/** Declares one named feature group (e.g. `text_match` with features ['bm25', 'matched_terms']). */
export interface FeatureGroupSpec {
  name: string;
  kind: FeatureKind;
  /** Feature names in value order; a `bag` group has exactly one. */
  features: readonly string[];
  /** Human-readable note (what the group carries and why it is partial). */
  description?: string;
}

/** The groups a dataset's records carry. */
export interface FeatureSpec {
  groups: readonly FeatureGroupSpec[];
}

/**
 * Values of one feature group for all shown items of a record, item-major:
 * numeric → flat numbers [shown × features] (NaN or null = missing);
 * categorical → flat ids [shown × features];
 * bag → one id list per shown item.
 */
export type FeatureColumn = readonly (number | null)[] | readonly Id[] | readonly (readonly Id[])[];

/** One request (search) or interaction of one user. */
export interface SessionRecord {
  user: Id;
  /** Milliseconds since the epoch. */
  ts: number;
  /** Session id (requests of one visit); readers that lack one leave it undefined and the splitter
   * derives sessions from time gaps. */
  session?: Id;
  /** Request id, unique within a dataset where the source has one. */
  request?: Id;
  /** The query, or null for a query-less interaction (recommendation, browsing). */
  query: Query | null;
  /** Items shown, in display order (position = index + 1). */
  shown: readonly Id[];
  /** Click indicator per shown item (0/1, or a click count). */
  clicks: readonly number[];
  /** Graded action label per shown item where the source has one (JDsearch: 0 none, 1 click, 2 cart,
   * 3 purchase). */
  labels?: readonly number[];
  /** Position-free relevance label per shown item (synthetic data): for evaluation only, never a
   * model input. */
  rel?: readonly number[];
  /** Per-item features by group name, see {@link FeatureColumn}. Request-level features (query
   * side) are repeated per item so every candidate carries all groups. */
  features?: Readonly<Record<string, FeatureColumn>>;
}

/** A validation problem: the field path and what is wrong. */
export class RecordError extends Error {
  constructor(readonly field: string, readonly problem: string) {
    super(`${field}: ${problem}`);
    this.name = 'RecordError';
  }
}

/** A record id: a non-empty string or a finite number. */
export function isId(v: unknown): v is Id {
  return (typeof v === 'number' && Number.isFinite(v)) || (typeof v === 'string' && v.length > 0);
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * Checks that `value` is a well-formed SessionRecord (and, given a spec, that its features match it)
 * and returns it typed. Throws a {@link RecordError} naming the first bad field.
 */
export function validateRecord(value: unknown, spec?: FeatureSpec): SessionRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RecordError('record', `must be an object, got ${describe(value)}`);
  const r = value as Record<string, unknown>;
  if (!isId(r.user)) throw new RecordError('user', `must be a non-empty string or a finite number, got ${describe(r.user)}`);
  if (typeof r.ts !== 'number' || !Number.isFinite(r.ts)) throw new RecordError('ts', `must be a finite number (ms since epoch), got ${describe(r.ts)}`);
  if (r.session !== undefined && !isId(r.session)) throw new RecordError('session', `must be an id, got ${describe(r.session)}`);
  if (r.request !== undefined && !isId(r.request)) throw new RecordError('request', `must be an id, got ${describe(r.request)}`);
  if (r.query !== null) {
    if (typeof r.query !== 'object' || r.query === undefined || Array.isArray(r.query)) throw new RecordError('query', `must be {text?, terms?} or null, got ${describe(r.query)}`);
    const q = r.query as Record<string, unknown>;
    if (q.text === undefined && q.terms === undefined) throw new RecordError('query', 'needs text or terms (use null for a query-less interaction)');
    if (q.text !== undefined && typeof q.text !== 'string') throw new RecordError('query.text', `must be a string, got ${describe(q.text)}`);
    if (q.terms !== undefined) {
      if (!Array.isArray(q.terms)) throw new RecordError('query.terms', `must be an array of integers, got ${describe(q.terms)}`);
      q.terms.forEach((t, i) => {
        if (!Number.isInteger(t)) throw new RecordError(`query.terms[${i}]`, `must be an integer, got ${describe(t)}`);
      });
    }
  }
  if (!Array.isArray(r.shown)) throw new RecordError('shown', `must be an array of item ids, got ${describe(r.shown)}`);
  const n = r.shown.length;
  r.shown.forEach((id, i) => {
    if (!isId(id)) throw new RecordError(`shown[${i}]`, `must be an item id, got ${describe(id)}`);
  });
  checkNumbers(r.clicks, 'clicks', n, true);
  if (r.labels !== undefined) checkNumbers(r.labels, 'labels', n, true);
  if (r.rel !== undefined) checkNumbers(r.rel, 'rel', n, true);
  if (r.features !== undefined) {
    if (typeof r.features !== 'object' || r.features === null || Array.isArray(r.features)) throw new RecordError('features', 'must be an object of feature groups');
    const f = r.features as Record<string, unknown>;
    if (spec) {
      for (const g of spec.groups) {
        if (!(g.name in f)) throw new RecordError(`features.${g.name}`, 'missing (declared in the feature spec)');
        checkGroup(f[g.name], g, n);
      }
      for (const name of Object.keys(f)) {
        if (!spec.groups.some((g) => g.name === name)) throw new RecordError(`features.${name}`, 'not declared in the feature spec');
      }
    } else {
      for (const [name, col] of Object.keys(f).map((k) => [k, f[k]] as const)) {
        if (!Array.isArray(col)) throw new RecordError(`features.${name}`, `must be an array, got ${describe(col)}`);
      }
    }
  }
  return value as SessionRecord;
}

function checkNumbers(v: unknown, field: string, n: number, nonNegative: boolean): void {
  if (!Array.isArray(v)) throw new RecordError(field, `must be an array of ${n} numbers (one per shown item), got ${describe(v)}`);
  if (v.length !== n) throw new RecordError(field, `has ${v.length} entries but ${n} items are shown`);
  v.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isFinite(x) || (nonNegative && x < 0)) throw new RecordError(`${field}[${i}]`, `must be a finite number >= 0, got ${describe(x)}`);
  });
}

function checkGroup(col: unknown, g: FeatureGroupSpec, n: number): void {
  const field = `features.${g.name}`;
  if (!Array.isArray(col)) throw new RecordError(field, `must be an array, got ${describe(col)}`);
  if (g.kind === 'bag') {
    if (col.length !== n) throw new RecordError(field, `bag group needs one list per shown item (${n}), got ${col.length}`);
    col.forEach((bag, i) => {
      if (!Array.isArray(bag) || !bag.every(isId)) throw new RecordError(`${field}[${i}]`, `must be a list of ids, got ${describe(bag)}`);
    });
    return;
  }
  const want = n * g.features.length;
  if (col.length !== want) throw new RecordError(field, `needs ${n} items × ${g.features.length} features = ${want} values, got ${col.length}`);
  col.forEach((x, i) => {
    const ok = g.kind === 'numeric' ? x === null || typeof x === 'number' : isId(x);
    if (!ok) throw new RecordError(`${field}[${i}]`, `must be ${g.kind === 'numeric' ? 'a number or null' : 'an id'}, got ${describe(x)}`);
  });
}

/** Positions (0-based) of the clicked items of a record. */
export function clickedPositions(r: SessionRecord): number[] {
  const out: number[] = [];
  for (let i = 0; i < r.clicks.length; i++) if (r.clicks[i] > 0) out.push(i);
  return out;
}

/**
 * A feature spec read off the records: per group, its width (values per shown item, the same in every
 * record) and kind — numeric when every value is a number or null, bag when values are lists,
 * categorical otherwise. Features are named `${group}_${j}`. Throws naming the first record whose
 * group disagrees.
 */
export function inferFeatureSpec(records: readonly SessionRecord[]): FeatureSpec {
  const seen = new Map<string, { width: number; kind: FeatureGroupSpec['kind']; first: number }>();
  records.forEach((r, idx) => {
    const n = r.shown.length;
    if (r.features === undefined || n === 0) return;
    for (const [name, col] of Object.entries(r.features)) {
      const cells = col as readonly unknown[];
      const bag = cells.some((c) => Array.isArray(c));
      const width = bag ? 1 : cells.length / n;
      if (!Number.isInteger(width) || width < 1 || (bag && cells.length !== n)) {
        throw new Error(`inferFeatureSpec: records[${idx}].features.${name} has ${cells.length} values for ${n} shown items (expected a multiple of ${n})`);
      }
      const kind: FeatureGroupSpec['kind'] = bag ? 'bag' : cells.every((c) => c === null || typeof c === 'number') ? 'numeric' : 'categorical';
      const prev = seen.get(name);
      if (prev === undefined) seen.set(name, { width, kind, first: idx });
      else {
        if (prev.width !== width) throw new Error(`inferFeatureSpec: records[${idx}].features.${name} has ${width} values per item, records[${prev.first}] had ${prev.width}`);
        // A group with strings anywhere is categorical (its numbers are then category names too).
        if (prev.kind !== kind) prev.kind = prev.kind === 'bag' || kind === 'bag' ? 'bag' : 'categorical';
      }
    }
  });
  return {
    groups: [...seen.entries()].map(([name, g]) => ({ name, kind: g.kind, features: Array.from({ length: g.width }, (_, j) => `${name}_${j}`) })),
  };
}

const KINDS: readonly FeatureKind[] = ['numeric', 'categorical', 'bag'];

/** Checks a feature spec read from JSON (a spec file, a checkpoint); errors name `where` and the bad field. */
export function parseFeatureSpec(value: unknown, where: string): FeatureSpec {
  const o = value as { groups?: unknown } | null;
  if (typeof o !== 'object' || o === null || !Array.isArray(o.groups)) throw new Error(`${where}: expected a feature spec {groups: [...]}, got ${describe(value)}`);
  const names = new Set<string>();
  const groups = o.groups.map((g: unknown, i: number): FeatureGroupSpec => {
    const at = `${where}.groups[${i}]`;
    const x = g as Partial<FeatureGroupSpec> | null;
    if (typeof x !== 'object' || x === null || typeof x.name !== 'string' || x.name === '') throw new Error(`${at}.name: expected a non-empty string, got ${describe(x?.name)}`);
    if (names.has(x.name)) throw new Error(`${at}.name: group '${x.name}' appears twice`);
    names.add(x.name);
    if (!KINDS.includes(x.kind as FeatureKind)) throw new Error(`${at}.kind: expected one of ${KINDS.join(', ')}, got ${describe(x.kind)}`);
    if (!Array.isArray(x.features) || x.features.length === 0 || !x.features.every((f) => typeof f === 'string')) {
      throw new Error(`${at}.features: expected a non-empty array of feature names, got ${describe(x.features)}`);
    }
    return { name: x.name, kind: x.kind as FeatureKind, features: [...x.features], ...(typeof x.description === 'string' ? { description: x.description } : {}) };
  });
  return { groups };
}
