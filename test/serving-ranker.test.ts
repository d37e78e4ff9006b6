// Ranker end to end with the toy backend (test/fixtures/serving/toy-backend.js) in its worker thread:
// scores against a float64 reference, cached path == cold path, batching under concurrency, LRU
// eviction, state export/import, validation before the worker, close(), backend errors, crashes.
import * as path from 'path';
import { Ranker, type RankerOptions } from '../src/qgs/serving';
import type { Candidate, Interaction, Query } from '../src/qgs/serving';
import { resolveBackendModule, defaultBackendCandidates } from '../src/qgs/serving/ranker';
import { ENTRY_OVERHEAD_BYTES } from '../src/qgs/serving/state-cache';
import { Random } from '../src';
import { expectClose, freshSeed } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const toy = require('./fixtures/serving/toy-backend.js') as { unit(id: number, salt: number, j: number): number; fnv(s: string): number };
const TOY = path.join(__dirname, 'fixtures', 'serving', 'toy-backend.js');
const CKPT = path.join(__dirname, 'fixtures', 'serving'); // the toy backend ignores the checkpoint

function load(opts: RankerOptions = {}): Promise<Ranker> {
  return Ranker.load(CKPT, { backendModule: TOY, ...opts });
}

// ---- float64 reference of the toy model (the hash is the toy's; the arithmetic is redone here) ----
const DIM = 8;
function qv(q: Query, dim = DIM): number[] {
  return Array.from({ length: dim }, (_, j) => {
    let x = 0;
    for (const t of q.terms ?? []) x += toy.unit(t, 1, j);
    if (q.id !== undefined) x += toy.unit(q.id, 2, j);
    if (q.text !== undefined) x += toy.unit(toy.fnv(q.text), 3, j);
    return x;
  });
}
const iv = (item: number, dim = DIM) => Array.from({ length: dim }, (_, j) => toy.unit(item, 0, j));
function refState(history: readonly Interaction[], dim = DIM): number[] {
  const s = new Array<number>(dim).fill(0);
  for (const e of history) {
    const a = iv(Number(e.item), dim);
    const b = qv(e.query, dim);
    for (let j = 0; j < dim; j++) s[j] = 0.5 * s[j] + a[j] + 0.5 * b[j] + 0.1 * (e.action ?? 0);
  }
  return s;
}
function refScores(history: readonly Interaction[], query: Query, cands: readonly Candidate[], dim = DIM): number[] {
  const s = refState(history, dim);
  const q = qv(query, dim);
  return cands.map((c) => {
    const v = iv(Number(c.item), dim);
    let x = 0;
    for (let j = 0; j < dim; j++) x += (s[j] + q[j]) * v[j];
    let f = 0;
    for (const g of Object.values(c.features ?? {})) {
      for (const val of Object.values(g)) {
        if (typeof val === 'number') f += val;
        else if (Array.isArray(val)) for (const y of val) if (typeof y === 'number') f += y;
      }
    }
    return x + 0.1 * f;
  });
}

// ---- random requests ----
function randQuery(rng: Random): Query {
  const k = rng.int(3);
  if (k === 0) return { terms: Array.from({ length: 1 + rng.int(4) }, () => rng.int(5000)) };
  if (k === 1) return { text: `q${rng.int(100)} shoes`, id: rng.int(1000) };
  return { id: rng.int(1000), terms: [rng.int(50)] };
}
function randHistory(rng: Random, n: number): Interaction[] {
  return Array.from({ length: n }, (_, t) => {
    const e: Interaction = { query: randQuery(rng), item: rng.int(100_000), ts: 1000 + t };
    if (rng.int(2) === 1) e.action = rng.int(3);
    return e;
  });
}
function randCandidates(rng: Random, n: number): Candidate[] {
  return Array.from({ length: n }, () => {
    const c: Candidate = { item: rng.int(100_000) };
    if (rng.int(2) === 1) c.features = { stats: { ctr: rng.int(100) / 100, views: [rng.int(10), rng.int(10)] }, text: { title: 'x', tags: ['a', 'b'], missing: null } };
    return c;
  });
}

describe('Ranker with the toy backend', () => {
  let r: Ranker;
  beforeAll(async () => {
    r = await load({ cacheBytes: 1 << 20 });
  });
  afterAll(async () => {
    await r.close();
  });

  test('loads: state size and tag from the backend', () => {
    expect(r.stateSize).toBe(DIM);
    expect(r.stateTag).toBe('toy-v1:8:');
    expect(r.backendModule).toBe(TOY);
    expect(r.closed).toBe(false);
    expect(r.error).toBeNull();
  });

  test('scores match a direct float64 computation, in candidate order', async () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const history = randHistory(rng, 30);
    const query = randQuery(rng);
    const candidates = randCandidates(rng, 57);
    const s = await r.score({ history, query, candidates });
    expect(Object.prototype.toString.call(s)).toBe('[object Float32Array]'); // (jest realms: no instanceof)
    expect(s.length).toBe(57);
    expectClose(s, refScores(history, query, candidates), 1e-5, 'score with history', seed);
    // no user, no history: the empty state
    const s0 = await r.score({ query, candidates });
    expectClose(s0, refScores([], query, candidates), 1e-5, 'score with the empty state', seed);
    // no candidates: an empty result
    expect((await r.score({ query, candidates: [] })).length).toBe(0);
    // The columnar form of the same (numeric) features scores identically, and the caller's arrays
    // are not detached by the transfer to the worker.
    const numeric = candidates.map((c) => ({ item: c.item, features: { stats: { ctr: (c.features?.stats as { ctr?: number } | undefined)?.ctr ?? 0.5 } } }));
    const items = Int32Array.from(numeric, (c) => Number(c.item));
    const values = Float32Array.from(numeric, (c) => c.features.stats.ctr);
    const columnar = await r.score({ history, query, candidates: { items, columns: [{ group: 'stats', feature: 'ctr' }], values } });
    expect(Array.from(columnar)).toEqual(Array.from(await r.score({ history, query, candidates: numeric })));
    expect(items.length).toBe(57);
    expect(values.length).toBe(57);
  });

  test('cached path (observe x N, then score) equals the cold path (history re-encode) exactly', async () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const history = randHistory(rng, 40);
    const query = randQuery(rng);
    const candidates = randCandidates(rng, 100);
    for (const e of history.slice(0, 25)) await r.observe('cached-user', e);
    await r.observe('cached-user', history.slice(25)); // several events in one call
    const cached = await r.score({ user: 'cached-user', query, candidates });
    const cold = await r.score({ history, query, candidates });
    expect(Array.from(cached)).toEqual(Array.from(cold));
    expectClose(cached, refScores(history, query, candidates), 1e-5, 'cached', seed);

    // score with history and user (re)encodes and caches; one more observe == cold with one more event
    const h2 = randHistory(rng, 12);
    await r.score({ user: 7, history: h2, query, candidates });
    const next = randHistory(rng, 1)[0];
    await r.observe(7, next);
    const a = await r.score({ user: 7, query, candidates });
    const b = await r.score({ history: [...h2, next], query, candidates });
    expect(Array.from(a)).toEqual(Array.from(b));
    // user keys 7 and '7' are different users
    const c = await r.score({ user: '7', query, candidates });
    expect(Array.from(c)).toEqual(Array.from(await r.score({ query, candidates })));
    expect(await r.forget('7')).toBe(false);
    expect(await r.forget(7)).toBe(true);
  });

  test('calls on the same user are applied in call order inside a batch', async () => {
    const rng = new Random(freshSeed());
    const h = randHistory(rng, 3);
    const query = randQuery(rng);
    const candidates = randCandidates(rng, 5);
    await r.observe('order', h[0]);
    const [before, , after] = await Promise.all([
      r.score({ user: 'order', query, candidates }),
      r.observe('order', [h[1], h[2]]),
      r.score({ user: 'order', query, candidates }),
    ]);
    expect(Array.from(before)).toEqual(Array.from(await r.score({ history: [h[0]], query, candidates })));
    expect(Array.from(after)).toEqual(Array.from(await r.score({ history: h, query, candidates })));
  });

  test('64 concurrent score calls are all answered correctly, in batches', async () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const before = await r.stats();
    const reqs = Array.from({ length: 64 }, (_, i) => ({
      user: `conc-${i}`,
      history: randHistory(rng, 1 + rng.int(20)),
      query: randQuery(rng),
      candidates: randCandidates(rng, 1 + rng.int(50)),
    }));
    const out = await Promise.all(reqs.map((q) => r.score(q)));
    out.forEach((s, i) => expectClose(s, refScores(reqs[i].history, reqs[i].query, reqs[i].candidates), 1e-5, `request ${i}`, seed));
    const after = await r.stats();
    expect(after.scoreRequests - before.scoreRequests).toBe(64);
    expect(after.batchesSent - before.batchesSent).toBeLessThan(64 + 1); // + the stats call
    expect(after.maxBatchSent).toBeGreaterThan(1);
    expect(after.maxScoreBatch).toBeGreaterThan(1); // one scoreBatch call served several requests
    expect(after.cache.entries).toBeGreaterThanOrEqual(64);
    // results are separate arrays even though the toy returns views into one buffer
    expect(new Set(out.map((s) => s.buffer)).size).toBe(64);
  });

  test('a backend that reuses its output buffer across calls keeps working (results are copied)', async () => {
    const rr = await load({ backendOptions: { reuseOutput: 16 } });
    try {
      const q = { id: 3 };
      const cands = Array.from({ length: 16 }, (_, i) => ({ item: i }));
      const ref = refScores([], q, cands);
      for (let k = 0; k < 3; k++) {
        // one request filling the whole buffer (a view over all of it), then two sharing it
        expectClose(await rr.score({ query: q, candidates: cands }), ref, 1e-5, `call ${k}`);
        const [a, b] = await Promise.all([rr.score({ query: q, candidates: cands.slice(0, 10) }), rr.score({ query: q, candidates: cands.slice(10) })]);
        expectClose(a, ref.slice(0, 10), 1e-5, `call ${k}`);
        expectClose(b, ref.slice(10), 1e-5, `call ${k}`);
      }
    } finally {
      await rr.close();
    }
  });

  test('export / import round trip between two Rankers of the same model', async () => {
    const rng = new Random(freshSeed());
    const history = randHistory(rng, 9);
    const query = randQuery(rng);
    const candidates = randCandidates(rng, 20);
    await r.observe('exp', history);
    const bytes = await r.exportState('exp');
    expect(bytes).not.toBeNull();
    expect(bytes!.length).toBe(24 + DIM * 4);
    expect(await r.exportState('nobody')).toBeNull();
    const r2 = await load();
    try {
      await r2.importState('imp', Buffer.from(bytes!)); // e.g. what a Redis client returns
      const a = await r2.score({ user: 'imp', query, candidates });
      const b = await r.score({ user: 'exp', query, candidates });
      expect(Array.from(a)).toEqual(Array.from(b));
      // the imported state keeps evolving like the original
      const e = randHistory(rng, 1)[0];
      await r.observe('exp', e);
      await r2.observe('imp', e);
      expect(Array.from(await r2.exportState('imp') as Uint8Array)).toEqual(Array.from(await r.exportState('exp') as Uint8Array));
    } finally {
      await r2.close();
    }
  });

  test('importState rejects mismatched or corrupted bytes without reaching the worker', async () => {
    await r.observe('hdr', { query: { id: 1 }, item: 2 });
    const good = (await r.exportState('hdr'))!;
    const other = await load({ backendOptions: { dim: 16 } });
    const otherTag = await load({ backendOptions: { tag: 'retrained' } });
    try {
      await expect(other.importState('x', good)).rejects.toThrow(/^Ranker.importState: bytes: state size mismatch: the bytes hold a state of 8 floats, this model's states have 16/);
      await expect(otherTag.importState('x', good)).rejects.toThrow(/^Ranker.importState: bytes: model mismatch/);
      expect(((await otherTag.importState('x', good).catch((e) => e)) as Error & { code: string }).code).toBe('ERR_QGS_INVALID_REQUEST');
      const sent = (await r.stats()).opsSent;
      const v = good.slice();
      v[4] = 9;
      await expect(r.importState('x', v)).rejects.toThrow(/unsupported state format version 9/);
      const c = good.slice();
      c[30] ^= 1;
      await expect(r.importState('x', c)).rejects.toThrow(/checksum mismatch/);
      await expect(r.importState('x', good.subarray(0, 30))).rejects.toThrow(/length mismatch/);
      await expect(r.importState('x', new Uint8Array([1, 2, 3]))).rejects.toThrow(/too short/);
      await expect(r.importState('x', 'nope' as never)).rejects.toThrow(/expected a Uint8Array/);
      expect((await r.stats()).opsSent).toBe(sent + 1); // only the stats call itself
      expect(await r.exportState('x')).toBeNull();
    } finally {
      await other.close();
      await otherTag.close();
    }
  });

  test('malformed requests reject with the path and never reach the worker', async () => {
    const sent = (await r.stats()).opsSent;
    const q = { terms: [1] };
    await expect(r.score({ query: q, candidates: [{ item: 1 }, { item: 2 }, { item: 3 }, { item: -1 }] })).rejects.toThrow(
      'Ranker.score: candidates[3].item: expected an item id (a non-negative integer or a non-empty string), got -1',
    );
    const err = await r.score({ query: q, candidates: [{ item: 1, features: { g: { f: NaN } } }] }).catch((e: Error) => e);
    expect((err as Error).message).toBe('Ranker.score: candidates[0].features.g.f: expected a finite number, got NaN');
    expect((err as Error & { code: string }).code).toBe('ERR_QGS_INVALID_REQUEST');
    expect((err as Error & { path: string }).path).toBe('candidates[0].features.g.f');
    await expect(r.score({ query: {}, candidates: [] } as never)).rejects.toThrow(/query: expected at least one of/);
    await expect(r.score({ query: q, candidates: [], history: [{ item: 1 }] } as never)).rejects.toThrow('Ranker.score: history[0].query: expected an object, got undefined');
    await expect(r.observe('u', { query: q, item: 1.5 })).rejects.toThrow('Ranker.observe: event.item: expected an item id (a non-negative integer or a non-empty string), got 1.5');
    await expect(r.observe('u', [{ query: q, item: 1 }, { query: q, item: -3 }])).rejects.toThrow('Ranker.observe: events[1].item: expected an item id (a non-negative integer or a non-empty string), got -3');
    await expect(r.observe(null as never, { query: q, item: 1 })).rejects.toThrow(/Ranker.observe: user: expected a non-empty string or a safe integer user key, got null/);
    await expect(r.exportState({} as never)).rejects.toThrow(/Ranker.exportState: user: expected/);
    await expect(r.forget(NaN)).rejects.toThrow(/Ranker.forget: user: expected .* got NaN/);
    expect((await r.stats()).opsSent).toBe(sent + 1);
  });

  test('the backend failing on one request rejects that request only; the Ranker stays usable', async () => {
    const rb = await load({ backendOptions: { throwOnItem: 999, throwInEncodeOnItem: 888 } });
    try {
      const q = { id: 1 };
      const [a, b, c] = await Promise.allSettled([
        rb.score({ query: q, candidates: [{ item: 1 }] }),
        rb.score({ query: q, candidates: [{ item: 2 }, { item: 999 }] }),
        rb.score({ query: q, candidates: [{ item: 3 }] }),
      ]);
      expect(a.status).toBe('fulfilled');
      expect(c.status).toBe('fulfilled');
      expect(b.status).toBe('rejected');
      expect(((b as PromiseRejectedResult).reason as Error).message).toBe('Ranker.score: toy backend: cannot score item 999');
      expect(((b as PromiseRejectedResult).reason as Error & { code: string }).code).toBe('ERR_QGS_BACKEND');
      expectClose((c as PromiseFulfilledResult<Float32Array>).value, refScores([], q, [{ item: 3 }]), 1e-5, 'neighbour of a failing request');
      expect((await rb.stats()).batchFallbacks).toBe(1);
      await expect(rb.score({ query: q, history: [{ query: q, item: 888 }], candidates: [{ item: 1 }] })).rejects.toThrow('Ranker.score: toy backend: cannot encode item 888');
      expect((await rb.score({ query: q, candidates: [{ item: 4 }] })).length).toBe(1);
    } finally {
      await rb.close();
    }
  });
});

describe('Ranker: cache bound, missing states, lifecycle', () => {
  test('the user-state cache evicts least recently used users by bytes', async () => {
    const per = DIM * 4 + ENTRY_OVERHEAD_BYTES + 8; // number keys
    const r = await load({ cacheBytes: 3 * per });
    try {
      const ev = (item: number): Interaction => ({ query: { id: 1 }, item });
      for (const u of [1, 2, 3]) await r.observe(u, ev(u));
      let s = await r.stats();
      expect(s.cache).toMatchObject({ entries: 3, bytes: 3 * per, maxBytes: 3 * per, evictions: 0 });
      await r.score({ user: 1, query: { id: 1 }, candidates: [{ item: 1 }] }); // 1 becomes most recent
      await r.observe(4, ev(4)); // evicts 2
      s = await r.stats();
      expect(s.cache).toMatchObject({ entries: 3, bytes: 3 * per, evictions: 1 });
      expect(await r.exportState(2)).toBeNull();
      for (const u of [1, 3, 4]) expect(await r.exportState(u)).not.toBeNull();
      const hits = s.cache.hits;
      const misses = s.cache.misses;
      await r.score({ user: 2, query: { id: 1 }, candidates: [{ item: 1 }] }); // miss -> empty state
      s = await r.stats();
      expect(s.cache.misses).toBe(misses + 1);
      expect(s.cache.hits).toBe(hits);
    } finally {
      await r.close();
    }
  });

  test("onMissingState: 'reject' fails scores and observes for users without a cached state", async () => {
    const r = await load({ onMissingState: 'reject' });
    try {
      const q = { id: 1 };
      await expect(r.score({ user: 'ghost', query: q, candidates: [{ item: 1 }] })).rejects.toThrow(/no cached state for user "ghost" \(never seen, evicted or forgotten\)/);
      await expect(r.observe('ghost', { query: q, item: 1 })).rejects.toThrow(/observe: no cached state for user "ghost"/);
      await r.score({ user: 'ghost', history: [], query: q, candidates: [{ item: 1 }] }); // an empty history creates the user
      await r.observe('ghost', { query: q, item: 1 });
      expect((await r.score({ user: 'ghost', query: q, candidates: [{ item: 1 }] })).length).toBe(1);
    } finally {
      await r.close();
    }
  });

  test('close() rejects pending calls, is idempotent, later calls reject at once', async () => {
    const r = await load({ backendOptions: { slowMs: 30 }, maxBatch: 2 });
    const q = { id: 1 };
    const pending = Array.from({ length: 10 }, (_, i) => r.score({ query: q, candidates: [{ item: i }] }));
    await new Promise((res) => setTimeout(res, 5)); // the first batch is in the worker now
    const closing = r.close();
    expect(r.close()).toBe(closing);
    const settled = await Promise.allSettled(pending);
    await closing;
    expect(r.closed).toBe(true);
    for (const s of settled) {
      expect(s.status).toBe('rejected');
      expect(((s as PromiseRejectedResult).reason as Error).message).toMatch(/^Ranker.score: Ranker closed: the call was still pending when close\(\) was called/);
      expect(((s as PromiseRejectedResult).reason as Error & { code: string }).code).toBe('ERR_QGS_RANKER_CLOSED');
    }
    await expect(r.score({ query: q, candidates: [] })).rejects.toThrow('Ranker.score: the Ranker is closed');
    await expect(r.stats()).rejects.toThrow(/closed/);
  });

  test('close() reports a failing backend.dispose()', async () => {
    const r = await load({ backendOptions: { disposeThrows: true } });
    await expect(r.close()).rejects.toThrow('Ranker.close: backend.dispose() failed: toy backend: dispose failed');
  });

  test('a worker that exits rejects every pending call, reports it, and stays failed', async () => {
    const errors: Error[] = [];
    const r = await load({ backendOptions: { crashOnItem: 666 }, onError: (e) => errors.push(e), maxBatch: 1 });
    const q = { id: 1 };
    const calls = [
      r.score({ query: q, candidates: [{ item: 666 }] }),
      r.score({ query: q, candidates: [{ item: 1 }] }),
      r.observe('u', { query: q, item: 1 }),
    ];
    const settled = await Promise.allSettled(calls);
    for (const s of settled) {
      expect(s.status).toBe('rejected');
      expect(((s as PromiseRejectedResult).reason as Error).message).toMatch(/the serving worker exited unexpectedly \(exit code 3\)/);
      expect(((s as PromiseRejectedResult).reason as Error & { code: string }).code).toBe('ERR_QGS_WORKER_CRASHED');
    }
    expect(errors.length).toBe(1);
    expect(r.error?.message).toMatch(/exit code 3/);
    await expect(r.score({ query: q, candidates: [{ item: 1 }] })).rejects.toThrow(/the Ranker is unusable: Ranker: the serving worker exited unexpectedly/);
    await r.close(); // still safe
  });

  test('an uncaught exception in the worker is reported; later calls reject at once', async () => {
    let reported: (e: Error) => void = () => undefined;
    const crashed = new Promise<Error>((res) => (reported = res));
    const r = await load({ backendOptions: { uncaughtOnItem: 5 }, onError: (e) => reported(e) });
    const q = { id: 1 };
    // The toy throws from a setImmediate after answering, i.e. between batches: whatever is pending
    // then rejects (the deterministic in-flight case is the process.exit test above).
    const first = r.score({ query: q, candidates: [{ item: 5 }] });
    const others = [1, 2, 3].map((i) => r.score({ query: q, candidates: [{ item: i }] }));
    await first.catch(() => undefined);
    const err = await crashed;
    expect(err.message).toBe('Ranker: the serving worker crashed: toy backend: uncaught failure');
    for (const s of await Promise.allSettled(others)) {
      if (s.status === 'rejected') expect((s.reason as Error).message).toMatch(/the serving worker crashed: toy backend: uncaught failure/);
    }
    expect(r.error).toBe(err);
    await expect(r.score({ query: q, candidates: [{ item: 1 }] })).rejects.toThrow('Ranker.score: the Ranker is unusable: Ranker: the serving worker crashed: toy backend: uncaught failure');
    await r.close();
  });

  test('a hung worker (batchTimeoutMs) is terminated and every pending call rejects', async () => {
    const errors: Error[] = [];
    const r = await load({ backendOptions: { slowMs: 400 }, batchTimeoutMs: 100, onError: (e) => errors.push(e) });
    const q = { id: 1 };
    const t0 = Date.now();
    const settled = await Promise.allSettled([r.score({ query: q, candidates: [{ item: 1 }] }), r.observe('u', { query: q, item: 1 })]);
    expect(Date.now() - t0).toBeLessThan(390);
    for (const s of settled) {
      expect(s.status).toBe('rejected');
      expect(((s as PromiseRejectedResult).reason as Error).message).toMatch(/did not answer a batch of 2 calls within batchTimeoutMs = 100 ms; it was terminated/);
    }
    expect(errors.length).toBe(1);
    await expect(r.score({ query: q, candidates: [] })).rejects.toThrow(/unusable/);
    await r.close();
    // a generous limit does not fire on normal batches
    const ok = await load({ batchTimeoutMs: 10_000 });
    expect((await ok.score({ query: q, candidates: [{ item: 1 }] })).length).toBe(1);
    await ok.close();
  });

  test('load errors are clear', async () => {
    await expect(load({ backendOptions: { failCreate: true } })).rejects.toThrow(/^Ranker.load: createBackend\(".*"\) failed: toy backend: cannot load checkpoint /);
    await expect(load({ backendOptions: { exitOnCreate: true } })).rejects.toThrow('Ranker.load: the serving worker exited while loading the backend (exit code 7)');
    await expect(load({ backendOptions: { asyncCreate: true } }).then((r) => r.close())).resolves.toBeUndefined();
    await expect(Ranker.load(CKPT, { backendModule: path.join(__dirname, 'no-such-backend.js') })).rejects.toThrow(/^Ranker.load: backendModule: file not found: .*no-such-backend.js/);
    await expect(Ranker.load(CKPT, { backendModule: path.join(__dirname, 'helpers.ts') })).rejects.toThrow(/Ranker.load: (cannot load backend module|backend module .* does not export createBackend)/);
    await expect(Ranker.load(CKPT, { backendModule: 'no-such-package-qgs' })).rejects.toThrow(/cannot resolve module "no-such-package-qgs"/);
    await expect(load({ maxBatch: 0 })).rejects.toThrow('Ranker.load: maxBatch: expected an integer >= 1, got 0');
    await expect(load({ warmup: 'yes' as never })).rejects.toThrow('Ranker.load: warmup: expected a boolean, got string');
    // The worker runs backend.warmup() before reporting ready (a failing one fails the load)...
    await expect(load({ backendOptions: { warmupThrows: true } })).rejects.toThrow(/^Ranker.load: .*toy backend: warmup failed/);
    // ...unless warmup is off.
    await expect(load({ warmup: false, backendOptions: { warmupThrows: true } }).then((r) => r.close())).resolves.toBeUndefined();
    await expect(load({ batchTimeoutMs: -1 })).rejects.toThrow('Ranker.load: batchTimeoutMs: expected an integer >= 0, got -1');
    await expect(load({ cacheBytes: -5 })).rejects.toThrow('Ranker.load: cacheBytes: expected an integer >= 0, got -5');
    await expect(load({ onMissingState: 'maybe' as never })).rejects.toThrow(/onMissingState: expected 'empty' or 'reject'/);
    await expect(load({ limits: { maxCandidates: -1 } })).rejects.toThrow('Ranker.load: limits.maxCandidates: expected a positive integer, got -1');
    await expect(load({ backendOptions: { fn: () => 1 } as never })).rejects.toThrow(/structured-cloneable/);
    await expect(Ranker.load('' as never)).rejects.toThrow(/checkpointDir: expected a non-empty string/);
  });

  test('the default backend module is resolved next to the compiled serving code, or reported missing', () => {
    const c = defaultBackendCandidates();
    expect(c[0]).toBe(path.resolve(__dirname, '..', 'src', 'qgs', 'backend.js'));
    let found: string | null = null;
    let msg = '';
    try {
      found = resolveBackendModule(undefined);
    } catch (e) {
      msg = (e as Error).message;
    }
    if (found === null) expect(msg).toMatch(/no backendModule given and the default QGS backend is missing \(looked for .*backend\.js/);
    else expect(c).toContain(found);
  });

  test('batches respect maxBatch and maxBatchCandidates; maxQueue rejects overload', async () => {
    const r = await load({ maxBatch: 4, maxBatchCandidates: 10, maxQueue: 12 });
    try {
      const q = { id: 1 };
      const six = Array.from({ length: 6 }, (_, i) => ({ item: i }));
      const s0 = await r.stats();
      // 6 requests of 6 candidates: at most one per batch (6 + 6 > 10)
      await Promise.all(Array.from({ length: 6 }, () => r.score({ query: q, candidates: six })));
      const s1 = await r.stats();
      expect(s1.batchesSent - s0.batchesSent - 1).toBe(6);
      // 8 one-candidate requests: batches of at most 4
      await Promise.all(Array.from({ length: 8 }, () => r.score({ query: q, candidates: [{ item: 1 }] })));
      const s2 = await r.stats();
      expect(s2.batchesSent - s1.batchesSent - 1).toBe(2);
      expect(s2.maxBatchSent).toBe(4);
      // a single request larger than maxBatchCandidates still goes (alone)
      expect((await r.score({ query: q, candidates: Array.from({ length: 25 }, (_, i) => ({ item: i })) })).length).toBe(25);
      // more than maxQueue calls waiting: the excess rejects at once
      const calls = Array.from({ length: 20 }, () => r.score({ query: q, candidates: [{ item: 1 }] }));
      const settled = await Promise.allSettled(calls);
      const rejected = settled.filter((x) => x.status === 'rejected') as PromiseRejectedResult[];
      expect(rejected.length).toBe(8);
      expect((rejected[0].reason as Error).message).toBe('Ranker.score: overloaded: 12 calls already queued (maxQueue)');
      expect((rejected[0].reason as Error & { code: string }).code).toBe('ERR_QGS_OVERLOADED');
    } finally {
      await r.close();
    }
  });

  test('request limits from the options apply', async () => {
    const r = await load({ limits: { maxCandidates: 2, maxHistory: 1 } });
    try {
      expect(r.limits.maxCandidates).toBe(2);
      const q = { id: 1 };
      await expect(r.score({ query: q, candidates: [{ item: 1 }, { item: 2 }, { item: 3 }] })).rejects.toThrow('Ranker.score: candidates: at most 2 candidates allowed (limit), got 3');
      await expect(r.observe('u', [{ query: q, item: 1 }, { query: q, item: 2 }])).rejects.toThrow('Ranker.observe: events: at most 1 events allowed (limit), got 2');
    } finally {
      await r.close();
    }
  });
});
