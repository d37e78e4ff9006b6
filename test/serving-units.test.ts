// Serving building blocks without a worker: the byte-bounded LRU state cache, the state codec and
// request validation.
import {
  StateCache,
  ENTRY_OVERHEAD_BYTES,
  encodeState,
  decodeState,
  tagHash,
  STATE_HEADER_BYTES,
  validateScoreRequest,
  resolveLimits,
  DEFAULT_LIMITS,
  packScoreRequest,
  CandidateBatch,
  unpackHistory,
  type ServingLimits,
  type Candidate,
} from '../src/qgs/serving';
import { Random } from '../src';
import { ServingCore, exactFeaturesOf } from '../src/qgs/serving/worker';
import { exactFeatureSet, type ExactFeatures, type FeatureExtra, type PackedCandidates } from '../src/qgs/serving/packed';
import { packCandidateList } from '../src/qgs/serving/validate';
import { ShapeReaders } from '../src/qgs/serving/candidate-reader';
import type { ScoringBackend } from '../src/qgs/serving/backend';
import { freshSeed } from './helpers';
import { errorOf } from './helpers';

describe('StateCache (LRU bounded by bytes)', () => {
  const st = (n: number, v = 0) => new Float32Array(n).fill(v);
  const per = 16 * 4 + ENTRY_OVERHEAD_BYTES + 8; // a 16-float state under a number key

  test('get / put / hit and miss counts / recency', () => {
    const c = new StateCache(10 * per);
    expect(c.get(1)).toBeUndefined();
    c.put(1, st(16, 1));
    c.put(2, st(16, 2));
    expect(c.get(1)?.[0]).toBe(1);
    expect(c.keys()).toEqual([2, 1]); // 1 was touched last
    expect(c.peek(2)?.[0]).toBe(2);
    expect(c.keys()).toEqual([2, 1]); // peek does not touch
    const s = c.stats();
    expect(s).toMatchObject({ entries: 2, bytes: 2 * per, hits: 1, misses: 1, evictions: 0, maxBytes: 10 * per });
  });

  test('evicts least recently used entries by bytes, replacing an entry re-accounts its bytes', () => {
    const c = new StateCache(3 * per);
    for (const u of [1, 2, 3]) c.put(u, st(16, u));
    expect(c.bytes).toBe(3 * per);
    c.get(1); // order now 2, 3, 1
    c.put(4, st(16, 4)); // evicts 2
    expect(c.keys()).toEqual([3, 1, 4]);
    expect(c.has(2)).toBe(false);
    expect(c.stats().evictions).toBe(1);
    c.put(3, st(16, 33)); // replace: no eviction, same bytes, 3 becomes most recent
    expect(c.keys()).toEqual([1, 4, 3]);
    expect(c.bytes).toBe(3 * per);
    expect(c.stats().evictions).toBe(1);
    // a bigger state for a new user evicts as many as needed
    c.put(5, st(16 * 2 + ENTRY_OVERHEAD_BYTES / 4 + 2, 5)); // = 2 entries' worth of bytes
    expect(c.keys()).toEqual([3, 5]);
    expect(c.stats().evictions).toBe(3);
    expect(c.bytes).toBeLessThanOrEqual(3 * per);
  });

  test('a state larger than the bound is not cached; string keys count their length; delete/clear', () => {
    const c = new StateCache(per);
    expect(c.put(1, st(1000))).toBe(false);
    expect(c.stats().rejected).toBe(1);
    expect(c.size).toBe(0);
    const c2 = new StateCache(1 << 20);
    c2.put('alice', st(16));
    expect(c2.bytes).toBe(16 * 4 + ENTRY_OVERHEAD_BYTES + 10);
    expect(c2.delete('alice')).toBe(true);
    expect(c2.delete('alice')).toBe(false);
    expect(c2.bytes).toBe(0);
    c2.put('b', st(4));
    c2.clear();
    expect(c2.size).toBe(0);
    expect(c2.bytes).toBe(0);
    const z = new StateCache(0);
    expect(z.put(1, st(1))).toBe(false);
    expect(errorOf(() => new StateCache(-1))).toMatch(/maxBytes: expected a non-negative integer, got -1/);
  });

  test('many puts stay within the bound (O(1) per operation)', () => {
    const c = new StateCache(100 * per);
    const t0 = Date.now();
    for (let i = 0; i < 100_000; i++) {
      c.put(i, st(16));
      if (i % 3 === 0) c.get(i - 50);
    }
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(c.size).toBe(100);
    expect(c.bytes).toBe(100 * per);
    expect(c.stats().evictions).toBe(100_000 - 100);
  });
});

describe('state codec', () => {
  const state = Float32Array.from({ length: 37 }, (_, i) => Math.sin(i) * 1e3);

  test('round trip with header fields, also from an unaligned Buffer', () => {
    const b = encodeState(state, 'model-a');
    expect(b.length).toBe(STATE_HEADER_BYTES + 37 * 4);
    expect(String.fromCharCode(...b.subarray(0, 4))).toBe('QGSS');
    const dv = new DataView(b.buffer);
    expect(dv.getUint16(4, true)).toBe(1);
    expect(dv.getUint32(8, true)).toBe(37);
    expect(dv.getUint32(12, true)).toBe(tagHash('model-a'));
    expect(Array.from(decodeState(b, { stateSize: 37, tag: 'model-a' }))).toEqual(Array.from(state));
    const big = Buffer.alloc(b.length + 3);
    big.set(b, 3);
    const unaligned = big.subarray(3);
    expect(Array.from(decodeState(unaligned, { stateSize: 37, tag: 'model-a' }))).toEqual(Array.from(state));
    expect(tagHash(undefined)).toBe(0);
    expect(tagHash('')).not.toBe(0);
  });

  test('mismatches and corruption are rejected with the reason', () => {
    const b = encodeState(state, 'model-a');
    const exp = { stateSize: 37, tag: 'model-a' };
    expect(errorOf(() => decodeState(b, { stateSize: 38, tag: 'model-a' }))).toMatch(/state size mismatch: the bytes hold a state of 37 floats, this model's states have 38/);
    expect(errorOf(() => decodeState(b, { stateSize: 37, tag: 'model-b' }))).toMatch(/model mismatch: the state was exported by a model with tag hash 0x[0-9a-f]{8}, this model's is 0x/);
    expect(errorOf(() => decodeState(b, { stateSize: 37 }))).toMatch(/model mismatch/);
    const v = b.slice();
    new DataView(v.buffer).setUint16(4, 2, true);
    expect(errorOf(() => decodeState(v, exp))).toMatch(/unsupported state format version 2 \(this qgs-engine reads version 1\)/);
    const m = b.slice();
    m[0] = 0x58;
    expect(errorOf(() => decodeState(m, exp))).toMatch(/not a serialised qgs user state \(magic "XGSS"/);
    const c = b.slice();
    c[c.length - 1] ^= 0x40;
    expect(errorOf(() => decodeState(c, exp))).toMatch(/checksum mismatch .* corrupted/);
    expect(errorOf(() => decodeState(b.subarray(0, b.length - 4), exp))).toMatch(/length mismatch: expected 172 bytes for 37 floats, got 168/);
    expect(errorOf(() => decodeState(b.subarray(0, 10), exp))).toMatch(/too short/);
    const d = b.slice();
    new DataView(d.buffer).setUint16(6, 1, true);
    expect(errorOf(() => decodeState(d, exp))).toMatch(/unsupported state dtype code 1/);
    expect(errorOf(() => decodeState('abc' as never, exp))).toMatch(/expected a Uint8Array/);
  });
});

describe('request validation', () => {
  const ok = { query: { terms: [1, 2] }, candidates: [{ item: 1 }, { item: 2, features: { stats: { ctr: 0.1, tags: ['a'], emb: [1, 2] }, text: { title: 'x', none: null } } }] };
  // Both validators (object copy and one-pass packing) must give the same message.
  const msg = (r: unknown, lim: ServingLimits = DEFAULT_LIMITS) => {
    const a = errorOf(() => validateScoreRequest(r, lim));
    const b = errorOf(() => packScoreRequest(r, lim));
    expect(b).toBe(a);
    return a;
  };

  test('a valid request comes back as a clean copy (extra fields dropped)', () => {
    const r = validateScoreRequest({ ...ok, user: 'u', history: [{ query: { id: 3 }, item: 4, ts: 1.5, action: 1, extra: 'x' }] });
    expect(r).toEqual({ ...ok, user: 'u', history: [{ query: { id: 3 }, item: 4, ts: 1.5, action: 1 }] });
    const withExtra = validateScoreRequest({ query: { text: 'shoes' }, candidates: [{ item: 1, title: 'dropped' }] });
    expect((withExtra.candidates as readonly Candidate[])[0]).toEqual({ item: 1 });
    expect(validateScoreRequest({ query: { id: 0 }, candidates: [] }).candidates).toEqual([]);
  });

  test('every field is checked, messages name the path, the expectation and the value', () => {
    const c = (cands: unknown[]) => msg({ query: { terms: [1] }, candidates: cands });
    const ITEM = 'expected an item id (a non-negative integer or a non-empty string)';
    expect(c([{ item: 1 }, { item: 2 }, { item: 3 }, { item: -1 }])).toBe(`candidates[3].item: ${ITEM}, got -1`);
    expect(c([{ item: 1.5 }])).toBe(`candidates[0].item: ${ITEM}, got 1.5`);
    expect(c([{ item: '' }])).toBe(`candidates[0].item: ${ITEM}, got ""`);
    expect(c([{ item: 7n }])).toBe(`candidates[0].item: ${ITEM}, got 7n (a bigint)`);
    expect(c([{ item: 2 ** 53 }])).toBe(`candidates[0].item: ${ITEM} (integers up to 2^53 - 1), got 9007199254740992`);
    expect(c([{}])).toBe(`candidates[0].item: ${ITEM}, got undefined`);
    expect(c([null])).toBe('candidates[0]: expected an object, got null');
    expect(c([{ item: 1, features: { stats: { ctr: NaN } } }])).toBe('candidates[0].features.stats.ctr: expected a finite number, got NaN');
    expect(c([{ item: 1, features: { stats: 3 } }])).toBe('candidates[0].features.stats: expected an object, got 3');
    expect(c([{ item: 1, features: { stats: { v: [1, 'a'] } } }])).toMatch(/^candidates\[0\]\.features\.stats\.v\[1\]: expected a finite number .*got "a"$/);
    expect(c([{ item: 1, features: { stats: { v: ['a', 2] } } }])).toMatch(/^candidates\[0\]\.features\.stats\.v\[1\]: expected a string .*got 2$/);
    expect(c([{ item: 1, features: { stats: { v: { x: 1 } } } }])).toBe('candidates[0].features.stats.v: expected a number, string, array of numbers, array of strings or null, got an object');
    expect(c([{ item: 1, features: { stats: { v: true } } }])).toMatch(/stats\.v: expected a number, .*got true/);
    expect(msg({ query: { terms: [1] }, candidates: 'abc' })).toBe('candidates: expected an array of candidates, got "abc"');
    expect(msg({ query: { terms: [1] } })).toBe('candidates: expected an array of candidates, got undefined');
    expect(msg({ candidates: [] })).toBe('query: expected an object, got undefined');
    expect(msg({ query: {}, candidates: [] })).toBe('query: expected at least one of terms (non-empty), text or id, got none');
    expect(msg({ query: { terms: [] }, candidates: [] })).toMatch(/^query: expected at least one of/);
    expect(msg({ query: { terms: [1, -2] }, candidates: [] })).toBe('query.terms[1]: expected a non-negative integer, got -2');
    expect(msg({ query: { text: 5 }, candidates: [] })).toBe('query.text: expected a string, got 5');
    expect(msg({ query: { id: 1 }, candidates: [], user: '' })).toBe('user: expected a non-empty string or a safe integer user key, got ""');
    expect(msg({ query: { id: 1 }, candidates: [], user: 1.5 })).toMatch(/^user: expected .* got 1.5$/);
    expect(msg({ query: { id: 1 }, candidates: [], user: {} })).toMatch(/^user: expected .* got an object$/);
    expect(msg({ query: { id: 1 }, candidates: [], history: {} })).toBe('history: expected an array of events, got an object');
    expect(msg({ query: { id: 1 }, candidates: [], history: [{ query: { id: 1 }, item: 2 }, { item: 3 }] })).toBe('history[1].query: expected an object, got undefined');
    expect(msg({ query: { id: 1 }, candidates: [], history: [{ query: { id: 1 }, item: 2, ts: Infinity }] })).toBe('history[0].ts: expected a finite number, got Infinity');
    expect(msg({ query: { id: 1 }, candidates: [], history: [{ query: { id: 1 }, item: 2, action: -1 }] })).toBe('history[0].action: expected a non-negative integer, got -1');
    expect(msg({ query: { id: 1 }, candidates: [], candidate: [] })).toBe('request.candidate: unknown field (expected user, history, query, candidates)');
    expect(msg(null)).toBe('request: expected an object, got null');
    expect(msg([1])).toBe('request: expected an object, got an array of length 1');
  });

  test('limits are enforced and configurable', () => {
    const lim = resolveLimits({ maxCandidates: 3, maxHistory: 2, maxQueryTerms: 2, maxTextLength: 5, maxFeatureGroups: 1, maxFeaturesPerGroup: 1, maxFeatureArrayLength: 2 });
    const q = { id: 1 };
    expect(msg({ query: q, candidates: [{ item: 1 }, { item: 1 }, { item: 1 }, { item: 1 }] }, lim)).toBe('candidates: at most 3 candidates allowed (limit), got 4');
    expect(msg({ query: q, candidates: [], history: [{ query: q, item: 1 }, { query: q, item: 1 }, { query: q, item: 1 }] }, lim)).toBe('history: at most 2 events allowed (limit), got 3');
    expect(msg({ query: { terms: [1, 2, 3] }, candidates: [] }, lim)).toBe('query.terms: at most 2 term ids allowed (limit), got 3');
    expect(msg({ query: { text: 'abcdef' }, candidates: [] }, lim)).toBe('query.text: expected at most 5 characters (limit), got 6');
    expect(msg({ query: q, candidates: [{ item: 'abcdef' }] }, lim)).toBe('candidates[0].item: expected at most 5 characters (limit), got 6');
    expect(msg({ query: q, candidates: [], history: [{ query: q, item: 'abcdef' }] }, lim)).toBe('history[0].item: expected at most 5 characters (limit), got 6');
    expect(msg({ query: q, candidates: [{ item: 1, features: { a: {}, b: {} } }] }, lim)).toBe('candidates[0].features: at most 1 feature groups allowed (limit), got 2');
    expect(msg({ query: q, candidates: [{ item: 1, features: { a: { x: 1, y: 2 } } }] }, lim)).toBe('candidates[0].features.a: at most 1 features per group allowed (limit), got 2');
    expect(msg({ query: q, candidates: [{ item: 1, features: { a: { x: [1, 2, 3] } } }] }, lim)).toBe('candidates[0].features.a.x: at most 2 elements allowed (limit), got 3');
    expect(errorOf(() => resolveLimits({ maxCandidates: 0 }))).toBe('limits.maxCandidates: expected a positive integer, got 0');
    expect(errorOf(() => resolveLimits({ maxCandidatez: 3 } as never))).toMatch(/^limits.maxCandidatez: unknown limit \(expected one of maxCandidates, /);
    expect(resolveLimits(undefined)).toEqual(DEFAULT_LIMITS);
  });
});

describe('packed requests (what crosses to the worker)', () => {
  test('columnar candidates: validated, copied (the caller keeps its arrays), same packing as objects', () => {
    const items = Int32Array.of(5, 6, 7);
    const columns = [{ group: 'stats', feature: 'ctr' }, { group: 'ctx', feature: 'hour' }];
    const values = Float32Array.of(0.5, 1, NaN, 2, 0.25, NaN);
    const p = packScoreRequest({ query: { id: 1 }, candidates: { items, columns, values } }).candidates;
    expect(Array.from(p.items)).toEqual([5, 6, 7]);
    expect(p.columns).toEqual(columns);
    expect(Array.from(p.values)).toEqual([0.5, 1, NaN, 2, 0.25, NaN]);
    expect(p.items).not.toBe(items);
    expect(p.values).not.toBe(values);
    const objects = packScoreRequest({ query: { id: 1 }, candidates: [
      { item: 5, features: { stats: { ctr: 0.5 }, ctx: { hour: 1 } } },
      { item: 6, features: { ctx: { hour: 2 } } },
      { item: 7, features: { stats: { ctr: 0.25 } } },
    ] }).candidates;
    expect(new CandidateBatch(p).featureMatrix(objects.columns)).toEqual(new CandidateBatch(objects).featureMatrix(objects.columns));
    expect(validateScoreRequest({ query: { id: 1 }, candidates: { items, columns, values } }).candidates).toEqual({ items, columns, values });
    const bad = (c: unknown): string => errorOf(() => packScoreRequest({ query: { id: 1 }, candidates: c }));
    expect(bad({ items, columns, values: Float32Array.of(1) })).toMatch(/candidates.values: expected 6 values \(3 candidates × 2 columns\), got 1/);
    expect(bad({ items, columns, values: Array.from(values) })).toMatch(/candidates.values: expected a Float32Array of feature values, got an array of length 6/);
    expect(bad({ items: Int32Array.of(1, -2, 3), columns, values })).toMatch(/candidates.items\[1\]: expected a non-negative integer, got -2/);
    expect(bad({ items, columns: [columns[0], columns[0]], values })).toMatch(/candidates.columns\[1\]: duplicate column stats.ctr/);
    expect(bad({ items, columns: [{ group: 'stats' }, columns[1]], values })).toMatch(/candidates.columns\[0\].feature: expected a string/);
    expect(bad({ items, columns, values: Float32Array.of(0.5, Infinity, 0, 0, 0, 0) })).toMatch(/candidates.values\[1\] \(candidate 0, ctx.hour\): expected a finite number or NaN \(missing\), got Infinity/);
    expect(bad({ items, columns, values, extra: 1 })).toMatch(/candidates.extra: unknown field \(expected items, columns, values\)/);
    const limits = resolveLimits({ maxCandidates: 2 });
    expect(errorOf(() => packScoreRequest({ query: { id: 1 }, candidates: { items, columns, values } }, limits))).toMatch(/candidates.items: at most 2 candidates allowed \(limit\), got 3/);
    // Item ids as an array: int32 ids pack as they are; strings and integers past 2^31 - 1 travel in
    // rawItems (-1 in items), as in the object form — and an all-int32 array carries no rawItems.
    const mixed = packScoreRequest({ query: { id: 1 }, candidates: { items: [5, 'sku-6', 2 ** 40], columns, values } }).candidates;
    expect(Array.from(mixed.items)).toEqual([5, -1, -1]);
    expect(mixed.rawItems).toEqual([5, 'sku-6', 2 ** 40]);
    expect(new CandidateBatch(mixed).featureMatrix(objects.columns)).toEqual(new CandidateBatch(objects).featureMatrix(objects.columns));
    expect(new CandidateBatch(mixed).item(1)).toBe('sku-6');
    const plain = packScoreRequest({ query: { id: 1 }, candidates: { items: [5, 6, 7], columns, values } }).candidates;
    expect(Array.from(plain.items)).toEqual([5, 6, 7]);
    expect(plain.rawItems).toBeUndefined();
    const objectsMixed = packScoreRequest({ query: { id: 1 }, candidates: [
      { item: 5, features: {} }, { item: 'sku-6', features: {} }, { item: 2 ** 40, features: {} },
    ] }).candidates;
    expect(objectsMixed.rawItems).toEqual(mixed.rawItems);
    expect(validateScoreRequest({ query: { id: 1 }, candidates: { items: [5, 'sku-6', 2 ** 40], columns, values } }).candidates).toEqual({ items: [5, 'sku-6', 2 ** 40], columns, values });
    expect(bad({ items: [5, '', 7], columns, values })).toMatch(/candidates.items\[1\]: expected an item id \(a non-negative integer or a non-empty string\), got ""/);
    expect(bad({ items: [5, -1, 7], columns, values })).toMatch(/candidates.items\[1\]: expected an item id \(a non-negative integer or a non-empty string\), got -1/);
    expect(bad({ items: [5, 2 ** 53, 7], columns, values })).toMatch(/candidates.items\[1\]: expected an item id .*integers up to 2\^53 - 1/);
    expect(bad({ items: [5, null, 7], columns, values })).toMatch(/candidates.items\[1\]: expected an item id/);
    expect(bad({ items: 'abc', columns, values })).toMatch(/candidates.items: expected an Int32Array of item ids, or an array of item ids \(non-negative integers or non-empty strings\), got "abc"/);
    expect(bad({ items: Float32Array.of(5, 6, 7), columns, values })).toMatch(/candidates.items: expected an Int32Array of item ids, or an array of item ids/);
  });

  test('candidates: dense NaN-padded numeric matrix, extras, toArray() round trip', () => {
    const cands = [
      { item: 5, features: { stats: { ctr: 0.5, views: 10 }, text: { title: 'red', tags: ['a', 'b'] } } },
      { item: 6 },
      { item: 7, features: { stats: { views: 3, gone: null }, ctx: { hour: 4, emb: [1, 2] } } },
    ];
    const p = packScoreRequest({ query: { id: 1 }, candidates: cands }).candidates;
    const b = new CandidateBatch(p);
    expect(b.length).toBe(3);
    expect(Array.from(b.items)).toEqual([5, 6, 7]);
    expect(b.columns).toEqual([{ group: 'stats', feature: 'ctr' }, { group: 'stats', feature: 'views' }, { group: 'ctx', feature: 'hour' }]);
    expect(Array.from(b.values)).toEqual([0.5, 10, NaN, NaN, NaN, NaN, NaN, 3, 4]);
    expect(b.column('stats', 'views')).toBe(1);
    expect(b.column('stats', 'nope')).toBe(-1);
    expect(b.value(2, b.column('ctx', 'hour'))).toBe(4);
    expect(b.extras).toEqual([
      { row: 0, group: 'text', feature: 'title', value: 'red' },
      { row: 0, group: 'text', feature: 'tags', value: ['a', 'b'] },
      { row: 2, group: 'ctx', feature: 'emb', value: [1, 2] },
    ]);
    // objects again (null features are "absent")
    expect(b.toArray()).toEqual([
      { item: 5, features: { stats: { ctr: 0.5, views: 10 }, text: { title: 'red', tags: ['a', 'b'] } } },
      { item: 6 },
      { item: 7, features: { stats: { views: 3 }, ctx: { hour: 4, emb: [1, 2] } } },
    ]);
    // in a model's column order, with a presence mask
    const m = b.featureMatrix([{ group: 'ctx', feature: 'hour' }, { group: 'stats', feature: 'views' }, { group: 'none', feature: 'x' }], -1);
    expect(Array.from(m.values)).toEqual([-1, 10, -1, -1, -1, -1, 4, 3, -1]);
    expect(Array.from(m.mask)).toEqual([0, 1, 0, 0, 0, 0, 1, 1, 0]);
    expect(Array.from(b.featureMatrix([{ group: 'stats', feature: 'ctr' }]).values)).toEqual([0.5, 0, 0]);
    const empty = new CandidateBatch(packScoreRequest({ query: { id: 1 }, candidates: [] }).candidates);
    expect(empty.length).toBe(0);
    expect(empty.toArray()).toEqual([]);
  });

  test('random histories survive packing exactly; random candidates up to float32 rounding', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const history = Array.from({ length: 200 }, (_, t) => {
      const q: Record<string, unknown> = {};
      const k = rng.int(4);
      if (k !== 1) q.terms = Array.from({ length: rng.int(5) + (k === 0 ? 1 : 0) }, () => rng.int(1 << 30));
      if (k === 1 || rng.int(3) === 0) q.text = `t${rng.int(1000)}`;
      if (k !== 0 || rng.int(2) === 0) q.id = rng.int(1 << 30);
      const e: Record<string, unknown> = { query: q, item: rng.int(1 << 30) };
      if (rng.int(2)) e.ts = rng.normal() * 1e9;
      if (rng.int(2)) e.action = rng.int(5);
      return e;
    });
    const req = { query: { id: 1 }, candidates: [], history };
    const copy = validateScoreRequest(req);
    const packed = packScoreRequest(req);
    expect(unpackHistory(packed.history!)).toEqual(copy.history);
    const cands = Array.from({ length: 300 }, (_, i) => {
      const f: Record<string, Record<string, unknown>> = {};
      // Groups and features in varying sets and orders (the packer matches each candidate against the
      // previous one's layout before falling back to its column maps).
      const groups = rng.int(2) ? ['a', 'b', 'c'] : ['c', 'a', 'b'];
      for (const g of groups) {
        if (!rng.int(2)) continue;
        const x = Math.fround(rng.normal());
        const y = `y${rng.int(3)}`;
        const v = rng.int(100);
        f[g] = rng.int(2) ? { x, [y]: v } : { [y]: v, x };
      }
      return rng.int(4) === 0 ? { item: i } : { item: i, features: f };
    });
    const c2 = { query: { id: 1 }, candidates: cands };
    // packed form has no notion of empty feature objects / null values: they are simply absent
    const norm = (cs: readonly Candidate[]) =>
      cs.map((c) => {
        const groups = Object.entries(c.features ?? {}).filter(([, g]) => Object.values(g).some((v) => v !== null));
        return groups.length ? { item: c.item, features: Object.fromEntries(groups) } : { item: c.item };
      });
    expect(new CandidateBatch(packScoreRequest(c2).candidates).toArray()).toEqual(norm(validateScoreRequest(c2).candidates as readonly Candidate[]));
  });

  test('string and large integer item ids travel beside the int32 ids (rawItems), exactly as given', () => {
    const q = { id: 1 };
    const ids = [5, 'sku-9', 2 ** 31, 0, Number.MAX_SAFE_INTEGER, '7'];
    // 40 one-shape candidates with a string id at 20: the compiled reader stops there, the generic packer takes over.
    for (const n of [ids.length, 40]) {
      const cands = Array.from({ length: n }, (_, i) => ({ item: n === 40 ? (i === 20 ? 'x20' : i) : ids[i], features: { g: { v: i } } }));
      const p = packScoreRequest({ query: q, candidates: cands }).candidates;
      const b = new CandidateBatch(p);
      expect(Array.from({ length: n }, (_, i) => b.item(i))).toEqual(cands.map((c) => c.item));
      expect(Array.from(p.items)).toEqual(cands.map((c) => (typeof c.item === 'number' && c.item < 2 ** 31 ? c.item : -1)));
      expect(b.toArray()).toEqual(cands);
      expect(b.toArray()).toEqual(validateScoreRequest({ query: q, candidates: cands }).candidates);
    }
    // All int32: no rawItems (the common case carries nothing extra).
    expect(packScoreRequest({ query: q, candidates: [{ item: 3 }] }).candidates.rawItems).toBeUndefined();
    const history = ids.map((item, t) => ({ query: { id: t }, item }));
    const h = packScoreRequest({ query: q, candidates: [], history }).history!;
    expect(h.rawItems).toEqual(ids);
    expect(unpackHistory(h)).toEqual(validateScoreRequest({ query: q, candidates: [], history }).history);
    expect(packScoreRequest({ query: q, candidates: [], history: [{ query: q, item: 4 }] }).history!.rawItems).toBeUndefined();
  });

  test('an invalid element deep in a large request is reported by path', () => {
    const cands = Array.from({ length: 5000 }, (_, i) => ({ item: i, features: { g: { v: i } } }));
    (cands[4321].features.g as Record<string, unknown>).v = 'x';
    (cands[4321].features.g as Record<string, unknown>).w = [1, 'a'];
    expect(errorOf(() => packScoreRequest({ query: { id: 1 }, candidates: cands }))).toMatch(/^candidates\[4321\]\.features\.g\.w\[1\]: expected a finite number/);
  });
});

describe('one-shape candidate lists (compiled readers)', () => {
  // Names a generated reader must embed as inert literals, and keys V8 orders or treats specially.
  const awkward = ['a"b', "it's", 'back\\slash', 'line\nbreak', '__proto__', 'constructor', '0', '12', '${x}', '\u2028', '', 'ok'];
  const shapeFor = (rng: Random) => {
    const names = [...awkward].sort(() => rng.uniform() - 0.5);
    const groups: { name: string; features: string[] }[] = [];
    for (let g = 0; g < 1 + rng.int(4); g++) groups.push({ name: names[g], features: names.slice(4, 5 + rng.int(6)).sort(() => rng.uniform() - 0.5) });
    return groups;
  };
  const make = (rng: Random, groups: { name: string; features: string[] }[], n: number) =>
    Array.from({ length: n }, () => {
      // JSON.parse: '__proto__' becomes an own key, as in a request body.
      const f = JSON.parse(JSON.stringify(Object.fromEntries(groups.map((g) => [g.name, Object.fromEntries(g.features.map((k) => [k, 0]))]))));
      for (const g of groups) for (const k of g.features) f[g.name][k] = rng.normal() * 10;
      return { item: rng.int(1 << 30), features: f } as { item: unknown; features: Record<string, Record<string, unknown>> };
    });
  // Extras in (row, column) order: within a candidate the reader adds them in the shape's order and
  // the generic packer in the candidate's key order (the same set either way: 'keys in another order').
  const canonical = (p: PackedCandidates): PackedCandidates => {
    const col = new Map(p.columns.map((c, i) => [`${c.group}\u0000${c.feature}`, i]));
    const at = (e: FeatureExtra) => col.get(`${e.group}\u0000${e.feature}`) ?? -1;
    return { ...p, extras: [...p.extras].sort((a, b) => a.row - b.row || at(a) - at(b)) };
  };
  const packs = (cands: readonly unknown[], exact: ExactFeatures | null = null) => {
    const fast = (() => { try { return canonical(packScoreRequest({ query: { id: 1 }, candidates: cands }, DEFAULT_LIMITS, exact).candidates); } catch (e) { return (e as Error).message; } })();
    const slow = (() => { try { return canonical(packCandidateList(cands, 'candidates', DEFAULT_LIMITS, exact)); } catch (e) { return (e as Error).message; } })();
    return { fast, slow };
  };

  test('pack exactly as the generic packer, for odd names and for every way a later candidate differs', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    // Same keys and numbers, but not plain objects: the generic packer refuses them, so must the reader.
    class Group {}
    type Cand = { item: unknown; features: Record<string, Record<string, unknown>> };
    const edits: [string, (c: Cand, g: string, k: string) => unknown][] = [
      ['extra feature', (c, g) => (c.features[g].extra = 1)],
      ['missing feature', (c, g, k) => delete c.features[g][k]],
      ['extra group', (c) => (c.features.zz = { v: 1 })],
      ['missing group', (c, g) => delete c.features[g]],
      ['null value', (c, g, k) => (c.features[g][k] = null)],
      ['string value', (c, g, k) => (c.features[g][k] = 'red')],
      ['NaN', (c, g, k) => (c.features[g][k] = NaN)],
      ['Infinity', (c, g, k) => (c.features[g][k] = -Infinity)],
      ['bad item', (c) => (c.item = -1)],
      ['fractional item', (c) => (c.item = 1.5)],
      ['class instance group', (c, g) => (c.features[g] = Object.assign(new Group(), c.features[g]))],
      ['array group', (c, g) => (c.features[g] = Object.assign([], c.features[g]))],
      ['class instance features', (c) => (c.features = Object.assign(new Group(), c.features))],
      ['class instance candidate', (c) => Object.assign(new Group(), c)],
      ['null-prototype group', (c, g) => (c.features[g] = Object.assign(Object.create(null), c.features[g]))],
      ['keys in another order', (c, g) => (c.features[g] = Object.fromEntries(Object.entries(c.features[g]).reverse()))],
      ['no features', (c) => delete (c as { features?: unknown }).features],
    ];
    for (let trial = 0; trial < 6; trial++) {
      const groups = shapeFor(rng);
      const cands = make(rng, groups, 16 + rng.int(300));
      // Some features exact (every other trial), with values float32 keeps (small integers) and
      // changes (large integers, fractions) in them.
      const exactCols = trial % 2 === 0 ? [] : groups.flatMap((g) => g.features.filter(() => rng.uniform() < 0.5).map((f) => ({ group: g.name, feature: f })));
      for (const c of cands) for (const { group, feature } of exactCols) c.features[group][feature] = [3, 2 ** 24 + 1 + rng.int(1000), rng.normal()][rng.int(3)];
      const exact = exactFeatureSet(exactCols);
      const same = packs(cands, exact);
      expect(typeof same.fast).toBe('object'); // packed, not an error
      expect(same.fast).toEqual(same.slow);
      for (const [what, edit] of edits) {
        const copy = cands.map((c) => ({ item: c.item, features: Object.fromEntries(Object.entries(c.features).map(([g, v]) => [g, { ...v }])) }));
        const j = 1 + rng.int(copy.length - 1);
        const g = groups[rng.int(groups.length)];
        const replaced = edit(copy[j], g.name, g.features[rng.int(g.features.length)]);
        if (replaced instanceof Group) copy[j] = replaced as Cand;
        const r = packs(copy, exact);
        if (r.fast !== r.slow) expect([what, seed, r.fast]).toEqual([what, seed, r.slow]);
      }
    }
  });

  test('readers are compiled once per shape, bounded, and code generation turned off only turns them off', () => {
    const readers = new ShapeReaders(2 ** 31 - 1);
    const c = (g: string) => ({ item: 1, features: { [g]: { x: 1 } } });
    const a = readers.shapeOf(c('a'), 64, 1024);
    expect(a?.columns).toEqual([{ group: 'a', feature: 'x' }]);
    expect(readers.shapeOf(c('a'), 64, 1024)?.read).toBe(a?.read);
    const items = new Int32Array(2);
    const values = new Float32Array(2);
    const extras: FeatureExtra[] = [];
    expect(a?.read([c('a'), { item: 7, features: { a: { x: 2.5 } } }], items, values, extras)).toBe(2);
    expect([...items, ...values]).toEqual([1, 7, 1, 2.5]);
    expect(a?.read([c('a'), { item: 7, features: { a: { x: 2.5, y: 1 } } }], items, values, extras)).toBe(1);
    expect(extras).toEqual([]);
    // Not one shape: strings, empty groups, limits → no reader.
    expect(readers.shapeOf({ item: 1, features: { a: { x: 's' } } }, 64, 1024)).toBeNull();
    expect(readers.shapeOf({ item: 1, features: { a: {} } }, 64, 1024)).toBeNull();
    expect(readers.shapeOf({ item: 1, features: { a: { x: 1, y: 2 } } }, 64, 1)).toBeNull();
    for (let i = 0; i < 40; i++) readers.shapeOf(c(`g${i}`), 64, 1024);
    expect(readers.shapeOf(c('a'), 64, 1024)?.read).not.toBe(a?.read); // evicted, recompiled
    const original = globalThis.Function;
    try {
      globalThis.Function = function () {
        throw new EvalError('Code generation from strings disallowed for this context');
      } as unknown as FunctionConstructor;
      expect(new ShapeReaders(10).shapeOf(c('b'), 64, 1024)).toBeNull();
      const cands = Array.from({ length: 40 }, (_, i) => ({ item: i, features: { b: { x: i / 3 } } }));
      expect(packScoreRequest({ query: { id: 1 }, candidates: cands }).candidates).toEqual(packCandidateList(cands, 'candidates', DEFAULT_LIMITS));
    } finally {
      globalThis.Function = original;
    }
  });
});

describe('exact features (a backend\'s categorical ids sent as numbers)', () => {
  test('a value float32 would change also travels exact in extras, on the compiled and the generic path; others do not', () => {
    const big = 2 ** 24 + 1; // float32: 2^24, the neighbouring id
    const vals = [big, 2 ** 24, 0.1, 7, 2.5];
    const cands = (n: number) => Array.from({ length: n }, (_, i) => ({ item: i, features: { shop: { id: vals[i % vals.length], score: big } } }));
    const exact = exactFeatureSet([{ group: 'shop', feature: 'id' }]);
    for (const n of [40, 5]) {
      // 40 candidates: the compiled reader; 5: below its minimum, the generic packer.
      const p = packScoreRequest({ query: { id: 1 }, candidates: cands(n) }, DEFAULT_LIMITS, exact).candidates;
      expect(p.columns).toEqual([{ group: 'shop', feature: 'id' }, { group: 'shop', feature: 'score' }]);
      for (let i = 0; i < n; i++) expect(p.values[i * 2]).toBe(Math.fround(vals[i % vals.length]));
      const want = Array.from({ length: n }, (_, i) => i)
        .filter((i) => Math.fround(vals[i % vals.length]) !== vals[i % vals.length])
        .map((row) => ({ row, group: 'shop', feature: 'id', value: vals[row % vals.length] }));
      expect(want.length).toBeGreaterThan(0);
      expect(p.extras).toEqual(want); // 'score' is not exact: float32 only
      // Without exact features nothing is added (the float32 matrix only), and the objects rebuilt
      // from the batch carry the exact id where there is one.
      expect(packScoreRequest({ query: { id: 1 }, candidates: cands(n) }).candidates.extras).toEqual([]);
      expect(new CandidateBatch(p).toArray()[0].features).toEqual({ shop: { id: big, score: Math.fround(big) } });
    }
    // A malformed backend declaration is refused by name.
    expect(() => exactFeaturesOf({ exactFeatures: [{ group: 'g' }] } as unknown as ScoringBackend)).toThrow(/backend\.exactFeatures: expected an array of \{ group, feature \} string pairs/);
    expect(exactFeaturesOf({} as ScoringBackend)).toEqual([]);
  });
});

describe('ServingCore (the worker logic, in-process)', () => {
  // A stub backend whose state records which encode path ran: [events seen, 1 if encodePacked].
  function stub(withPacked: boolean): { backend: ScoringBackend; calls: string[] } {
    const calls: string[] = [];
    const backend: ScoringBackend = {
      stateSize: 2,
      emptyState: () => new Float32Array(2),
      encode: (h) => {
        calls.push(`encode ${h.map((e) => `${e.item}:${(e.query.terms ?? []).join('+')}`).join(',')}`);
        return Float32Array.of(h.length, 0);
      },
      step: (s) => s.slice(),
      scoreBatch: (reqs) => reqs.map((r) => new Float32Array(r.candidates.length).fill(r.state[0] * 10 + r.state[1])),
      dispose: () => undefined,
    };
    if (withPacked) {
      backend.encodePacked = (h) => {
        calls.push(`packed ${Array.from(h.items).join(',')}`);
        return Float32Array.of(h.items.length, 1);
      };
    }
    return { backend, calls };
  }

  test('a cold score uses encodePacked when the backend has it, else encode() of the unpacked events', () => {
    const history = [{ query: { terms: [1, 2] }, item: 5 }, { query: { id: 4 }, item: 7 }];
    const req = packScoreRequest({ history, query: { terms: [3] }, candidates: [{ item: 1 }, { item: 2 }] }, DEFAULT_LIMITS);
    for (const withPacked of [true, false]) {
      const { backend, calls } = stub(withPacked);
      const core = new ServingCore(backend, 1 << 20, 'empty');
      const [r] = core.run([{ kind: 'score', user: 'u', history: req.history, query: req.query, candidates: req.candidates }]);
      expect(r).toEqual({ ok: true, value: Float32Array.of(20 + (withPacked ? 1 : 0), 20 + (withPacked ? 1 : 0)) });
      expect(calls).toEqual([withPacked ? 'packed 5,7' : 'encode 5:1+2,7:']);
      expect(core.cache.get('u')).toEqual(Float32Array.of(2, withPacked ? 1 : 0)); // cached for the user
      expect(core.stats().encodes).toBe(1);
    }
  });

  test('a wrong-sized encodePacked result is an error naming it', () => {
    const { backend } = stub(true);
    backend.encodePacked = () => new Float32Array(3);
    const req = packScoreRequest({ history: [{ query: { id: 1 }, item: 1 }], query: { id: 2 }, candidates: [{ item: 1 }] }, DEFAULT_LIMITS);
    const [r] = new ServingCore(backend, 1 << 20, 'empty').run([{ kind: 'score', history: req.history, query: req.query, candidates: req.candidates }]);
    expect(r).toEqual({ ok: false, message: 'backend.encodePacked returned a Float32Array of 3, expected a Float32Array of stateSize = 2 floats' });
  });
});
