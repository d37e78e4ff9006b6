// Losses: float64 references, gradCheck on fresh random inputs, reductions, ignoreIndex,
// micro-batch invariance with an explicit normalizer, bad input errors.
import { ops, tensor, zeros, Random, memoryStats, scope } from '../src';
import { freshSeed, randomArray, tensorFrom, gradCheck, expectClose, errorOf, asF64 } from './helpers';

const prod = (s: readonly number[]): number => s.reduce((x, y) => x * y, 1);

describe('l2Normalize', () => {
  test('forward + backward on each axis, odd sizes', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const shape of [[1], [7, 3], [3, 65], [2, 7, 5]]) {
      for (let axis = -1; axis >= -shape.length; axis--) {
        const ax = axis + shape.length;
        // A single-element row normalises to sign(x): its true gradient is exactly 0, so float32
        // rounding (~1e-7 / |x|) can only be judged by an absolute bound; keep |x| >= 0.5 there.
        const single = shape[ax] === 1;
        const x = randomArray(rng, prod(shape)).map((v) => (single ? Math.sign(v || 1) * (0.5 + Math.abs(v)) : v));
        gradCheck({
          inputs: [x],
          atol: single ? 1e-5 : undefined,
          shapes: [shape],
          op: ([x]) => ops.l2Normalize(x, axis),
          ref: ([x]) => {
            const outer = prod(shape.slice(0, ax)), dim = shape[ax], inner = prod(shape.slice(ax + 1));
            const y = new Float64Array(x.length);
            for (let o = 0; o < outer; o++)
              for (let i = 0; i < inner; i++) {
                let s = 0;
                for (let d = 0; d < dim; d++) s += x[o * dim * inner + d * inner + i] ** 2;
                const nr = Math.max(Math.sqrt(s), 1e-12);
                for (let d = 0; d < dim; d++) y[o * dim * inner + d * inner + i] = x[o * dim * inner + d * inner + i] / nr;
              }
            return y;
          },
          seed,
          maxCoords: 24,
          what: `l2Normalize ${shape} axis ${axis}`,
        });
      }
    }
  });

  test('zero vector gives zeros, not NaN', () => {
    const y = ops.l2Normalize(zeros([2, 3]));
    expect(Array.from(y.toFloat32Array())).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

function refBce(x: Float64Array, t: Float64Array, w: Float64Array | null): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const wi = w ? w[i % w.length] : 1;
    out[i] = wi * (Math.max(x[i], 0) - x[i] * t[i] + Math.log1p(Math.exp(-Math.abs(x[i]))));
  }
  return out;
}
const sumOf = (a: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
};

describe('bceWithLogits', () => {
  test('all reductions, weights, odd sizes: forward + backward', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const shape of [[1], [7], [65, 3], [3, 257]]) {
      const n = prod(shape);
      const t = new Float64Array(n);
      for (let i = 0; i < n; i++) t[i] = rng.uniform() < 0.3 ? rng.uniform() : rng.int(2);
      const T = tensorFrom(t, shape);
      const tt = asF64(T);
      for (const reduction of ['mean', 'sum', 'none'] as const) {
        for (const wkind of ['none', 'full', 'last'] as const) {
          const wShape = wkind === 'full' ? shape : [shape[shape.length - 1]];
          const wv = wkind === 'none' ? null : Float64Array.from(Float32Array.from(randomArray(rng, prod(wShape)).map(Math.abs)));
          const W = wv ? tensorFrom(wv, wShape) : null;
          gradCheck({
            inputs: [randomArray(rng, n, 4)],
            shapes: [shape],
            op: ([x]) => ops.bceWithLogits(x, T, { reduction, weight: W }),
            ref: ([x]) => {
              const l = refBce(x, tt, wv);
              return reduction === 'none' ? l : [reduction === 'sum' ? sumOf(l) : sumOf(l) / n];
            },
            seed,
            maxCoords: 24,
            // Loss and gradient are differences of larger terms (x − x·t; σ(x) − t, ~6e-6 for x = 12,
            // t = 1): a single element is judged against the terms' scale (|x| ~ 4, the float error of
            // σ ~ 6e-8), not relative to a value that can cancel to ~0.
            floor: 1,
            atol: 1e-6,
            what: `bce ${shape} ${reduction} w=${wkind}`,
          });
        }
      }
    }
  });

  test('extreme logits stay finite', () => {
    const x = tensor([1000, -1000, 80, -80]);
    const t = tensor([0, 1, 1, 0]);
    const l = ops.bceWithLogits(x, t, { reduction: 'none' }).toFloat32Array();
    expectClose(l, [1000, 1000, 0, 0], 1e-6, 'extreme');
  });

  test('bad input', () => {
    expect(errorOf(() => ops.bceWithLogits(zeros([2, 3]), zeros([3, 2])))).toMatch(/bceWithLogits: targets: expected shape \[2, 3\], got \[3, 2\]/);
    expect(errorOf(() => ops.bceWithLogits(zeros([2, 3]), zeros([2, 3]), { weight: zeros([2]) }))).toMatch(/bceWithLogits: weight: expected shape \[2, 3\] or \[3\], got \[2\]/);
    expect(errorOf(() => ops.bceWithLogits(zeros([2]), zeros([2]), { reduction: 'avg' as never }))).toMatch(/reduction: expected 'mean', 'sum' or 'none', got avg/);
  });
});

function refCE(x: Float64Array, t: Int32Array, N: number, C: number, ignore: number | undefined): { rows: Float64Array; count: number } {
  const rows = new Float64Array(N);
  let count = 0;
  for (let i = 0; i < N; i++) {
    if (ignore !== undefined && t[i] === ignore) continue;
    count++;
    let m = -Infinity;
    for (let j = 0; j < C; j++) m = Math.max(m, x[i * C + j]);
    let s = 0;
    for (let j = 0; j < C; j++) s += Math.exp(x[i * C + j] - m);
    rows[i] = m + Math.log(s) - x[i * C + t[i]];
  }
  return { rows, count };
}

describe('crossEntropy', () => {
  test('reductions and ignoreIndex, odd sizes: forward + backward', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const [N, C] of [[1, 1], [7, 3], [65, 7], [3, 257]]) {
      for (const ignore of [undefined, -100]) {
        const t = new Int32Array(N);
        for (let i = 0; i < N; i++) t[i] = ignore !== undefined && rng.uniform() < 0.3 ? ignore : rng.int(C);
        const T = tensor(t, [N], { dtype: 'i32' });
        for (const reduction of ['mean', 'sum', 'none'] as const) {
          gradCheck({
            inputs: [randomArray(rng, N * C, 3)],
            shapes: [[N, C]],
            op: ([x]) => ops.crossEntropy(x, T, { reduction, ignoreIndex: ignore }),
            ref: ([x]) => {
              const { rows, count } = refCE(x, t, N, C, ignore);
              if (reduction === 'none') return rows;
              return [reduction === 'sum' ? sumOf(rows) : count === 0 ? 0 : sumOf(rows) / count];
            },
            seed,
            maxCoords: 24,
            what: `CE ${N}x${C} ${reduction} ignore=${ignore}`,
          });
        }
      }
    }
  });

  test('large logits are stable; all-ignored mean is 0', () => {
    const x = tensor([[1000, 0, -1000], [0, 1e4, 0]]);
    const l = ops.crossEntropy(x, tensor([1, 1], [2], { dtype: 'i32' }), { reduction: 'none' }).toFloat32Array();
    expectClose(l, [1000, 0], 1e-6, 'stable CE');
    const z = ops.crossEntropy(x, tensor([-1, -1], [2], { dtype: 'i32' }), { ignoreIndex: -1 });
    expect(z.item()).toBe(0);
  });

  test('micro-batch invariance: sum of parts with the global normalizer equals the full batch', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const N = 10, C = 5;
    const x = randomArray(rng, N * C);
    const t = new Int32Array(N).map(() => rng.int(C));
    const X = tensorFrom(x, [N, C], true);
    ops.crossEntropy(X, tensor(t, [N], { dtype: 'i32' })).backward();
    const full = X.grad!.toFloat32Array();
    const parts = new Float32Array(N * C);
    for (const [a, b] of [[0, 3], [3, 10]]) {
      const Xp = tensorFrom(x.slice(a * C, b * C), [b - a, C], true);
      ops.crossEntropy(Xp, tensor(t.slice(a, b), [b - a], { dtype: 'i32' }), { normalizer: N }).backward();
      parts.set(Xp.grad!.toFloat32Array(), a * C);
    }
    expectClose(parts, full, 1e-6, 'micro-batch', seed);
  });

  test('bad input', () => {
    const x = zeros([2, 3]);
    expect(errorOf(() => ops.crossEntropy(x, tensor([0, 3], [2], { dtype: 'i32' })))).toMatch(/crossEntropy: targets: expected class ids in \[0, 3\), got 3 at row 1/);
    expect(errorOf(() => ops.crossEntropy(x, tensor([0, 1], [2])))).toMatch(/crossEntropy: targets: expected dtype i32, got f32/);
    expect(errorOf(() => ops.crossEntropy(x, tensor([0], [1], { dtype: 'i32' })))).toMatch(/crossEntropy: targets: expected shape \[2\], got \[1\]/);
    expect(errorOf(() => ops.crossEntropy(zeros([3]), tensor([0], [1], { dtype: 'i32' })))).toMatch(/crossEntropy: logits: expected rank 2/);
    expect(errorOf(() => ops.crossEntropy(x, tensor([0, 1], [2], { dtype: 'i32' }), { reduction: 'sum', normalizer: 4 }))).toMatch(/normalizer: only valid with reduction 'mean'/);
  });
});

function refInfoNCE(q: Float64Array, p: Float64Array, ng: Float64Array, N: number, K: number, D: number, shared: boolean, tau: number): Float64Array {
  const rows = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const logits: number[] = [];
    let s = 0;
    for (let d = 0; d < D; d++) s += q[i * D + d] * p[i * D + d];
    logits.push(s / tau);
    for (let j = 0; j < K; j++) {
      let t = 0;
      const off = shared ? j * D : (i * K + j) * D;
      for (let d = 0; d < D; d++) t += q[i * D + d] * ng[off + d];
      logits.push(t / tau);
    }
    // (m − x0) + log Σ exp(x − m), with the max term's 1 split off into log1p: when the positive is the
    // max, m + log(...) − x0 cancels in double and the finite differences of a saturated row (loss
    // ~1e-9 at τ = 0.05) were off by ~1e-3 relative (seed 151644918).
    const m = Math.max(...logits);
    const top = logits.indexOf(m);
    const rest = logits.reduce((a, l, j) => (j === top ? a : a + Math.exp(l - m)), 0);
    rows[i] = m - logits[0] + Math.log1p(rest);
  }
  return rows;
}

describe('infoNCE', () => {
  test('per-row and shared negatives, reductions, temperatures: forward + backward', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const [N, K, D] of [[1, 1, 1], [7, 3, 5], [3, 65, 7], [65, 7, 3]]) {
      for (const shared of [false, true]) {
        for (const reduction of ['mean', 'sum', 'none'] as const) {
          const tau = [1, 0.1, 0.05][rng.int(3)];
          const negShape = shared ? [K, D] : [N, K, D];
          gradCheck({
            inputs: [randomArray(rng, N * D, 0.5), randomArray(rng, N * D, 0.5), randomArray(rng, prod(negShape), 0.5)],
            shapes: [[N, D], [N, D], negShape],
            op: ([q, p, ng]) => ops.infoNCE(q, p, ng, { temperature: tau, reduction }),
            ref: ([q, p, ng]) => {
              const rows = refInfoNCE(q, p, ng, N, K, D, shared, tau);
              return reduction === 'none' ? rows : [reduction === 'sum' ? sumOf(rows) : sumOf(rows) / N];
            },
            seed,
            maxCoords: 16,
            tol: 2e-3,
            // Sharp temperatures saturate rows: a negative's gradient p_j·q/τ can be ~1e-8, below what
            // central differences of an O(1) double loss resolve (~1e-10 absolute), so 16 sampled
            // coordinates that are all tiny failed the relative check (seed 1579451025).
            atol: 1e-7,
            what: `infoNCE N=${N} K=${K} D=${D} shared=${shared} ${reduction} tau=${tau}`,
          });
        }
      }
    }
  });

  test('bad input and no leaks', () => {
    const q = zeros([2, 3]);
    expect(errorOf(() => ops.infoNCE(q, zeros([2, 4]), zeros([5, 3])))).toMatch(/infoNCE: positive: expected shape \[2, 3\], got \[2, 4\]/);
    expect(errorOf(() => ops.infoNCE(q, zeros([2, 3]), zeros([3, 5, 3])))).toMatch(/infoNCE: negatives: expected shape \[2, K, 3\] or \[M, 3\], got \[3, 5, 3\]/);
    expect(errorOf(() => ops.infoNCE(q, zeros([2, 3]), zeros([5, 3]), { temperature: 0 }))).toMatch(/infoNCE: temperature: expected >= /);
    const before = memoryStats().count;
    const Q = tensor(new Float32Array(6).fill(0.1), [2, 3], { requiresGrad: true });
    scope(() => {
      ops.infoNCE(Q, ops.l2Normalize(tensor(new Float32Array(6).fill(1), [2, 3])), tensor(new Float32Array(15).fill(0.2), [5, 3]), { temperature: 0.1 }).backward();
    });
    Q.dispose();
    expect(memoryStats().count).toBe(before);
  });
});
