// softmax / logSoftmax / layerNorm / embedding: float64 references, gradCheck, sparse gradients,
// bad-input errors.
import { ops, tensor, zeros, Random, memoryStats, scope, noGrad } from '../src';
import { freshSeed, randomArray, tensorFrom, gradCheck, expectClose, errorOf, asF64 } from './helpers';

const prod = (s: readonly number[]): number => s.reduce((x, y) => x * y, 1);

function refSoftmax(x: Float64Array, shape: readonly number[], axis: number, log: boolean): Float64Array {
  const outer = prod(shape.slice(0, axis));
  const dim = shape[axis];
  const inner = prod(shape.slice(axis + 1));
  const y = new Float64Array(x.length);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      const at = (d: number): number => o * dim * inner + d * inner + i;
      let m = -Infinity;
      for (let d = 0; d < dim; d++) m = Math.max(m, x[at(d)]);
      let s = 0;
      for (let d = 0; d < dim; d++) s += Math.exp(x[at(d)] - m);
      for (let d = 0; d < dim; d++) y[at(d)] = log ? x[at(d)] - m - Math.log(s) : Math.exp(x[at(d)] - m) / s;
    }
  return y;
}

describe('softmax / logSoftmax', () => {
  test('forward + backward on every axis, odd sizes', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const shape of [[1], [7], [3, 65], [257, 3], [3, 7, 5], [2, 1, 3]]) {
      for (let axis = -shape.length; axis < shape.length; axis++) {
        const ax = axis < 0 ? axis + shape.length : axis;
        for (const log of [false, true]) {
          gradCheck({
            inputs: [randomArray(rng, prod(shape), 3)],
            shapes: [shape],
            op: ([x]) => (log ? ops.logSoftmax(x, axis) : ops.softmax(x, axis)),
            ref: ([x]) => refSoftmax(x, shape, ax, log),
            seed,
            maxCoords: 16,
            what: `${log ? 'logSoftmax' : 'softmax'} ${shape} axis ${axis}`,
          });
        }
      }
    }
  });

  test('large logits stay finite (max-shifted)', () => {
    const x = tensor([1000, 1001, -1000, 50], [1, 4]);
    const y = ops.softmax(x).toFloat32Array();
    const ly = ops.logSoftmax(x).toFloat32Array();
    expectClose(y, refSoftmax(asF64(x), [1, 4], 1, false), 1e-6, 'softmax large');
    expectClose(ly, refSoftmax(asF64(x), [1, 4], 1, true), 1e-6, 'logSoftmax large');
  });

  test('bad input', () => {
    expect(errorOf(() => ops.softmax(zeros([2, 3]), 2))).toMatch(/softmax: axis: expected an integer in \[-2, 1\], got 2/);
    expect(errorOf(() => ops.softmax(tensor(1)))).toMatch(/softmax: x: expected rank >= 1/);
    expect(errorOf(() => ops.logSoftmax(tensor([1], [1], { dtype: 'i32' })))).toMatch(/logSoftmax: x: expected dtype f32, got i32/);
  });
});

function refLayerNorm(x: Float64Array, w: Float64Array | null, b: Float64Array | null, rows: number, cols: number, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let j = 0; j < cols; j++) m += x[r * cols + j];
    m /= cols;
    let v = 0;
    for (let j = 0; j < cols; j++) v += (x[r * cols + j] - m) ** 2;
    v /= cols;
    const rs = 1 / Math.sqrt(v + eps);
    for (let j = 0; j < cols; j++) y[r * cols + j] = (x[r * cols + j] - m) * rs * (w ? w[j] : 1) + (b ? b[j] : 0);
  }
  return y;
}

describe('layerNorm', () => {
  test('forward + backward with/without affine params, odd sizes', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const shape of [[1, 1], [3, 7], [65, 3], [2, 3, 257], [7, 1]]) {
      const cols = shape[shape.length - 1];
      const rows = prod(shape) / cols;
      for (const affine of [true, false]) {
        const inputs = [randomArray(rng, prod(shape), 2)];
        const shapes: number[][] = [shape];
        if (affine) {
          inputs.push(randomArray(rng, cols), randomArray(rng, cols));
          shapes.push([cols], [cols]);
        }
        gradCheck({
          inputs,
          shapes,
          op: ([x, w, b]) => ops.layerNorm(x, w, b, 1e-5),
          ref: ([x, w, b]) => refLayerNorm(x, affine ? w : null, affine ? b : null, rows, cols, 1e-5),
          seed,
          tol: cols === 1 ? 2e-3 : 1e-3,
          maxCoords: 24,
          what: `layerNorm ${shape} affine=${affine}`,
        });
      }
    }
  });

  test('large-mean rows keep precision (float64 statistics)', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const x = randomArray(rng, 4 * 257);
    for (let i = 0; i < x.length; i++) x[i] += 1e4;
    const t = tensorFrom(x, [4, 257]);
    expectClose(ops.layerNorm(t).toFloat32Array(), refLayerNorm(asF64(t), null, null, 4, 257, 1e-5), 1e-3, 'large mean', seed);
  });

  test('bad input', () => {
    const x = zeros([2, 3]);
    expect(errorOf(() => ops.layerNorm(x, zeros([4])))).toMatch(/layerNorm: weight: expected shape \[3\], got \[4\]/);
    expect(errorOf(() => ops.layerNorm(x, null, zeros([2])))).toMatch(/layerNorm: bias: expected shape \[3\], got \[2\]/);
    expect(errorOf(() => ops.layerNorm(x, null, null, 0))).toMatch(/layerNorm: eps: expected >= /);
    expect(errorOf(() => ops.layerNorm(zeros([2, 0])))).toMatch(/layerNorm: x: the normalised \(last\) axis must not be empty/);
  });
});

describe('embedding', () => {
  test('forward gathers rows; dense backward scatters with duplicates', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const [V, D, idxShape] of [[1, 1, [3]], [7, 3, [2, 5]], [65, 7, [257]], [257, 65, [3, 1]]] as const) {
      const n = prod(idxShape);
      const idx = new Int32Array(n);
      for (let i = 0; i < n; i++) idx[i] = rng.int(V);
      const w = randomArray(rng, V * D);
      gradCheck({
        inputs: [w],
        shapes: [[V, D]],
        op: ([W]) => ops.embedding(W, tensor(idx, [...idxShape], { dtype: 'i32' })),
        ref: ([W]) => {
          const y = new Float64Array(n * D);
          for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) y[i * D + d] = W[idx[i] * D + d];
          return y;
        },
        seed,
        maxCoords: 32,
        what: `embedding V=${V} D=${D}`,
      });
    }
  });

  test('output shape is indices.shape + row shape', () => {
    const W = zeros([5, 2, 3]);
    const y = ops.embedding(W, tensor([[0, 1], [4, 4]], undefined, { dtype: 'i32' }));
    expect(y.shape).toEqual([2, 2, 2, 3]);
  });

  test('sparse gradient: unique sorted rows, summed values, merged across calls, no dense grad', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const V = 1000, D = 5;
    const W = tensorFrom(randomArray(rng, V * D), [V, D], true);
    const idx1 = new Int32Array([7, 3, 7, 999, 0]);
    const idx2 = new Int32Array([3, 500, 3]);
    const G1 = randomArray(rng, idx1.length * D);
    const G2 = randomArray(rng, idx2.length * D);
    const dense = new Float64Array(V * D);
    const g1 = tensorFrom(G1, [idx1.length, D]);
    const g2 = tensorFrom(G2, [idx2.length, D]);
    const add = (idx: Int32Array, g: Float64Array): void => {
      for (let i = 0; i < idx.length; i++) for (let d = 0; d < D; d++) dense[idx[i] * D + d] += g[i * D + d];
    };
    add(idx1, asF64(g1));
    add(idx2, asF64(g2));
    scope(() => {
      ops.embedding(W, tensor(idx1, [idx1.length], { dtype: 'i32' }), { sparse: true }).backward(g1);
      ops.embedding(W, tensor(idx2, [idx2.length], { dtype: 'i32' }), { sparse: true }).backward(g2);
    });
    expect(W.grad).toBeNull();
    const sg = W.sparseGrad;
    expect(sg).not.toBeNull();
    if (sg === null) return;
    const rows = Array.from(sg.rows.toInt32Array());
    expect(rows).toEqual([0, 3, 7, 500, 999]);
    expect(sg.values.shape).toEqual([5, D]);
    const ref = new Float64Array(rows.length * D);
    rows.forEach((r, i) => {
      for (let d = 0; d < D; d++) ref[i * D + d] = dense[r * D + d];
    });
    expectClose(sg.values.toFloat32Array(), ref, 1e-6, 'sparse values', seed);
    W.dispose(); // frees the sparse gradient too
  });

  test('a 10^6-row table never gets a dense gradient (memory stays O(rows touched))', () => {
    const V = 1_000_000, D = 8;
    const W = zeros([V, D], { requiresGrad: true });
    const before = memoryStats().bytes;
    scope(() => {
      ops.embedding(W, tensor([999_999, 5, 5, 123_456], [4], { dtype: 'i32' }), { sparse: true }).backward(tensor(new Float32Array(32).fill(1), [4, D]));
    });
    expect(W.grad).toBeNull();
    expect(Array.from(W.sparseGrad!.rows.toInt32Array())).toEqual([5, 123_456, 999_999]);
    expect(W.sparseGrad!.values.shape).toEqual([3, D]);
    expect(memoryStats().bytes - before).toBeLessThan(4096); // the sparse gradient only, not V*D floats
    W.dispose();
  });

  test('out-of-range and wrong-dtype indices are clear errors', () => {
    const W = zeros([4, 2]);
    expect(errorOf(() => ops.embedding(W, tensor([0, 4, 1], [3], { dtype: 'i32' })))).toMatch(/embedding: indices: expected values in \[0, 4\), got 4 at flat position 1/);
    expect(errorOf(() => ops.embedding(W, tensor([-1], [1], { dtype: 'i32' })))).toMatch(/got -1 at flat position 0/);
    expect(errorOf(() => ops.embedding(W, tensor([0], [1])))).toMatch(/embedding: indices: expected dtype i32, got f32/);
    expect(errorOf(() => ops.embedding(zeros([4]), tensor([0], [1], { dtype: 'i32' })))).toMatch(/embedding: weight: expected rank >= 2/);
  });

  test('no leaks (dense and sparse paths)', () => {
    const before = memoryStats().count;
    const W = tensor(new Float32Array(20), [10, 2], { requiresGrad: true });
    scope(() => {
      const y = ops.embedding(W, tensor([1, 2, 1], [3], { dtype: 'i32' }));
      const z = ops.softmax(ops.layerNorm(y));
      z.backward(tensor(new Float32Array(6).fill(1), [3, 2]));
      ops.embedding(W, tensor([1, 2, 1], [3], { dtype: 'i32' }), { sparse: true }).backward(tensor(new Float32Array(6).fill(1), [3, 2]));
    });
    noGrad(() => undefined);
    W.dispose();
    expect(memoryStats().count).toBe(before);
  });
});
