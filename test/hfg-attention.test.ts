// nn.HFGAttention and nn.ConcatFeatureMLP against float64 references (every pooling, several
// layers), gradient checks through FeatureGroups → HFGAttention (group projections included),
// missing-group invariance, bad inputs.
import { Random, memoryStats, nn, noGrad, ops, scope, tensor, zeros, type Tensor } from '../src';
import type { FeatureRecord } from '../src/nn';
import { errorOf, expectClose, freshSeed, gelu, randomArray, tensorFrom } from './helpers';
import { denseGroupsRef, hfgRef, linear, paramsOf, type DenseGroupRef, type HFGRefConfig, type Params } from './hfg-reference';

function randomMask(rng: Random, N: number, G: number): Float64Array {
  const m = new Float64Array(N * G);
  for (let i = 0; i < m.length; i++) m[i] = rng.uniform() < 0.7 ? 1 : 0;
  m[0] = 0; // at least one missing group in the batch
  return m;
}

describe('nn.HFGAttention', () => {
  test.each(['context', 'mean', 'attention'] as const)('forward matches the float64 reference (pooling %s, 2 layers, 2 heads)', (pooling) => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const N = 5, D = 8, G = 3, H = 2, hidden = 12;
    const before = memoryStats().count;
    const m = new nn.HFGAttention({ dim: D, numGroups: G, heads: H, layers: 2, ffnHidden: hidden, activation: 'tanh', pooling, seed });
    // Non-trivial LayerNorm affine parameters, so the reference checks them too.
    for (const [name, p] of m.namedParameters()) {
      if (name.includes('norm')) p.storage.copyFromHost(Float32Array.from(randomArray(rng, p.size, 0.3), (x) => x + (name.endsWith('weight') ? 1 : 0)));
    }
    const ctx = randomArray(rng, N * D), item = randomArray(rng, N * D), tok = randomArray(rng, N * G * D);
    const mask = randomMask(rng, N, G);
    const out = scope(() => m.forward(tensorFrom(ctx, [N, D]), tensorFrom(item, [N, D]), tensorFrom(tok, [N, G, D]), tensorFrom(mask, [N, G])));
    expect(out.shape).toEqual([N, D]);
    const cfg: HFGRefConfig = { D, G, H, layers: 2, hidden, pooling, act: Math.tanh };
    const f32 = (a: Float64Array): Float64Array => Float64Array.from(Float32Array.from(a));
    const ref = hfgRef(paramsOf(m.namedParameters()), '', cfg, f32(ctx), f32(item), f32(tok), mask, N);
    expectClose(out.toFloat32Array(), ref, 1e-4, `HFGAttention ${pooling}`, seed);
    out.dispose();
    m.dispose();
    expect(memoryStats().count).toBe(before);
  });

  // 'context' pooling runs the last layer for the context token only (a different code path).
  test.each(['attention', 'context'] as const)('gradient check through FeatureGroups → HFGAttention (group projections, type embeddings, qkv, FFN, pool query, inputs; pooling %s)', (pooling) => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const N = 4, D = 8, H = 2, hidden = 6, clip = 10;
    const groups: DenseGroupRef[] = [
      { name: 'text', features: [{ name: 'bm25', mean: 1.5, std: 2 }, { name: 'cover', mean: 0.2, std: 0.5 }] },
      { name: 'stats', features: [{ name: 'ctr', mean: -3, std: 1 }] },
    ];
    const G = groups.length;
    const fg = new nn.FeatureGroups(groups.map((g) => ({ name: g.name, features: g.features.map((f) => ({ ...f, kind: 'dense' as const })) })), { dim: D, seed, clip });
    const hfg = new nn.HFGAttention({ dim: D, numGroups: G, heads: H, layers: 1, ffnHidden: hidden, activation: 'tanh', pooling, seed: seed + 1 });
    // values[n][g][f]; candidate 1 misses the 'stats' group, candidate 2 has a NaN bm25.
    const values: (number | undefined)[][][] = [];
    const present: boolean[][] = [];
    const records: FeatureRecord[] = [];
    for (let n = 0; n < N; n++) {
      const vals = groups.map((g) => g.features.map((f) => f.mean + f.std * rng.normal()));
      if (n === 2) vals[0][0] = NaN;
      const pres = [true, n !== 1];
      values.push(vals.map((v) => v.map((x) => (Number.isNaN(x) ? undefined : x))));
      present.push(pres);
      const rec: Record<string, Record<string, number> | null> = {};
      groups.forEach((g, gi) => {
        rec[g.name] = pres[gi] ? Object.fromEntries(g.features.map((f, fi) => [f.name, vals[gi][fi]])) : null;
      });
      records.push(rec);
    }
    const ctx = Float64Array.from(Float32Array.from(randomArray(rng, N * D)));
    const item = Float64Array.from(Float32Array.from(randomArray(rng, N * D)));
    const cotangent = randomArray(rng, N * D);
    const ctxT = tensorFrom(ctx, [N, D], true);
    scope(() => {
      const { tokens, mask } = fg.forward(records);
      const out = hfg.forward(ctxT, tensorFrom(item, [N, D]), tokens, mask);
      out.backward(tensorFrom(cotangent, [N, D]));
    });
    const named = [...fg.namedParameters('feat'), ...hfg.namedParameters('hfg')];
    const P0 = paramsOf(named);
    const maskArr = Float64Array.from(present.flatMap((p) => p.map((b) => (b ? 1 : 0))));
    const cfg: HFGRefConfig = { D, G, H, layers: 1, hidden, pooling, act: Math.tanh };
    const f = (P: Params, c: Float64Array): number => {
      const tok = denseGroupsRef(P, 'feat.', groups, values, present, D, clip);
      const y = hfgRef(P, 'hfg.', cfg, c, item, tok, maskArr, N);
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i] * cotangent[i];
      return s;
    };
    const h = 1e-5;
    const check = (what: string, grad: Tensor | null, perturb: (i: number, dx: number) => number, n: number): void => {
      if (grad === null) throw new Error(`${what}: no gradient (seed ${seed})`);
      const g = grad.toFloat32Array();
      const coords = Array.from({ length: Math.min(n, 16) }, (_, j) => (n <= 16 ? j : rng.int(n)));
      const num = coords.map((i) => (perturb(i, h) - perturb(i, -h)) / (2 * h));
      expectClose(coords.map((i) => g[i]), num, 2e-3, `grad ${what}`, seed);
    };
    for (const [name, t] of named) {
      if (!/proj\.weight|norm\.bias|typeEmbedding|qkv\.weight|fc0\.weight|out\.bias|poolQuery/.test(name)) continue;
      check(name, t.grad, (i, dx) => {
        const P = new Map(P0);
        const v = Float64Array.from(P0.get(name) as Float64Array);
        v[i] += dx;
        P.set(name, v);
        return f(P, ctx);
      }, t.size);
    }
    check('context input', ctxT.grad, (i, dx) => {
      const c = Float64Array.from(ctx);
      c[i] += dx;
      return f(P0, c);
    }, ctx.length);
    // The missing group's projection got no gradient from candidate 1 but does from the others.
    expect((fg.namedParameters().find(([n]) => n === 'stats.proj.weight')?.[1].grad as Tensor).toFloat32Array().some((x) => x !== 0)).toBe(true);
    ctxT.dispose();
    fg.dispose();
    hfg.dispose();
  });

  test('a masked group cannot change the output (its token is neither key nor pooled)', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const N = 3, D = 8, G = 2;
    for (const pooling of ['context', 'mean', 'attention'] as const) {
      const m = new nn.HFGAttention({ dim: D, numGroups: G, heads: 2, layers: 2, pooling, seed });
      const ctx = tensorFrom(randomArray(rng, N * D), [N, D]);
      const item = tensorFrom(randomArray(rng, N * D), [N, D]);
      const tokA = randomArray(rng, N * G * D);
      const tokB = Float64Array.from(tokA);
      for (let n = 0; n < N; n++) for (let c = 0; c < D; c++) tokB[(n * G + 1) * D + c] = 100 * rng.normal();
      const mask = tensor([1, 0, 1, 0, 1, 0], [N, G]);
      const a = scope(() => m.forward(ctx, item, tensorFrom(tokA, [N, G, D]), mask));
      const b = scope(() => m.forward(ctx, item, tensorFrom(tokB, [N, G, D]), mask));
      expectClose(b.toFloat32Array(), a.toFloat32Array(), 1e-6, `masked group invariance (${pooling})`, seed);
      expect(Array.from(a.toFloat32Array()).every(Number.isFinite)).toBe(true);
      for (const t of [ctx, item, mask, a, b]) t.dispose();
      m.dispose();
    }
  });

  test('defaults (gelu, 4 heads, context pooling), no mask, N = 0, and no leaks inside scope()', () => {
    const m = new nn.HFGAttention({ dim: 16, numGroups: 4, seed: 3 });
    expect(m.heads).toBe(4);
    const before = memoryStats().count;
    scope(() => {
      const out = m.forward(tensorFrom(new Float64Array(6 * 16).fill(0.1), [6, 16]), tensorFrom(new Float64Array(6 * 16).fill(-0.2), [6, 16]), tensorFrom(randomArray(new Random(1), 6 * 4 * 16), [6, 4, 16]));
      expect(out.shape).toEqual([6, 16]);
      expect(Array.from(out.toFloat32Array()).every(Number.isFinite)).toBe(true);
      const empty = m.forward(tensorFrom([], [0, 16]), tensorFrom([], [0, 16]), tensorFrom([], [0, 4, 16]), tensorFrom([], [0, 4]));
      expect(empty.shape).toEqual([0, 16]);
    });
    expect(memoryStats().count).toBe(before);
    m.dispose();
  });

  test('bad configuration and inputs give clear errors', () => {
    expect(errorOf(() => new nn.HFGAttention({ dim: 10, numGroups: 2, heads: 4 }))).toMatch(/HFGAttention: heads: expected a divisor of dim 10, got 4/);
    expect(errorOf(() => new nn.HFGAttention({ dim: 8, numGroups: 63 }))).toMatch(/HFGAttention: numGroups: expected <= 62, got 63/);
    expect(errorOf(() => new nn.HFGAttention({ dim: 8, numGroups: 2, pooling: 'max' as 'mean' }))).toMatch(/HFGAttention: pooling: expected 'context', 'mean' or 'attention', got "max"/);
    expect(errorOf(() => new nn.HFGAttention({ dim: 256, numGroups: 2, heads: 1 }))).toMatch(/dim \/ heads must be <= 128, got 256 \/ 1 = 256/);
    const m = new nn.HFGAttention({ dim: 8, numGroups: 2, heads: 2 });
    const c = tensorFrom(new Float64Array(24), [3, 8]);
    expect(errorOf(() => m.forward(c, c, tensorFrom(new Float64Array(3 * 3 * 8), [3, 3, 8])))).toMatch(/HFGAttention: groupTokens: expected shape \[3, 2, 8\], got \[3, 3, 8\]/);
    expect(errorOf(() => m.forward(c, tensorFrom(new Float64Array(16), [2, 8]), tensorFrom(new Float64Array(48), [3, 2, 8])))).toMatch(/HFGAttention: item: expected shape \[3, 8\], got \[2, 8\]/);
    expect(errorOf(() => m.forward(c, c, tensorFrom(new Float64Array(48), [3, 2, 8]), tensorFrom([1, 1], [1, 2])))).toMatch(/HFGAttention: groupMask: expected shape \[3, 2\], got \[1, 2\]/);
    c.dispose();
    m.dispose();
  });
});

describe('the fused HFG context layer (CPU inference path of HFGAttention)', () => {
  const acts = { relu: (v: number) => Math.max(v, 0), gelu, silu: (v: number) => v / (1 + Math.exp(-v)), tanh: Math.tanh } as const;
  // Under noGrad, context pooling runs its last layer through ops.hfgContextLayer; N = 70 spans three
  // 32-candidate tiles, the first of 2 layers stays composed, some candidates miss groups.
  test.each(Object.keys(acts) as (keyof typeof acts)[])('noGrad forward (fused last layer) matches the float64 reference and the composed path (%s)', (act) => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const N = 70, D = 12, G = 4, H = 3, hidden = 20;
    const before = memoryStats().count;
    const m = new nn.HFGAttention({ dim: D, numGroups: G, heads: H, layers: 2, ffnHidden: hidden, activation: act, pooling: 'context', seed });
    for (const [name, p] of m.namedParameters()) {
      if (name.includes('norm')) p.storage.copyFromHost(Float32Array.from(randomArray(rng, p.size, 0.3), (x) => x + (name.endsWith('weight') ? 1 : 0)));
    }
    const ctx = randomArray(rng, N * D), item = randomArray(rng, N * D), tok = randomArray(rng, N * G * D, 2);
    const mask = randomMask(rng, N, G);
    const run = (): Float32Array =>
      scope(() => m.forward(tensorFrom(ctx, [N, D]), tensorFrom(item, [N, D]), tensorFrom(tok, [N, G, D]), tensorFrom(mask, [N, G])).toFloat32Array());
    const fused = noGrad(run);
    const composed = run(); // parameters require grad: the composed ops run
    const f32 = (a: Float64Array): Float64Array => Float64Array.from(Float32Array.from(a));
    const cfg: HFGRefConfig = { D, G, H, layers: 2, hidden, pooling: 'context', act: acts[act] };
    const ref = hfgRef(paramsOf(m.namedParameters()), '', cfg, f32(ctx), f32(item), f32(tok), mask, N);
    expectClose(fused, ref, 1e-5, `fused ${act}`, seed);
    expectClose(fused, composed, 1e-5, `fused vs composed ${act}`, seed);
    m.dispose();
    expect(memoryStats().count).toBe(before);
  });

  test('ops.hfgContextLayer rejects bad parameters, gradients and non-CPU use with clear errors', () => {
    const N = 3, T = 4, D = 8, F = 5;
    const x = zeros([N, T, D]);
    const p = { heads: 2, wqkv: zeros([3 * D, D]), wo: zeros([D, D]), w1: zeros([F, D]), w2: zeros([D, F]) };
    expect(noGrad(() => ops.hfgContextLayer(x, p)).shape).toEqual([N, D]);
    expect(errorOf(() => ops.hfgContextLayer(x, { ...p, heads: 3 }))).toMatch(/hfgContextLayer: heads: expected a divisor of D = 8/);
    expect(errorOf(() => ops.hfgContextLayer(x, { ...p, wqkv: zeros([D, D]) }))).toMatch(/hfgContextLayer: wqkv: expected shape \[24, 8\]/);
    expect(errorOf(() => ops.hfgContextLayer(x, { ...p, w2: zeros([D, F + 1]) }))).toMatch(/hfgContextLayer: w2/);
    expect(errorOf(() => ops.hfgContextLayer(x, { ...p, b1: zeros([D]) }))).toMatch(/hfgContextLayer: b1/);
    expect(errorOf(() => ops.hfgContextLayer(x, { ...p, activation: 'elu' as 'relu' }))).toMatch(/hfgContextLayer: activation: expected one of relu, gelu, silu, tanh, got "elu"/);
    expect(errorOf(() => ops.hfgContextLayer(x, { ...p, eps2: 0 }))).toMatch(/hfgContextLayer: eps2: expected a positive finite number, got 0/);
    expect(errorOf(() => ops.hfgContextLayer(x, p, { keyMask: zeros([N, T + 1]) }))).toMatch(/hfgContextLayer: keyMask/);
    expect(errorOf(() => ops.hfgContextLayer(zeros([N, 65, D]), p))).toMatch(/hfgContextLayer: x: expected 1 <= T <= 64/);
    const w = zeros([D, D]);
    w.requiresGrad = true;
    expect(errorOf(() => ops.hfgContextLayer(x, { ...p, wo: w }))).toMatch(/hfgContextLayer: inference only/);
    expect(noGrad(() => ops.hfgContextLayer(x, { ...p, wo: w })).shape).toEqual([N, D]);
  });

  test('ops.hfgRankHead rejects bad shapes, request indices and gradients with clear errors', () => {
    const R = 2, N = 5, D = 8, G = 3, F = 4, M = 6;
    const layer = { heads: 2, wqkv: zeros([3 * D, D]), wo: zeros([D, D]), w1: zeros([7, D]), w2: zeros([D, 7]) };
    const p = { layer, typeEmbedding: zeros([G + 2, D]), groupWeight: zeros([G * D, F]), matchW1: zeros([M, 3 * D]), matchW2: zeros([D, M]), logitWeight: zeros([1, 2 * D + F]), logitBias: 0.5 };
    const req = Int32Array.of(0, 1, 1, 0, 1);
    const run = (over: Partial<typeof p> = {}, r: Int32Array = req): Tensor => noGrad(() => ops.hfgRankHead(zeros([R, D]), r, zeros([N, D]), zeros([N, F]), { ...p, ...over }));
    const out = run();
    expect(Array.from(out.toFloat32Array())).toEqual([0.5, 0.5, 0.5, 0.5, 0.5]); // zero weights: the logit bias
    expect(errorOf(() => run({ groupWeight: zeros([G * D, F + 1]) }))).toMatch(/hfgRankHead: groupWeight: expected shape \[24, 4\]/);
    expect(errorOf(() => run({ logitWeight: zeros([1, 2 * D]) }))).toMatch(/hfgRankHead: logitWeight/);
    expect(errorOf(() => run({ matchW2: zeros([D, M + 1]) }))).toMatch(/hfgRankHead: matchW2/);
    expect(errorOf(() => run({ typeEmbedding: zeros([1, D]) }))).toMatch(/hfgRankHead: typeEmbedding: expected 2 .. 64 rows/);
    expect(errorOf(() => run({ logitBias: NaN }))).toMatch(/hfgRankHead: logitBias: expected a (finite )?number, got NaN/);
    expect(errorOf(() => run({}, Int32Array.of(0, 1)))).toMatch(/hfgRankHead: req: expected an Int32Array of 5 request indices, got length 2/);
    expect(errorOf(() => run({}, Int32Array.of(0, 1, 2, 0, 1)))).toMatch(/rankHead: req\[2\] must be in \[0, 2\), got 2/);
    const w = zeros([M, 3 * D]);
    w.requiresGrad = true;
    expect(errorOf(() => ops.hfgRankHead(zeros([R, D]), req, zeros([N, D]), zeros([N, F]), { ...p, matchW1: w }))).toMatch(/hfgRankHead: inference only/);
    // Rows from an item table: ids index the table; N follows the ids.
    const table = zeros([3, D]);
    expect(errorOf(() => run({ itemIds: Int32Array.of(0, 1, 2) } as Partial<typeof p>))).toMatch(/hfgRankHead: req: expected an Int32Array of 3 request indices, got length 5/);
    expect(errorOf(() => noGrad(() => ops.hfgRankHead(zeros([R, D]), req, table, zeros([N, F]), { ...p, itemIds: Int32Array.of(0, 1, 2, 3, 0) })))).toMatch(/rankHead: item_ids\[3\] must be in \[0, 3\), got 3/);
    expect(errorOf(() => noGrad(() => ops.hfgRankHead(zeros([R, D]), req, table, zeros([N, F]), { ...p, itemIds: [0, 1, 2, 0, 1] as unknown as Int32Array })))).toMatch(/hfgRankHead: itemIds: expected an Int32Array/);
  });

  test('ops.hfgRankHead reads item rows from a table by id exactly as from gathered rows', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const R = 3, N = 77, V = 11, D = 12, G = 3, F = 5, M = 9, FF = 10;
    const r = (shape: number[], sd = 0.5): Tensor => tensorFrom(randomArray(rng, shape.reduce((a, b) => a * b, 1), sd), shape);
    const layer = { heads: 3, wqkv: r([3 * D, D]), wo: r([D, D]), w1: r([FF, D]), w2: r([D, FF]), bqkv: r([3 * D]), lnOutWeight: r([D]) };
    const p = { layer, typeEmbedding: r([G + 2, D]), groupWeight: r([G * D, F]), groupBias: r([G * D]), matchW1: r([M, 3 * D]), matchB1: r([M]), matchW2: r([D, M]), logitWeight: r([1, 2 * D + F]), logitBias: 0.1 };
    const ctx = r([R, D], 1);
    const table = r([V, D], 1);
    const feats = r([N, F], 1);
    const req = Int32Array.from({ length: N }, () => Math.floor(rng.uniform() * R));
    const ids = Int32Array.from({ length: N }, () => Math.floor(rng.uniform() * V));
    const live = memoryStats().count;
    const byId = noGrad(() => scope(() => ops.hfgRankHead(ctx, req, table, feats, { ...p, itemIds: ids }).toFloat32Array()));
    const gathered = noGrad(() => scope(() => ops.hfgRankHead(ctx, req, ops.gather(table, tensor(ids, [N], { dtype: 'i32' }), 0), feats, p).toFloat32Array()));
    expect(memoryStats().count).toBe(live);
    expectClose(byId, gathered, 1e-6, 'item rows by id vs gathered', seed);
    expect(Array.from(byId).every(Number.isFinite)).toBe(true);
  });

  test('ops.HfgRankHeadPlan: prepared once, it scores exactly as hfgRankHead (block-diagonal and dense groups) and keeps its own copy of the weights', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const R = 3, N = 70, V = 13, D = 16, G = 4, F = 6, M = 10, FF = 12;
    const r = (shape: number[], sd = 0.5): Tensor => tensorFrom(randomArray(rng, shape.reduce((a, b) => a * b, 1), sd), shape);
    const live = memoryStats().count;
    const layer = { heads: 2, wqkv: r([3 * D, D]), wo: r([D, D]), w1: r([FF, D]), w2: r([D, FF]), bqkv: r([3 * D]), ln1Weight: r([D]), ln1Bias: r([D]) };
    // Block-diagonal groups (feature j feeds group j mod G, as RankingPlan builds them: the kernel's
    // folded path) and dense ones (the generic path).
    const block = randomArray(rng, G * D * F, 0.5).map((v, i) => ((i % F) % G === Math.floor(Math.floor(i / F) / D) ? v : 0));
    for (const groupWeight of [tensorFrom(block, [G * D, F]), r([G * D, F])]) {
      const p = { layer, typeEmbedding: r([G + 2, D]), groupWeight, groupBias: r([G * D]), matchW1: r([M, 3 * D]), matchB1: r([M]), matchW2: r([D, M]), logitWeight: r([1, 2 * D + F]), logitBias: -0.2 };
      const ctx = r([R, D], 1), table = r([V, D], 1), feats = r([N, F], 1);
      const req = Int32Array.from({ length: N }, () => Math.floor(rng.uniform() * R));
      const ids = Int32Array.from({ length: N }, () => Math.floor(rng.uniform() * V));
      const plan = noGrad(() => new ops.HfgRankHeadPlan(p));
      expect([plan.dim, plan.features]).toEqual([D, F]);
      const once = noGrad(() => scope(() => ops.hfgRankHead(ctx, req, table, feats, { ...p, itemIds: ids }).toFloat32Array()));
      const planned = noGrad(() => scope(() => plan.run(ctx, req, table, feats, ids).toFloat32Array()));
      expect(Array.from(planned)).toEqual(Array.from(once));
      expect(Array.from(planned).every(Number.isFinite)).toBe(true);
      // The serving form on plain arrays computes the same logits (into a poisoned output).
      const into = new Float32Array(N).fill(Number.NaN);
      plan.score(into, ctx.toFloat32Array(), req, table, ids, feats.toFloat32Array());
      expect(Array.from(into)).toEqual(Array.from(planned));
      // Changing a weight afterwards reaches hfgRankHead but not the plan (a copy); a new plan sees it.
      p.matchW2.storage.copyFromHost(new Float32Array(D * M).fill(0.25));
      expect(Array.from(noGrad(() => scope(() => plan.run(ctx, req, table, feats, ids).toFloat32Array())))).toEqual(Array.from(planned));
      const changed = noGrad(() => scope(() => ops.hfgRankHead(ctx, req, table, feats, { ...p, itemIds: ids }).toFloat32Array()));
      expect(Array.from(changed)).not.toEqual(Array.from(once));
      const plan2 = noGrad(() => new ops.HfgRankHeadPlan(p));
      expect(Array.from(noGrad(() => scope(() => plan2.run(ctx, req, table, feats, ids).toFloat32Array())))).toEqual(Array.from(changed));
      plan.dispose();
      plan2.dispose();
      for (const t of [ctx, table, feats, groupWeight, p.typeEmbedding, p.groupBias, p.matchW1, p.matchB1, p.matchW2, p.logitWeight]) t.dispose();
    }
    for (const t of Object.values(layer)) if (typeof t !== 'number') t.dispose();
    expect(memoryStats().count).toBe(live);
  });

  test('ops.HfgRankHeadPlan rejects bad parameters, calls, gradients and use after dispose with clear errors', () => {
    const R = 2, N = 5, D = 8, G = 3, F = 4, M = 6;
    const layer = { heads: 2, wqkv: zeros([3 * D, D]), wo: zeros([D, D]), w1: zeros([7, D]), w2: zeros([D, 7]) };
    const p = { layer, typeEmbedding: zeros([G + 2, D]), groupWeight: zeros([G * D, F]), matchW1: zeros([M, 3 * D]), matchW2: zeros([D, M]), logitWeight: zeros([1, 2 * D + F]), logitBias: 0.5 };
    const plan = noGrad(() => new ops.HfgRankHeadPlan(p));
    const req = Int32Array.of(0, 1, 1, 0, 1);
    expect(Array.from(noGrad(() => plan.run(zeros([R, D]), req, zeros([N, D]), zeros([N, F]))).toFloat32Array())).toEqual([0.5, 0.5, 0.5, 0.5, 0.5]);
    expect(errorOf(() => noGrad(() => new ops.HfgRankHeadPlan({ ...p, groupWeight: zeros([G * D, F + 1]) })))).toMatch(/HfgRankHeadPlan: groupWeight: expected shape \[24, 4\]/);
    expect(errorOf(() => noGrad(() => new ops.HfgRankHeadPlan({ ...p, logitWeight: zeros([1, D]) })))).toMatch(/HfgRankHeadPlan: logitWeight: expected \[1, 2·8 \+ F\]/);
    expect(errorOf(() => noGrad(() => new ops.HfgRankHeadPlan({ ...p, matchW2: zeros([D, M + 1]) })))).toMatch(/HfgRankHeadPlan: matchW2/);
    expect(errorOf(() => noGrad(() => plan.run(zeros([R, D]), req, zeros([N, D]), zeros([N, F + 1]))))).toMatch(/HfgRankHeadPlan.run: features: expected 4 columns \(the plan's\), got shape \[5, 5\]/);
    expect(errorOf(() => noGrad(() => plan.run(zeros([R, D + 1]), req, zeros([N, D]), zeros([N, F]))))).toMatch(/HfgRankHeadPlan.run: ctx: expected shape \[-1, 8\]|HfgRankHeadPlan.run: ctx/);
    expect(errorOf(() => noGrad(() => plan.run(zeros([R, D]), Int32Array.of(0, 1, 2, 0, 1), zeros([N, D]), zeros([N, F]))))).toMatch(/rankHead: req\[2\] must be in \[0, 2\), got 2/);
    const x = zeros([R, D]);
    x.requiresGrad = true;
    expect(errorOf(() => plan.run(x, req, zeros([N, D]), zeros([N, F])))).toMatch(/HfgRankHeadPlan.run: inference only/);
    const w = zeros([M, 3 * D]);
    w.requiresGrad = true;
    expect(errorOf(() => new ops.HfgRankHeadPlan({ ...p, matchW1: w }))).toMatch(/HfgRankHeadPlan: inference only/);
    const table = zeros([7, D]);
    const ids = Int32Array.of(0, 1, 2, 3, 6);
    const sc = (o: { logits?: Float32Array; ctx?: Float32Array; req?: Int32Array; ids?: Int32Array; feats?: Float32Array }) =>
      errorOf(() => plan.score(o.logits ?? new Float32Array(N), o.ctx ?? new Float32Array(R * D), o.req ?? req, table, o.ids ?? ids, o.feats ?? new Float32Array(N * F)));
    const logits = new Float32Array(N);
    plan.score(logits, new Float32Array(R * D), req, table, ids, new Float32Array(N * F));
    expect(Array.from(logits)).toEqual([0.5, 0.5, 0.5, 0.5, 0.5]);
    expect(sc({ logits: new Float32Array(N - 1) })).toMatch(/HfgRankHeadPlan.score: logits: expected a Float32Array of 5 \(5 candidates\), got length 4/);
    expect(sc({ ctx: new Float32Array(D + 1) })).toMatch(/HfgRankHeadPlan.score: ctx: expected a Float32Array of R × 8 context values \(R >= 1\), got length 9/);
    expect(sc({ feats: new Float32Array(N * (F + 1)) })).toMatch(/features: expected a Float32Array of 20 \(5 candidates × 4 features\), got length 25/);
    expect(sc({ ids: Int32Array.of(0, 1, 2, 3, 7) })).toMatch(/rankHead: item_ids\[4\] must be in \[0, 7\), got 7/);
    expect(sc({ req: Int32Array.of(0, 1, 2, 0, 1) })).toMatch(/rankHead: req\[2\] must be in \[0, 2\), got 2/);
    const shared = new Float32Array(N * F + N);
    expect(errorOf(() => plan.score(shared.subarray(N * F - 2, N * F - 2 + N), new Float32Array(R * D), req, table, ids, shared.subarray(0, N * F)))).toMatch(/HfgRankHeadPlan.score: logits: overlaps features \(logits may only be an array of its own\)/);
    table.dispose();
    plan.dispose();
    plan.dispose();
    expect(errorOf(() => noGrad(() => plan.run(zeros([R, D]), req, zeros([N, D]), zeros([N, F]))))).toMatch(/HfgRankHeadPlan.run: the plan was disposed/);
    expect(sc({})).toMatch(/HfgRankHeadPlan.score: the plan was disposed/);
  });
});

describe('nn.ConcatFeatureMLP (ablation baseline)', () => {
  test('same interface; forward matches the float64 reference; masked groups get no gradient', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const N = 4, D = 6, G = 3, hidden = 10;
    const m = new nn.ConcatFeatureMLP({ dim: D, numGroups: G, hidden: [hidden], activation: 'tanh', seed });
    const ctx = Float64Array.from(Float32Array.from(randomArray(rng, N * D)));
    const item = Float64Array.from(Float32Array.from(randomArray(rng, N * D)));
    const tok = Float64Array.from(Float32Array.from(randomArray(rng, N * G * D)));
    const mask = randomMask(rng, N, G);
    const tokT = tensorFrom(tok, [N, G, D], true);
    const out = scope(() => m.forward(tensorFrom(ctx, [N, D]), tensorFrom(item, [N, D]), tokT, tensorFrom(mask, [N, G])));
    const W = (G + 2) * D + G;
    const x = new Float64Array(N * W);
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < D; c++) x[n * W + c] = ctx[n * D + c];
      for (let c = 0; c < D; c++) x[n * W + D + c] = item[n * D + c];
      for (let g = 0; g < G; g++) for (let c = 0; c < D; c++) x[n * W + 2 * D + g * D + c] = mask[n * G + g] * tok[(n * G + g) * D + c];
      for (let g = 0; g < G; g++) x[n * W + (G + 2) * D + g] = mask[n * G + g];
    }
    const P = paramsOf(m.namedParameters());
    const h1 = linear(x, N, W, P.get('mlp.fc0.weight') as Float64Array, P.get('mlp.fc0.bias') as Float64Array, hidden).map(Math.tanh);
    const ref = linear(h1, N, hidden, P.get('mlp.fc1.weight') as Float64Array, P.get('mlp.fc1.bias') as Float64Array, D);
    expectClose(out.toFloat32Array(), ref, 1e-5, 'ConcatFeatureMLP forward', seed);
    scope(() => {
      const y = m.forward(tensorFrom(ctx, [N, D]), tensorFrom(item, [N, D]), tokT, tensorFrom(mask, [N, G]));
      y.backward(tensorFrom(randomArray(rng, N * D), [N, D]));
    });
    const g = (tokT.grad as Tensor).toFloat32Array();
    for (let n = 0; n < N; n++) {
      for (let gi = 0; gi < G; gi++) {
        const slice = g.subarray((n * G + gi) * D, (n * G + gi + 1) * D);
        if (mask[n * G + gi] === 0) expect(slice.every((v) => v === 0)).toBe(true);
      }
    }
    expect(errorOf(() => m.forward(tensorFrom(ctx, [N, D]), tensorFrom(item, [N, D]), tensorFrom(new Float64Array(N * 2 * D), [N, 2, D])))).toMatch(/ConcatFeatureMLP: groupTokens: expected shape \[4, 3, 6\], got \[4, 2, 6\]/);
    for (const t of [out, tokT]) t.dispose();
    m.dispose();
  });
});
