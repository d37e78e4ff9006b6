import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Random, memoryStats, noGrad, ops, scope, tensor } from '../src';
import type { SessionRecord, FeatureSpec } from '../src/data/schema';
import { buildTokens, prepareTimelines, NO_ITEM, NO_QUERY, TERM_OFFSET, ITEM_OFFSET } from '../src/qgs/dataset';
import { prepareSynthetic, runVariant, VARIANTS } from '../src/qgs/experiment';
import { saveCheckpoint, loadCheckpoint } from '../src/qgs/checkpoint';
import { scoreRequest, termIds } from '../src/qgs/scoring';
import { QgsBackend, SERVING_MIN_WEIGHT } from '../src/qgs/backend';
import { CandidateBatch } from '../src/qgs/serving/packed';
import { packHistory, packScoreRequest, DEFAULT_LIMITS } from '../src/qgs/serving/validate';
import type { Interaction } from '../src/qgs/serving/backend';
import { errorOf, freshSeed, relError } from './helpers';
import { RankingPlan } from '../src/qgs/ranking-plan';
import { packBatch } from '../src/qgs/encoder';
import { runCli } from '../src/cli/main';

const spec: FeatureSpec = { groups: [{ name: 'g', kind: 'numeric', features: ['a', 'log_rank'] }] };
function rec(user: number, ts: number, terms: number[], shown: number[], clicks: number[]): SessionRecord {
  return { user, ts, query: { terms }, shown, clicks, features: { g: shown.flatMap((_, i) => [i * 0.5, Math.log(i + 1)]) } };
}

describe('token streams', () => {
  const records = [rec(0, 1, [3], [10, 11, 12], [0, 1, 0]), rec(0, 2, [4, 5], [11, 13], [1, 1]), rec(1, 1, [], [10], [0])];
  const data = prepareTimelines(records, spec, { split: [0, 2, 0] });

  test('timelines, ids and features', () => {
    expect(data.users.map((u) => u.user)).toEqual([0, 1]);
    const r = data.users[0].requests[1];
    expect(Array.from(r.items)).toEqual([11 + ITEM_OFFSET, 13 + ITEM_OFFSET]);
    expect(Array.from(r.terms)).toEqual([4 + TERM_OFFSET, 5 + TERM_OFFSET]);
    expect(r.split).toBe(2);
    expect(data.layout.positionColumn).toBe(1);
    expect(Array.from(data.users[1].requests[0].terms)).toEqual([NO_QUERY]);
  });

  test('qgs: read-out (query, no item) before each request, pair tokens for clicks', () => {
    const tb = buildTokens(data.users, 'qgs', data.maxTerms);
    // user 0: R(q3) P(q3,11) R(q45) P(q45,11) P(q45,13); user 1: R(noq)
    expect(Array.from(tb.items)).toEqual([NO_ITEM, 11 + ITEM_OFFSET, NO_ITEM, 11 + ITEM_OFFSET, 13 + ITEM_OFFSET, NO_ITEM]);
    expect(Array.from(tb.write)).toEqual([0, 1, 0, 1, 1, 0]);
    expect(Array.from(tb.readout)).toEqual([0, 2, 5]);
    expect(Array.from(tb.offsets)).toEqual([0, 5, 6]);
    expect(tb.terms[1 * data.maxTerms]).toBe(3 + TERM_OFFSET);
  });

  test('item-only: no query anywhere; flattened: read-out precedes the query token', () => {
    const io = buildTokens(data.users, 'item-only', data.maxTerms);
    for (let t = 0; t < io.tokens; t++) expect(io.terms[t * data.maxTerms]).toBe(NO_QUERY);
    const fl = buildTokens(data.users, 'flattened', data.maxTerms);
    expect(Array.from(fl.write)).toEqual([0, 1, 1, 0, 1, 1, 1, 0, 1]);
    expect(Array.from(fl.readout)).toEqual([0, 3, 7]);
    expect(fl.terms[0]).toBe(NO_QUERY);
    expect(fl.terms[1 * data.maxTerms]).toBe(3 + TERM_OFFSET);
  });

  test('bad ids are rejected with the record named', () => {
    expect(errorOf(() => prepareTimelines([rec(0, 1, [1], [-3], [0])], spec))).toMatch(/shown\[0\] must be a non-negative integer id/);
  });
});

/**
 * The serving worker's cold path (encodePacked of the packed history) equals encode() of the event
 * objects exactly, for the given history and one with the term edge cases: more terms than maxTerms,
 * an unseen term id, text-only and empty queries. An out-of-catalogue item names the catalogue.
 */
function expectPackedEncodeEqual(be: QgsBackend, events: Interaction[]): void {
  // Serving requires some query content: an empty query becomes a query id alone.
  const history = events.map((e) => (Object.keys(e.query).length > 0 ? e : { ...e, query: { id: 1 } }));
  const edge: Interaction[] = [
    ...history,
    { query: { terms: [1, 2, 3, 4, 5, 6, 7, 8, 9] }, item: 3 },
    { query: { text: 'only text' }, item: 4 },
    { query: { terms: [], id: 3 }, item: 1 },
    { query: { terms: [2 ** 30, 1] }, item: 2 },
  ];
  for (const h of [history, edge, []]) expect(be.encodePacked(packHistory(h, 'history', DEFAULT_LIMITS))).toEqual(be.encode(h));
  expect(errorOf(() => be.encodePacked(packHistory([{ query: { id: 1 }, item: 10 ** 6 }], 'history', DEFAULT_LIMITS)))).toMatch(/outside the model's catalogue/);
  // Serving accepts string ids (for vocabulary models); a synthetic-data model refuses them by name.
  expect(errorOf(() => be.encodePacked(packHistory([{ query: { id: 1 }, item: 'sku-1' }], 'history', DEFAULT_LIMITS)))).toBe(
    'item: expected a non-negative integer item id, got "sku-1"',
  );
}

describe('QGS model end to end (tiny synthetic data)', () => {
  const { data, dataset } = prepareSynthetic({ seed: 3, users: 60, items: 200, topics: 4 });
  let dir = '';
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qgs-test-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('trains (loss falls), is reproducible, and the checkpoint round-trips exactly', () => {
    const before = memoryStats().count;
    const v = VARIANTS[0];
    const a = runVariant(data, v, { epochs: 3, seed: 5, batchTokens: 400 });
    const b = runVariant(data, v, { epochs: 3, seed: 5, batchTokens: 400 });
    const la = a.result.history.map((h) => h.loss);
    expect(la[la.length - 1]).toBeLessThan(la[0]);
    expect(b.result.history.map((h) => h.loss)).toEqual(la);
    expect(Number.isFinite(a.row.gauc)).toBe(true);
    saveCheckpoint(dir, a.result.model, a.result.scaler);
    const { model, scaler } = loadCheckpoint(dir);
    const last = dataset.records[dataset.records.length - 1];
    const req = {
      history: [{ query: { terms: [1, 2] }, item: 3 }],
      query: { terms: [...(last.query?.terms ?? [])] },
      candidates: last.shown.map((item) => ({ item: Number(item), features: { text_match: { bm25: 1.5 } } })),
    };
    const s1 = scoreRequest(a.result.model, a.result.scaler, req);
    const s2 = scoreRequest(model, scaler, req);
    expect(Array.from(s2)).toEqual(Array.from(s1));
    for (const m of [model, a.result.model, b.result.model]) m.dispose();
    expect(memoryStats().count).toBe(before);
  });

  test('corrupted or foreign checkpoints are refused', () => {
    const f = path.join(dir, 'model.safetensors');
    const bytes = fs.readFileSync(f);
    fs.writeFileSync(f, bytes.subarray(0, bytes.length - 10));
    expect(errorOf(() => loadCheckpoint(dir))).toMatch(/safetensors|truncated|length|size/i);
    expect(errorOf(() => loadCheckpoint(path.join(dir, 'nope')))).toMatch(/does not exist/);
  });

  test('termIds: offsets known terms, maps unseen ones to no-query, truncates to maxTerms, names bad entries', () => {
    const { result } = runVariant(data, VARIANTS[0], { epochs: 1, seed: 2, batchTokens: 400 });
    const m = result.model;
    const { maxTerms, termVocab } = m.cfg;
    expect(Array.from(termIds({ terms: [0, 3] }, 'q', m))).toEqual([0 + TERM_OFFSET, 3 + TERM_OFFSET].slice(0, maxTerms));
    expect(Array.from(termIds({ terms: [termVocab] }, 'q', m))).toEqual([NO_QUERY]); // outside the training vocabulary
    expect(Array.from(termIds({ terms: [] }, 'q', m))).toEqual([NO_QUERY]);
    expect(Array.from(termIds(null, 'q', m))).toEqual([NO_QUERY]);
    expect(termIds({ terms: Array.from({ length: maxTerms + 3 }, (_, i) => i) }, 'q', m).length).toBe(maxTerms);
    expect(errorOf(() => termIds({ terms: [1, -1] }, 'history[4].query', m))).toBe('history[4].query.terms[1]: expected a non-negative integer, got -1');
    expect(errorOf(() => termIds({ terms: [1.5] }, 'query', m))).toBe('query.terms[0]: expected a non-negative integer, got 1.5');
    expect(errorOf(() => termIds({ terms: ['3'] } as unknown as { terms: number[] }, 'query', m))).toBe('query.terms[0]: expected a non-negative integer, got "3"');
    expect(errorOf(() => termIds({ terms: 3 } as unknown as { terms: number[] }, 'query', m))).toBe('query.terms: expected an array of term ids, got 3');
    m.dispose();
  });

  test('final states without the recurrence (inference) equal the recurrence\'s final state: jagged, read-out tokens, empty sequences', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const { result } = runVariant(data, VARIANTS[0], { epochs: 1, seed: 2, batchTokens: 400 });
    const m = result.model;
    m.eval();
    // Sequences of 0, 1, 7 and 37 tokens; about a quarter of the tokens are read-outs (write 0).
    const lens = [7, 0, 1, 37];
    const offsets = Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, b) => a + b, 0))]);
    const T = offsets[offsets.length - 1];
    const write = Float32Array.from({ length: T }, () => (rng.uniform() < 0.25 ? 0 : 1));
    const batch = packBatch(offsets, write);
    const terms = Int32Array.from({ length: T * m.cfg.maxTerms }, (_, i) => (i % m.cfg.maxTerms === 0 ? TERM_OFFSET + rng.int(5) : 0));
    const items = Int32Array.from({ length: T }, () => ITEM_OFFSET + rng.int(20));
    scope(() => {
      const x = m.embedTokens(terms, items);
      for (const b of m.encoder.blocks) {
        const viaRecurrence = b.forwardWithState(x, batch, true, true).state!; // outputs wanted: the recurrence runs
        const direct = noGrad(() => b.forwardWithState(x, batch, true, false)).state!;
        expect(direct.shape).toEqual([lens.length, m.cfg.heads, m.cfg.dk, m.cfg.dv]);
        expect(relError(direct.toFloat32Array(), viaRecurrence.toFloat32Array())).toBeLessThan(1e-5);
        const empty = direct.toFloat32Array().subarray(direct.size / lens.length, (2 * direct.size) / lens.length);
        expect(empty.every((v) => v === 0)).toBe(true);
      }
    });
    batch.write.dispose();
    batch.readOnly.dispose();
    m.dispose();
  });

  test.each(['flattened', 'item-only', 'concat-mlp'])('serving backend (%s): cached steps equal the full encode, cached scores equal the cold path', (name) => {
    // Flattened models write two tokens per interaction, item-only models ignore queries, the
    // concat-MLP head runs composed (not the fused HFG kernel).
    const v = VARIANTS.find((x) => x.name === name)!;
    const { result } = runVariant(data, v, { epochs: 1, seed: 2, batchTokens: 400 });
    const be = new QgsBackend(result.model, result.scaler);
    const history = [
      { query: { terms: [1, 2] }, item: 5 },
      { query: { terms: [3] }, item: 7 },
      { query: {}, item: 9 },
    ];
    let st = be.emptyState();
    for (const e of history) st = be.step(st, e);
    expect(relError(st, be.encode(history))).toBeLessThan(1e-5);
    expectPackedEncodeEqual(be, history);
    const items = Int32Array.from([1, 2, 3]);
    const values = Float32Array.from([0.5, 1, 0.2]);
    const cands = new CandidateBatch({ items, columns: [{ group: 'text_match', feature: 'bm25' }], values, extras: [] });
    const [cached] = be.scoreBatch([{ state: st, query: { terms: [2] }, candidates: cands }]);
    const cold = scoreRequest(result.model, result.scaler, {
      history,
      query: { terms: [2] },
      candidates: Array.from(items, (item, i) => ({ item, features: { text_match: { bm25: values[i] } } })),
    });
    expect(relError(cached, cold)).toBeLessThan(1e-4);
    be.dispose();
  });

  test('serving backend: cached steps equal the full encode, batch scores equal the cold path', () => {
    const { result } = runVariant(data, VARIANTS[0], { epochs: 1, seed: 2, batchTokens: 400 });
    const be = new QgsBackend(result.model, result.scaler);
    const history = [
      { query: { terms: [1, 2] }, item: 5 },
      { query: { terms: [3] }, item: 7 },
      { query: { terms: [2, 4] }, item: 9 },
    ];
    let st = be.emptyState();
    for (const e of history) st = be.step(st, e);
    const full = be.encode(history);
    expect(relError(st, full)).toBeLessThan(1e-5);
    expectPackedEncodeEqual(be, history);
    const items = Int32Array.from([1, 2, 3, 4]);
    const values = Float32Array.from([0.5, 1, 0.2, 2, 0.1, 0, 0.9, 3]);
    const cands = new CandidateBatch({ items, columns: [{ group: 'text_match', feature: 'bm25' }, { group: 'item_stats', feature: 'log_impressions' }], values, extras: [] });
    const [cached] = be.scoreBatch([{ state: st, query: { terms: [2] }, candidates: cands }]);
    const cold = scoreRequest(result.model, result.scaler, {
      history,
      query: { terms: [2] },
      candidates: Array.from(items, (item, i) => ({ item, features: { text_match: { bm25: values[2 * i] }, item_stats: { log_impressions: values[2 * i + 1] } } })),
    });
    expect(relError(cached, cold)).toBeLessThan(1e-4);
    // The encoder plan (steps and read-outs as one native call) against the composed step (a
    // backend without the item table has no plan): one user's steps, and a batch of requests with
    // different states and queries, which also equals each request scored alone.
    const composed = new QgsBackend(result.model, result.scaler, undefined, { maxItemTableBytes: 0 });
    let sc = composed.emptyState();
    for (const e of history) sc = composed.step(sc, e);
    expect(relError(st, sc)).toBeLessThan(1e-5);
    expect(relError(be.encode(history), composed.encode(history))).toBeLessThan(1e-5);
    // A history longer than the decays can carry: the plan's cold encode leaves out what weighs
    // below SERVING_MIN_WEIGHT (exactly the events before the horizon), and its states still match
    // the composed encoder's full encode to float32 resolution.
    const long = Array.from({ length: 1500 }, (_, i) => ({ query: { terms: [1 + (i % 4)] }, item: 1 + ((i * 7) % 40) }));
    const g = (be as unknown as { plan: { encoderPlan: ops.LinearHstuEncoderPlan } }).plan.encoderPlan.maxDecay;
    const horizon = Math.floor(Math.log(SERVING_MIN_WEIGHT) / Math.log(g)) + 1;
    expect(horizon).toBeLessThan(long.length);
    const coldLong = be.encode(long);
    expect(coldLong).toEqual(be.encode(long.slice(long.length - horizon)));
    expect(coldLong).not.toEqual(be.encode(long.slice(long.length - horizon + 1)));
    expect(relError(coldLong, composed.encode(long))).toBeLessThan(1e-6);
    const states = [st, be.emptyState(), be.step(be.emptyState(), history[1])];
    const queries = [{ terms: [2] }, { terms: [1, 3] }, { terms: [4] }];
    const reqs = states.map((state, i) => ({ state, query: queries[i], candidates: cands }));
    const batch = be.scoreBatch(reqs);
    const batchComposed = composed.scoreBatch(reqs);
    reqs.forEach((r, i) => {
      expect(relError(batch[i], be.scoreBatch([r])[0])).toBeLessThan(1e-6);
      expect(relError(batch[i], batchComposed[i])).toBeLessThan(1e-4);
    });
    expect(relError(batch[0], batch[2])).toBeGreaterThan(1e-3); // the requests do differ
    // (not disposed: it shares the model with be, which disposes it below)
    const live = memoryStats().count;
    be.warmup(2); // what Ranker.load runs: encodes, steps and a 1,000-candidate score, nothing left behind
    expect(memoryStats().count).toBe(live);
    expect(errorOf(() => be.step(st, { query: {}, item: 10 ** 6 }))).toMatch(/outside the model's catalogue/);
    // A string id (which serving accepts, for models with a vocabulary) is refused by name here.
    const strCands = packScoreRequest({ query: { id: 1 }, candidates: [{ item: 1 }, { item: 'sku-1' }] }).candidates;
    expect(errorOf(() => be.scoreBatch([{ state: st, query: { id: 1 }, candidates: new CandidateBatch(strCands) }]))).toBe(
      'candidates[1].item: expected a non-negative integer item id, got "sku-1"',
    );
    be.dispose();
  });

  // The default head runs fused; 4 heads still fit the fused kernel; 2 layers with mean pooling do not
  // (the plan falls back to the composed head).
  test.each([
    ['default head', {}],
    ['hfgHeads 4', { hfgHeads: 4 }],
    ['hfgLayers 2, mean pooling', { hfgLayers: 2, hfgPooling: 'mean' as const }],
  ])('the serving plan (item table, folded group projections, fused HFG layer) scores like the training graph: %s', (_, overrides) => {
    const { result } = runVariant(data, VARIANTS[0], { epochs: 1, seed: 4, batchTokens: 400 }, overrides);
    const model = result.model;
    const before = memoryStats().count;
    const rng = new Random(freshSeed());
    const N = 45;
    const { dim: D, layout, itemVocab } = model.cfg;
    const items = Int32Array.from({ length: N }, () => 1 + Math.floor(rng.uniform() * (itemVocab - 1)));
    const ctxHost = Float32Array.from({ length: N * D }, () => rng.normal());
    const featHost = Float32Array.from({ length: N * layout.dim }, () => rng.normal());
    // Reference: the training graph (parameters require grad, so every op is the composed one).
    const ref = scope(() => model.rankLogits(tensor(ctxHost, [N, D]), items, tensor(featHost, [N, layout.dim])).toFloat32Array());
    // Candidates of R = 3 requests: context rows [R, D] and each candidate's request index.
    const R = 3;
    const req = Int32Array.from({ length: N }, () => Math.floor(rng.uniform() * R));
    const reqCtx = Float32Array.from({ length: R * D }, () => rng.normal());
    const ctxRows = Float32Array.from({ length: N * D }, (_, i) => reqCtx[req[Math.floor(i / D)] * D + (i % D)]);
    const refReq = scope(() => model.rankLogits(tensor(ctxRows, [N, D]), items, tensor(featHost, [N, layout.dim])).toFloat32Array());
    for (const maxItemTableBytes of [undefined, 0]) {
      const plan = new RankingPlan(model, { maxItemTableBytes });
      expect(plan.itemTable === null).toBe(maxItemTableBytes === 0);
      const got = scope(() => noGrad(() => plan.rankLogits(tensor(ctxHost, [N, D]), items, tensor(featHost, [N, layout.dim])).toFloat32Array()));
      expect(relError(got, ref)).toBeLessThan(1e-5);
      // The whole head as one native call (with the table), or the composed fallback (without).
      const fused = scope(() => noGrad(() => plan.scoreCandidates(tensor(reqCtx, [R, D]), req, items, tensor(featHost, [N, layout.dim])).toFloat32Array()));
      expect(relError(fused, refReq)).toBeLessThan(1e-5);
      // The serving form on plain arrays, where the head is fused and the table exists.
      expect(plan.canScoreInto).toBe(maxItemTableBytes === undefined && !('hfgLayers' in overrides));
      if (plan.canScoreInto) {
        const into = new Float32Array(N);
        plan.scoreInto(into, reqCtx, req, items, featHost);
        expect(Array.from(into)).toEqual(Array.from(fused));
      }
      // Recording gradients (the parameters require them): the composed head, whose logits carry a gradient.
      const withGrad = scope(() => {
        const l = plan.scoreCandidates(tensor(reqCtx, [R, D]), req, items, tensor(featHost, [N, layout.dim]));
        return { requiresGrad: l.requiresGrad, values: l.toFloat32Array() };
      });
      expect(withGrad.requiresGrad).toBe(true);
      expect(relError(withGrad.values, refReq)).toBeLessThan(1e-5);
      expect(errorOf(() => scope(() => noGrad(() => plan.scoreCandidates(tensor(reqCtx, [R, D]), req.subarray(1), items, tensor(featHost, [N, layout.dim])))))).toMatch(/req: expected one request index per candidate/);
      const bad = Int32Array.from(req);
      bad[4] = R;
      expect(errorOf(() => scope(() => noGrad(() => plan.scoreCandidates(tensor(reqCtx, [R, D]), bad, items, tensor(featHost, [N, layout.dim])))))).toMatch(/scoreCandidates: req\[4\] must be in \[0, 3\), got 3/);
      plan.dispose();
    }
    expect(memoryStats().count).toBe(before);
    model.dispose();
  });
});

describe('qgs CLI', () => {
  test('demo (tiny) prints one JSON row per model, saves the model, scores an example; rank reads JSON', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qgs-demo-'));
    const out: string[] = [];
    const io = { out: (t: string) => void out.push(t), err: () => undefined };
    try {
      const code = await runCli(['demo', '--seed', '3', '--users', '50', '--items', '150', '--epochs', '1', '--out', dir, '--json'], io);
      expect(code).toBe(0);
      const rows = out.map((l) => JSON.parse(l) as Record<string, unknown>);
      const models = rows.filter((r) => typeof r.model === 'string' && 'gauc' in r).map((r) => r.model);
      expect(models).toEqual(VARIANTS.map((v) => v.name));
      for (const r of rows.filter((x) => 'gauc' in x)) expect(typeof r.gauc === 'number' || r.gauc === null).toBe(true);
      const ex = rows.find((r) => r.example === 'rank') as { top: { item: number; score: number }[] } | undefined;
      expect(ex?.top.length).toBe(5);
      expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(true);
      const reqFile = path.join(dir, 'req.json');
      fs.writeFileSync(reqFile, JSON.stringify({ history: [{ query: { terms: [1] }, item: 2 }], query: { terms: [3] }, candidates: [{ item: 4 }, { item: 5, features: { text_match: { bm25: 2 } } }] }));
      out.length = 0;
      expect(await runCli(['rank', '--model', dir, '--input', reqFile], io)).toBe(0);
      const ranked = JSON.parse(out[0]) as { scores: number[] };
      expect(ranked.scores.length).toBe(2);
      expect(ranked.scores.every((s) => Number.isFinite(s))).toBe(true);
      fs.writeFileSync(reqFile, JSON.stringify({ query: { terms: [3] }, candidates: [{ item: -1 }] }));
      const errs: string[] = [];
      expect(await runCli(['rank', '--model', dir, '--input', reqFile], { out: () => undefined, err: (t: string) => void errs.push(t) })).toBe(1);
      expect(errs.join('\n')).toMatch(/candidates\[0\]\.item: expected a non-negative integer item id, got -1/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
