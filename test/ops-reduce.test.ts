// Reductions: sum/mean/max/min over axis sets against float64 references, gradients, long-sum
// accuracy, thread-count independence, bad input.
import { ops, tensor, zeros, scope, memoryStats, Random, Tensor } from '../src';
import { native } from '../src/native';
import { freshSeed, randomArray, tensorFrom, asF64, expectClose, gradCheck, errorOf } from './helpers';

type Shape = readonly number[];
const size = (s: Shape): number => s.reduce((p, d) => p * d, 1);

/** Float64 reduction of x (shape) over axes with combine f from init; keepDims shape handling by caller. */
function refReduce(x: ArrayLike<number>, shape: Shape, axes: number[], kind: 'sum' | 'mean' | 'max' | 'min'): Float64Array {
  const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = new Float64Array(size(outShape)).fill(kind === 'max' ? -Infinity : kind === 'min' ? Infinity : 0);
  const idx = new Array<number>(shape.length).fill(0);
  for (let k = 0; k < size(shape); k++) {
    let r = k;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = r % shape[d];
      r = Math.floor(r / shape[d]);
    }
    let o = 0;
    for (let d = 0; d < shape.length; d++) o = o * outShape[d] + (axes.includes(d) ? 0 : idx[d]);
    const v = x[k];
    if (kind === 'sum' || kind === 'mean') out[o] += v;
    else if (kind === 'max') out[o] = Math.max(out[o], v);
    else out[o] = Math.min(out[o], v);
  }
  if (kind === 'mean') {
    const cnt = size(axes.map((a) => shape[a]));
    for (let i = 0; i < out.length; i++) out[i] /= cnt;
  }
  return out;
}

const kinds: ['sum' | 'mean' | 'max' | 'min', (x: Tensor, axes?: number | number[], keep?: boolean) => Tensor][] = [
  ['sum', ops.sum],
  ['mean', ops.mean],
  ['max', ops.max],
  ['min', ops.min],
];

// [shape, axes (undefined = all)]
const cases: [Shape, number | number[] | undefined][] = [
  [[7], undefined],
  [[1], 0],
  [[65], -1],
  [[3, 65, 5], 1],
  [[3, 65, 5], [0, 2]],
  [[3, 65, 5], [0, 1]],
  [[3, 65, 5], [2, 1, 0]],
  [[257, 3], 0],
  [[257, 3], 1],
  [[2, 3, 4, 5], [1, 3]],
  [[2, 3, 4, 5], [0, 2, 3]],
  [[], undefined],
  [[5, 7], []],
  [[3, 40000], 1],
  [[40000, 3], 0],
  [[2, 0, 3], 0],
  [[1, 70001], undefined],
];

function norm(axes: number | number[] | undefined, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  return (typeof axes === 'number' ? [axes] : axes).map((a) => (a < 0 ? a + rank : a));
}

describe('reductions', () => {
  test.each(kinds)('%s forward over axis sets, keepDims on and off', (kind, op) => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const [shape, axes] of cases) {
      const ax = norm(axes, shape.length);
      if ((kind !== 'sum') && size(ax.map((a) => shape[a])) === 0) continue;
      const x = tensorFrom(randomArray(rng, size(shape)), shape);
      const ref = refReduce(asF64(x), shape, ax, kind);
      for (const keep of [false, true]) {
        const y = op(x, axes, keep);
        const want = keep ? shape.map((d, i) => (ax.includes(i) ? 1 : d)) : shape.filter((_, i) => !ax.includes(i));
        expect(y.shape).toEqual(want);
        expectClose(y.toFloat32Array(), ref, 1e-6, `${kind} ${JSON.stringify(shape)} axes ${JSON.stringify(axes)} keep ${keep}`, seed);
        y.dispose();
      }
      x.dispose();
    }
  });

  test('sum with no axes gives a 0-d scalar; empty reductions', () => {
    const x = tensor([[1, 2], [3, 4]]);
    const s = ops.sum(x);
    expect(s.shape).toEqual([]);
    expect(s.item()).toBe(10);
    expect(ops.mean(x).item()).toBe(2.5);
    expect(ops.max(x, 0).toArray()).toEqual([3, 4]);
    expect(ops.min(x, 1, true).toArray()).toEqual([[1], [3]]);
    expect(ops.sum(zeros([0, 3])).item()).toBe(0);
    expect(ops.sum(zeros([0, 3]), 0).toArray()).toEqual([0, 0, 0]);
    expect(ops.max(zeros([0, 3]), 1).shape).toEqual([0]);
  });

  test('long sums stay accurate (double accumulation) and independent of threads', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const n = 1 << 20;
    // Mean far from 0 with small noise: float accumulation would lose ~1e-4 relative.
    const v = new Float64Array(n).map(() => 1 + 1e-3 * rng.normal());
    const x = tensorFrom(v, [n]);
    const xs = asF64(x);
    let ref = 0;
    for (const e of xs) ref += e;
    const before = native().numThreads();
    try {
      native().setNumThreads(1);
      const s1 = ops.sum(x).item();
      native().setNumThreads(Math.max(2, before));
      const s2 = ops.sum(x).item();
      expect(Math.abs(s1 - ref) / ref).toBeLessThan(1e-7);
      expect(s1).toBe(s2);
      const m = ops.mean(ops.reshape(x, [1024, 1024]), 0);
      const mr = new Float64Array(1024);
      for (let i = 0; i < n; i++) mr[i % 1024] += xs[i] / 1024;
      expectClose(m.toFloat32Array(), mr, 1e-7, 'column mean', seed);
    } finally {
      native().setNumThreads(before);
    }
  });

  test.each(kinds)('%s backward matches finite differences', (kind, op) => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const gcases: [Shape, number | number[] | undefined, boolean][] = [
      [[7], undefined, false],
      [[3, 5], 1, true],
      [[3, 5], 0, false],
      [[2, 3, 4], [0, 2], false],
      [[2, 3, 4], [1], true],
      [[65], -1, false],
      [[], undefined, false],
    ];
    for (const [shape, axes, keep] of gcases) {
      const ax = norm(axes, shape.length);
      gradCheck({
        what: `${kind} ${JSON.stringify(shape)} ${JSON.stringify(axes)}`,
        seed: rng.nextU32(),
        inputs: [randomArray(rng, size(shape))],
        shapes: [shape],
        op: ([x]) => op(x, axes, keep),
        ref: ([x]) => refReduce(x, shape, ax, kind),
        tol: 2e-3,
      });
    }
  });

  test('max/min gradient is split among ties', () => {
    const x = tensor([[3, 1, 3], [2, 2, 0]], undefined, { requiresGrad: true });
    ops.sum(ops.max(x, 1)).backward();
    expect(x.grad!.toArray()).toEqual([[0.5, 0, 0.5], [0.5, 0.5, 0]]);
    x.grad = null;
    ops.min(x).backward();
    expect(x.grad!.toArray()).toEqual([[0, 0, 0], [0, 0, 1]]);
  });

  test('bad input: axis out of range, repeated, wrong dtype, empty max, disposed', () => {
    const x = zeros([2, 3]);
    expect(errorOf(() => ops.sum(x, 2))).toMatch(/sum: axes: expected an integer in \[-2, 1\], got 2/);
    expect(errorOf(() => ops.mean(x, [0, -2]))).toMatch(/mean: axes: axis -2 is repeated/);
    expect(errorOf(() => ops.sum(x, 0.5))).toMatch(/sum: axes: expected an integer/);
    expect(errorOf(() => ops.max(tensor(new Int32Array([1]), [1])))).toMatch(/max: x: expected dtype f32, got i32/);
    expect(errorOf(() => ops.max(zeros([0, 3]), 0))).toMatch(/max: cannot reduce over zero elements \(x \[0, 3\], axes \[0\]\)/);
    expect(errorOf(() => ops.mean(zeros([0])))).toMatch(/mean: cannot reduce over zero elements/);
    expect(errorOf(() => ops.sum(tensor(1), 0))).toMatch(/sum: axes/);
    const d = zeros([2]);
    d.dispose();
    expect(errorOf(() => ops.sum(d))).toMatch(/sum: x: tensor \[2\] has been disposed/);
  });

  test('no leaks through forward and backward', () => {
    const start = memoryStats().count;
    scope(() => {
      const x = tensor([[1, 5, 2], [7, 3, 3]], undefined, { requiresGrad: true });
      const y = ops.add(ops.mean(x, 0, true), ops.max(x, 1, true));
      ops.sum(ops.mul(ops.min(x, [0, 1]), ops.sum(y))).backward();
      expect(x.grad!.shape).toEqual([2, 3]);
    });
    expect(memoryStats().count).toBe(start);
  });
});
