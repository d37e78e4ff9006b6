// Optimisers: AdamW and SparseAdam steps against float64 reference steps, sparse updates touch only
// the given rows, clipGradNorm over dense + sparse grads, warmupCosine, state round-trip, and a tiny
// regression problem that trains with Linear + AdamW.
import { nn, ops, optim, tensor, zeros, scope, memoryStats, Random, Tensor } from '../src';
import { freshSeed, randomArray, tensorFrom, expectClose, expectCloseFloor, errorOf, asF64 } from './helpers';

interface AdamRef { p: Float64Array; m: Float64Array; v: Float64Array }

function refAdamStep(s: AdamRef, g: Float64Array, t: number, lr: number, b1: number, b2: number, eps: number, wd: number): void {
  const bc1 = 1 - b1 ** t;
  const bc2 = 1 - b2 ** t;
  for (let i = 0; i < g.length; i++) {
    s.p[i] *= 1 - lr * wd;
    s.m[i] = b1 * s.m[i] + (1 - b1) * g[i];
    s.v[i] = b2 * s.v[i] + (1 - b2) * g[i] * g[i];
    s.p[i] -= (lr * (s.m[i] / bc1)) / (Math.sqrt(s.v[i] / bc2) + eps);
  }
}

describe('AdamW', () => {
  test('several steps match a float64 reference (odd sizes, weight decay)', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const n of [1, 3, 7, 65, 257, 40000]) {
      const p0 = randomArray(rng, n);
      const P = tensorFrom(p0, [n], true);
      const ref: AdamRef = { p: asF64(P), m: new Float64Array(n), v: new Float64Array(n) };
      const opt = new optim.AdamW([P], { lr: 0.01, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 });
      for (let t = 1; t <= 5; t++) {
        const g = tensorFrom(randomArray(rng, n), [n]);
        P.grad = g;
        refAdamStep(ref, asF64(g), t, 0.01, 0.9, 0.99, 1e-8, 0.1);
        opt.step();
      }
      // Parameters start ~N(0, 1), moments ~0.1 and ~0.01 (EMAs of N(0, 1) gradients): those are the
      // floors of the error scale (one value can end near 0; a wrong update is off by ~lr = 0.01).
      expectCloseFloor(P.toFloat32Array(), ref.p, 1e-5, 1, `AdamW n=${n}`, seed);
      const st = opt.state();
      expectCloseFloor(st.tensors['0.m'].toFloat32Array(), ref.m, 1e-5, 0.1, `AdamW m n=${n}`, seed);
      expectCloseFloor(st.tensors['0.v'].toFloat32Array(), ref.v, 1e-5, 0.01, `AdamW v n=${n}`, seed);
      expect(st.scalars['step.0']).toBe(5);
      opt.dispose();
      P.dispose();
    }
  });

  test('params without a gradient are skipped; sparse grads are rejected with a hint', () => {
    const a = tensor([1, 2], [2], { requiresGrad: true });
    const b = tensor([3, 4], [2], { requiresGrad: true });
    const opt = new optim.AdamW([a, b], { lr: 0.1 });
    a.grad = tensor([1, 1]);
    opt.step();
    expect(Array.from(b.toFloat32Array())).toEqual([3, 4]);
    expect(opt.state().scalars['step.1']).toBe(0);
    const e = new nn.Embedding(10, 2, { sparse: true, seed: 1 });
    ops.sum(e.forward(tensor([1], [1], { dtype: 'i32' }))).backward();
    const o2 = new optim.AdamW(e.parameters());
    expect(errorOf(() => o2.step())).toMatch(/AdamW: params\[0\] has a row-sparse gradient .*SparseAdam/);
    expect(errorOf(() => new optim.AdamW([a, a]))).toMatch(/AdamW: params: the same tensor appears twice/);
    expect(errorOf(() => new optim.AdamW([a], { lr: -1 }))).toMatch(/AdamW: lr: expected >= 0, got -1/);
    expect(errorOf(() => new optim.AdamW([a], { betas: [0.9, 1] }))).toMatch(/AdamW: betas\[1\]: expected <= /);
  });

  test('state()/loadState() resumes identically', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const p0 = randomArray(rng, 33);
    const grads = [0, 1, 2, 3].map(() => randomArray(rng, 33));
    const A = tensorFrom(p0, [33], true);
    const oa = new optim.AdamW([A], { lr: 0.05 });
    for (const g of grads) {
      A.grad = tensorFrom(g, [33]);
      oa.step();
    }
    const B = tensorFrom(p0, [33], true);
    const ob = new optim.AdamW([B], { lr: 0.05 });
    for (const g of grads.slice(0, 2)) {
      B.grad = tensorFrom(g, [33]);
      ob.step();
    }
    const C = tensor(B.toFloat32Array(), [33], { requiresGrad: true });
    const oc = new optim.AdamW([C], { lr: 0.9 });
    oc.loadState(ob.state());
    expect(oc.lr).toBe(0.05);
    for (const g of grads.slice(2)) {
      C.grad = tensorFrom(g, [33]);
      oc.step();
    }
    expect(Array.from(C.toFloat32Array())).toEqual(Array.from(A.toFloat32Array()));
    const bad = ob.state();
    expect(errorOf(() => oc.loadState({ ...bad, type: 'SGD' }))).toMatch(/AdamW\.loadState: type: expected AdamW, got SGD/);
    expect(errorOf(() => oc.loadState({ ...bad, tensors: { '0.m': zeros([2]) } }))).toMatch(/0\.m: expected shape \[33\], got \[2\]/);
  });
});

describe('sparse optimisers', () => {
  function sparseSetup(seed: number, V: number, D: number, ids: number[]): { W: Tensor; w0: Float64Array; rows: number[]; g: Float64Array } {
    const rng = new Random(seed);
    const W = tensorFrom(randomArray(rng, V * D), [V, D], true);
    const G = tensorFrom(randomArray(rng, ids.length * D), [ids.length, D]);
    scope(() => ops.embedding(W, tensor(ids, [ids.length], { dtype: 'i32' }), { sparse: true }).backward(G));
    const rows = Array.from(W.sparseGrad!.rows.toInt32Array());
    return { W, w0: asF64(W), rows, g: asF64(W.sparseGrad!.values) };
  }

  test('SparseAdam updates exactly the touched rows, matching a float64 lazy-Adam reference', () => {
    const seed = freshSeed();
    const V = 257, D = 7;
    const { W, w0, rows, g } = sparseSetup(seed, V, D, [3, 200, 3, 0, 256, 17]);
    const opt = new optim.SparseAdam([W], { lr: 0.02 });
    opt.step();
    const after = W.toFloat32Array();
    const ref: AdamRef = { p: Float64Array.from(w0), m: new Float64Array(V * D), v: new Float64Array(V * D) };
    rows.forEach((r, i) => {
      const s: AdamRef = { p: ref.p.subarray(r * D, r * D + D), m: ref.m.subarray(r * D, r * D + D), v: ref.v.subarray(r * D, r * D + D) };
      refAdamStep(s, g.subarray(i * D, i * D + D), 1, 0.02, 0.9, 0.999, 1e-8, 0);
    });
    expectClose(after, ref.p, 1e-6, 'SparseAdam', seed);
    const touched = new Set(rows);
    for (let r = 0; r < V; r++) {
      if (touched.has(r)) continue;
      for (let d = 0; d < D; d++) expect(after[r * D + d]).toBe(Math.fround(w0[r * D + d]));
    }
    expect(errorOf(() => {
      W.sparseGrad!.rows.dispose();
      W.sparseGrad!.values.dispose();
      W.sparseGrad = null;
      W.grad = zeros([V, D]);
      opt.step();
    })).toMatch(/SparseAdam: params\[0\] has a dense gradient/);
    W.dispose();
    opt.dispose();
  });

  test('SparseAdagrad updates only touched rows; reference step', () => {
    const seed = freshSeed();
    const V = 65, D = 3;
    const { W, w0, rows, g } = sparseSetup(seed, V, D, [1, 64, 1]);
    const opt = new optim.SparseAdagrad([W], { lr: 0.1, initialAccumulator: 0.1 });
    opt.step();
    const ref = Float64Array.from(w0);
    rows.forEach((r, i) => {
      for (let d = 0; d < D; d++) {
        const gi = g[i * D + d];
        ref[r * D + d] -= (0.1 * gi) / (Math.sqrt(0.1 + gi * gi) + 1e-10);
      }
    });
    expectClose(W.toFloat32Array(), ref, 1e-6, 'SparseAdagrad', seed);
    W.dispose();
    opt.dispose();
  });
});

describe('clipGradNorm', () => {
  test('global norm over dense and sparse grads; scales only above maxNorm', () => {
    const a = tensor([0, 0], [2], { requiresGrad: true });
    a.grad = tensor([3, 0]);
    const E = zeros([10, 2], { requiresGrad: true });
    ops.sum(ops.embedding(E, tensor([4], [1], { dtype: 'i32' }), { sparse: true })).backward(); // sparse values [1, 1]
    E.sparseGrad!.values.storage.copyFromHost(new Float32Array([4, 0]));
    const n = optim.clipGradNorm([a, E], 2.5);
    expect(n).toBeCloseTo(5, 5);
    expectClose(a.grad!.toFloat32Array(), [1.5, 0], 1e-5, 'clipped dense');
    expectClose(E.sparseGrad!.values.toFloat32Array(), [2, 0], 1e-5, 'clipped sparse');
    const n2 = optim.clipGradNorm([a, E], 100);
    expect(n2).toBeCloseTo(2.5, 4);
    expectClose(a.grad!.toFloat32Array(), [1.5, 0], 1e-5, 'unchanged');
    expect(errorOf(() => optim.clipGradNorm([a], -1))).toMatch(/clipGradNorm: maxNorm: expected >= 0, got -1/);
  });
});

describe('warmupCosine', () => {
  test('linear warm-up, cosine decay to minLr, flat after total', () => {
    const s = optim.warmupCosine({ lr: 1, warmup: 4, total: 14, minLr: 0.1 });
    expect(s(0)).toBeCloseTo(0.25);
    expect(s(3)).toBeCloseTo(1);
    expect(s(4)).toBeCloseTo(1);
    expect(s(9)).toBeCloseTo(0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * 0.5)));
    expect(s(14)).toBeCloseTo(0.1);
    expect(s(1000)).toBeCloseTo(0.1);
    for (let i = 5; i < 14; i++) expect(s(i)).toBeLessThanOrEqual(s(i - 1));
    expect(errorOf(() => optim.warmupCosine({ lr: 1, warmup: 5, total: 3 }))).toMatch(/warmupCosine: warmup: expected <= total \(3\), got 5/);
    expect(errorOf(() => s(-1))).toMatch(/warmupCosine: step: expected >= 0, got -1/);
  });
});

test('a tiny regression problem trains with an MLP of nn.Linear layers + AdamW + clipping + warmupCosine (loss falls), without leaks', () => {
  const seed = freshSeed();
  const rng = new Random(seed);
  const before = memoryStats().count;
  const N = 64, Din = 5, Dout = 3;
  const Wt = randomArray(rng, Dout * Din);
  const X = randomArray(rng, N * Din);
  const Y = new Float64Array(N * Dout);
  for (let r = 0; r < N; r++) for (let o = 0; o < Dout; o++) {
    let s = 0.5 * o;
    for (let i = 0; i < Din; i++) s += X[r * Din + i] * Wt[o * Din + i];
    Y[r * Dout + o] = s;
  }
  const model = new nn.MLP(Din, [16], Dout, { seed });
  const opt = new optim.AdamW(model.parameters(), { lr: 0.02, weightDecay: 0 });
  const sched = optim.warmupCosine({ lr: 0.02, warmup: 10, total: 300, minLr: 0.002 });
  const x = tensorFrom(X, [N, Din]);
  const y = tensorFrom(Y, [N, Dout]);
  const losses: number[] = [];
  for (let step = 0; step < 300; step++) {
    scope(() => {
      opt.zeroGrad();
      const d = ops.sub(model.forward(x), y);
      const loss = ops.mean(ops.mul(d, d));
      loss.backward();
      optim.clipGradNorm(model.parameters(), 10);
      opt.lr = sched(step);
      opt.step();
      losses.push(loss.item());
    });
  }
  expect(losses[losses.length - 1]).toBeLessThan(0.05 * losses[0]);
  x.dispose();
  y.dispose();
  opt.zeroGrad();
  opt.dispose();
  model.dispose();
  expect(memoryStats().count).toBe(before);
});
