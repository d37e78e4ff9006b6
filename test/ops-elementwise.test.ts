// Elementwise ops: forward against float64 references with numpy broadcasting, backward against
// finite differences (gradCheck), i32 paths, dropout determinism, bad-input errors, no leaks.
import { ops, tensor, zeros, scope, memoryStats, Random, Tensor, backendInfo } from '../src';
import { native } from '../src/native';
import { freshSeed, randomArray, tensorFrom, asF64, expectClose, gradCheck, errorOf, gelu } from './helpers';

type Shape = readonly number[];

function size(s: Shape): number {
  return s.reduce((p, d) => p * d, 1);
}

function bshape(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Naive float64 broadcasting: element of `x` (shape xs) at output multi-index. */
function at(x: ArrayLike<number>, xs: Shape, idx: number[]): number {
  const off = idx.length - xs.length;
  let flat = 0;
  for (let i = 0; i < xs.length; i++) flat = flat * xs[i] + (xs[i] === 1 ? 0 : idx[i + off]);
  return x[flat];
}

function refBinary(f: (x: number, y: number) => number, a: ArrayLike<number>, as: Shape, b: ArrayLike<number>, bs: Shape): Float64Array {
  const os = bshape(as, bs);
  const out = new Float64Array(size(os));
  const idx = new Array<number>(os.length).fill(0);
  for (let k = 0; k < out.length; k++) {
    let r = k;
    for (let d = os.length - 1; d >= 0; d--) {
      idx[d] = r % os[d];
      r = Math.floor(r / os[d]);
    }
    out[k] = f(at(a, as, idx), at(b, bs, idx));
  }
  return out;
}

const binaryOps: [string, (a: Tensor, b: Tensor) => Tensor, (x: number, y: number) => number][] = [
  ['add', ops.add, (x, y) => x + y],
  ['sub', ops.sub, (x, y) => x - y],
  ['mul', ops.mul, (x, y) => x * y],
  ['div', ops.div, (x, y) => x / y],
  ['maximum', ops.maximum, (x, y) => Math.max(x, y)],
  ['minimum', ops.minimum, (x, y) => Math.min(x, y)],
];

// Broadcasting edge cases: same shape, [1] vs [n], [a,1,c] vs [b,1], 0-d scalars, rows, columns,
// empty dims, and sizes above the parallel threshold.
const shapePairs: [Shape, Shape][] = [
  [[1], [1]],
  [[7], [7]],
  [[1], [65]],
  [[257], [1]],
  [[3, 1, 5], [4, 1]],
  [[], [3, 7]],
  [[65, 3], []],
  [[], []],
  [[65, 3], [65, 1]],
  [[3, 65], [65]],
  [[2, 0, 3], [3]],
  [[2, 1, 3], [0, 1]],
  [[257, 129], [129]],
  [[257, 129], [257, 1]],
  [[131, 257], [131, 257]],
  [[2, 3, 4, 5, 6], [3, 1, 5, 1]],
];

// Values away from 0 so div is well conditioned and max/min have no near-ties.
function values(rng: Random, n: number): Float64Array {
  const v = randomArray(rng, n);
  for (let i = 0; i < n; i++) v[i] = Math.sign(v[i] || 1) * (0.5 + Math.abs(v[i]));
  return v;
}

describe('binary ops with broadcasting', () => {
  test.each(binaryOps)('%s forward matches the float64 reference on broadcast shapes', (_name, op, f) => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const [as, bs] of shapePairs) {
      const a = tensorFrom(values(rng, size(as)), as);
      const b = tensorFrom(values(rng, size(bs)), bs);
      const y = op(a, b);
      expect(y.shape).toEqual(bshape(as, bs));
      expectClose(y.toFloat32Array(), refBinary(f, asF64(a), as, asF64(b), bs), 1e-6, `${_name} ${JSON.stringify(as)} ${JSON.stringify(bs)}`, seed);
      // And with the operands swapped (the other broadcast direction).
      const z = op(b, a);
      expectClose(z.toFloat32Array(), refBinary(f, asF64(b), bs, asF64(a), as), 1e-6, `${_name} swapped ${JSON.stringify(bs)} ${JSON.stringify(as)}`, seed);
      for (const t of [a, b, y, z]) t.dispose();
    }
  });

  test.each(binaryOps)('%s backward reduces gradients to each input shape', (name, op, f) => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const pairs: [Shape, Shape][] = [[[7], [7]], [[1], [65]], [[3, 1, 5], [4, 1]], [[], [3, 7]], [[65, 3], [65, 1]], [[3, 7], [7]], [[2, 3], []]];
    for (const [as, bs] of pairs) {
      gradCheck({
        what: `${name} ${JSON.stringify(as)} ${JSON.stringify(bs)}`,
        seed: rng.nextU32(),
        inputs: [values(rng, size(as)), values(rng, size(bs))],
        shapes: [as, bs],
        op: ([a, b]) => op(a, b),
        ref: ([a, b]) => refBinary(f, a, as, b, bs),
        tol: 2e-3,
      });
    }
  });

  test('maximum/minimum split the gradient evenly on ties', () => {
    const a = tensor([1, 2, 5], [3], { requiresGrad: true });
    const b = tensor([1, 3, 4], [3], { requiresGrad: true });
    ops.sum(ops.maximum(a, b)).backward();
    expect(Array.from(a.grad!.toFloat32Array())).toEqual([0.5, 0, 1]);
    expect(Array.from(b.grad!.toFloat32Array())).toEqual([0.5, 1, 0]);
    a.grad = null;
    b.grad = null;
    ops.sum(ops.minimum(a, b)).backward();
    expect(Array.from(a.grad!.toFloat32Array())).toEqual([0.5, 1, 0]);
    expect(Array.from(b.grad!.toFloat32Array())).toEqual([0.5, 0, 1]);
  });

  test('a tensor used twice accumulates both gradients (x * x)', () => {
    const x = tensor([1.5, -2, 3], [3], { requiresGrad: true });
    ops.sum(ops.mul(x, x)).backward();
    expect(Array.from(x.grad!.toFloat32Array())).toEqual([3, -4, 6]);
  });

  test('i32 add/sub/mul/maximum/minimum broadcast and wrap like int32', () => {
    const a = tensor(new Int32Array([1, -2, 3, 2147483647, -7, 9]), [2, 3]);
    const b = tensor(new Int32Array([10, 20, 30]), [3]);
    expect(Array.from(ops.add(a, b).toInt32Array())).toEqual([11, 18, 33, (2147483647 + 10) | 0, 13, 39]);
    expect(Array.from(ops.sub(a, b).toInt32Array())).toEqual([-9, -22, -27, 2147483637, -27, -21]);
    expect(Array.from(ops.mul(a, b).toInt32Array())).toEqual([10, -40, 90, Math.imul(2147483647, 10), -140, 270]);
    expect(Array.from(ops.maximum(a, b).toInt32Array())).toEqual([10, 20, 30, 2147483647, 20, 30]);
    expect(Array.from(ops.minimum(a, b).toInt32Array())).toEqual([1, -2, 3, 10, -7, 9]);
    expect(ops.add(a, b).dtype).toBe('i32');
    // Random i32 against a reference, above the parallel threshold.
    const rng = new Random(freshSeed());
    const n = 70001;
    const x = new Int32Array(n).map(() => rng.nextU32() | 0);
    const y = new Int32Array(n).map(() => rng.nextU32() | 0);
    const tx = tensor(x, [n]);
    const ty = tensor(y, [n]);
    const got = ops.mul(tx, ty).toInt32Array();
    let ok = true;
    for (let i = 0; i < n; i++) ok = ok && got[i] === Math.imul(x[i], y[i]);
    expect(ok).toBe(true);
  });

  test('comparisons return f32 0/1 with broadcasting', () => {
    const a = tensor([[1, 2, 3], [4, 5, 6]]);
    const b = tensor([2, 5, 3]);
    expect(ops.greater(a, b).toArray()).toEqual([[0, 0, 0], [1, 0, 1]]);
    expect(ops.less(a, b).toArray()).toEqual([[1, 1, 0], [0, 0, 0]]);
    expect(ops.equal(a, b).toArray()).toEqual([[0, 0, 1], [0, 1, 0]]);
    expect(ops.greater(a, b).dtype).toBe('f32');
    const x = tensor([1, 2], [2], { requiresGrad: true });
    expect(ops.greater(x, b.shape.length ? tensor([0]) : b).requiresGrad).toBe(false);
  });

  test('bad input: incompatible shapes, dtypes, disposed tensors, non-tensors', () => {
    const a = zeros([2, 3]);
    const b = zeros([4]);
    expect(errorOf(() => ops.add(a, b))).toMatch(/add: cannot broadcast a \[2, 3\] with b \[4\].*3 vs 4/);
    expect(errorOf(() => ops.mul(zeros([3, 1, 5]), zeros([4, 2])))).toMatch(/mul: cannot broadcast a \[3, 1, 5\] with b \[4, 2\]/);
    const i = tensor(new Int32Array([1, 2, 3]), [3]);
    expect(errorOf(() => ops.add(zeros([3]), i))).toMatch(/add: a and b must have the same dtype, got a f32 and b i32/);
    expect(errorOf(() => ops.div(i, i))).toMatch(/div: expected dtype f32.*got i32/);
    expect(errorOf(() => ops.greater(i, i))).toMatch(/greater: expected dtype f32/);
    const d = zeros([3]);
    d.dispose();
    expect(errorOf(() => ops.sub(d, zeros([3])))).toMatch(/sub: a: tensor \[3\] has been disposed/);
    expect(errorOf(() => ops.add(zeros([3]), 2 as unknown as Tensor))).toMatch(/add: b: expected a Tensor, got number/);
  });
});

// ---- unary and scalar ops ----

const sig = (v: number): number => 1 / (1 + Math.exp(-v));

type Unary = [string, (x: Tensor) => Tensor, (v: number) => number, (rng: Random, n: number) => Float64Array];
const normal = (rng: Random, n: number): Float64Array => randomArray(rng, n, 1.5);
const positive = (rng: Random, n: number): Float64Array => randomArray(rng, n).map((v) => 0.2 + Math.abs(v));
// Away from the kinks of relu/abs/clamp so central differences are valid.
const awayFromZero = (rng: Random, n: number): Float64Array => values(rng, n);

const unaryOps: Unary[] = [
  ['neg', ops.neg, (v) => -v, normal],
  ['exp', ops.exp, Math.exp, normal],
  ['log', ops.log, Math.log, positive],
  ['sqrt', ops.sqrt, Math.sqrt, positive],
  ['tanh', ops.tanh, Math.tanh, normal],
  ['sigmoid', ops.sigmoid, sig, normal],
  ['silu', ops.silu, (v) => v * sig(v), normal],
  ['relu', ops.relu, (v) => Math.max(v, 0), awayFromZero],
  ['gelu', ops.gelu, gelu, normal],
  ['abs', ops.abs, Math.abs, awayFromZero],
  ['square', ops.square, (v) => v * v, normal],
  ['addScalar(2.5)', (x) => ops.addScalar(x, 2.5), (v) => v + 2.5, normal],
  ['mulScalar(-3)', (x) => ops.mulScalar(x, -3), (v) => v * -3, normal],
  ['powScalar(2.5)', (x) => ops.powScalar(x, 2.5), (v) => v ** 2.5, positive],
  ['powScalar(-1)', (x) => ops.powScalar(x, -1), (v) => v ** -1, positive],
  ['powScalar(3)', (x) => ops.powScalar(x, 3), (v) => v ** 3, normal],
  ['clamp(-0.7, 0.9)', (x) => ops.clamp(x, -0.7, 0.9), (v) => Math.min(Math.max(v, -0.7), 0.9), (rng, n) => values(rng, n).map((v) => (Math.abs(Math.abs(v) - 0.8) < 0.11 ? v * 2 : v))],
];

describe('unary and scalar ops', () => {
  test.each(unaryOps)('%s forward on odd sizes and above the parallel threshold', (name, op, f, gen) => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const shape of [[1], [3], [7, 1], [65], [257, 3], [], [0, 5], [40001]] as Shape[]) {
      const x = tensorFrom(gen(rng, size(shape)), shape);
      const y = op(x);
      expect(y.shape).toEqual(shape);
      const xs = asF64(x);
      expectClose(y.toFloat32Array(), xs.map(f), 2e-6, `${name} ${JSON.stringify(shape)}`, seed);
      x.dispose();
      y.dispose();
    }
  });

  test.each(unaryOps)('%s backward matches finite differences', (name, op, f, gen) => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const shape of [[1], [7], [3, 5], [65]] as Shape[]) {
      gradCheck({
        what: `${name} ${JSON.stringify(shape)}`,
        seed: rng.nextU32(),
        inputs: [gen(rng, size(shape))],
        shapes: [shape],
        op: ([x]) => op(x),
        ref: ([x]) => x.map(f),
        tol: 2e-3,
      });
    }
  });

  test('gelu deep in the negative tail, value by value (1 + erf would cancel there)', () => {
    const v = [-3, -4, -5, -6, -7, -8, -9, -10];
    const y = ops.gelu(tensor(v)).toFloat32Array();
    v.forEach((x, i) => expect(Math.abs(y[i] - gelu(Math.fround(x))) / Math.abs(gelu(Math.fround(x)))).toBeLessThan(1e-5));
  });

  test('exp / sigmoid / silu at the float range limits (vectorised exp path)', () => {
    const v = [0, 1, -1, 88, 88.72, 89, 1000, -87, -88, -103, -200, NaN, Infinity, -Infinity, 1e-8, 20, -20];
    const x = tensor(v);
    const xs = x.toFloat32Array();
    const e = ops.exp(x).toFloat32Array();
    const s = ops.sigmoid(x).toFloat32Array();
    xs.forEach((xv, i) => {
      const ref = Math.fround(Math.exp(xv));
      if (Number.isNaN(ref)) expect(e[i]).toBeNaN();
      else if (!Number.isFinite(ref)) expect(e[i]).toBe(ref);
      else if (ref < 1e-37) expect(Math.abs(e[i] - ref)).toBeLessThanOrEqual(Math.abs(ref) * 1e-6 + 1e-44);
      else expect(Math.abs(e[i] - ref) / ref).toBeLessThan(3e-7);
      const sref = 1 / (1 + Math.exp(-xv));
      if (Number.isNaN(sref)) expect(s[i]).toBeNaN();
      else expect(Math.abs(s[i] - sref)).toBeLessThan(1e-7 * Math.max(1, sref) + 1e-44);
    });
    expect(e[6]).toBe(Infinity);
    expect(e[10]).toBe(0);
  });

  test('clamp with infinite bounds and gradient at the boundary', () => {
    const x = tensor([-2, 0, 3], [3], { requiresGrad: true });
    expect(Array.from(ops.clamp(x, -Infinity, 1).toFloat32Array())).toEqual([-2, 0, 1]);
    ops.sum(ops.clamp(x, 0, 3)).backward();
    expect(Array.from(x.grad!.toFloat32Array())).toEqual([0, 1, 1]);
  });

  test('bad input: dtype, NaN parameters, bad clamp bounds', () => {
    const i = tensor(new Int32Array([1, 2]), [2]);
    expect(errorOf(() => ops.exp(i))).toMatch(/exp: x: expected dtype f32, got i32/);
    expect(errorOf(() => ops.addScalar(zeros([2]), NaN))).toMatch(/addScalar: s: expected a number, got NaN/);
    expect(errorOf(() => ops.mulScalar(zeros([2]), '2' as unknown as number))).toMatch(/mulScalar: s: expected a number, got 2/);
    expect(errorOf(() => ops.clamp(zeros([2]), 1, 0))).toMatch(/clamp: expected lo <= hi, got lo 1 and hi 0/);
    expect(errorOf(() => ops.sigmoid(null as unknown as Tensor))).toMatch(/sigmoid: x: expected a Tensor, got null/);
  });
});

describe('where', () => {
  test('forward and backward with three-way broadcasting', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const cases: [Shape, Shape, Shape][] = [[[7], [7], [7]], [[3, 1], [1, 5], []], [[65], [1], [65]], [[2, 3, 4], [3, 1], [4]]];
    for (const [cs, as, bs] of cases) {
      const c = new Float64Array(size(cs)).map(() => (rng.uniform() < 0.5 ? 1 : 0));
      const cond = tensorFrom(c, cs);
      gradCheck({
        what: `where ${JSON.stringify([cs, as, bs])}`,
        seed: rng.nextU32(),
        inputs: [randomArray(rng, size(as)), randomArray(rng, size(bs))],
        shapes: [as, bs],
        op: ([a, b]) => ops.where(cond, a, b),
        ref: ([a, b]) => {
          const os = bshape(cs, bshape(as, bs));
          const ab = refBinary((x, y) => x, a, as, new Float64Array(size(os)), os);
          const bb = refBinary((x, y) => x, b, bs, new Float64Array(size(os)), os);
          const cb = refBinary((x, y) => x, c, cs, new Float64Array(size(os)), os);
          return cb.map((v, i) => (v !== 0 ? ab[i] : bb[i]));
        },
      });
      cond.dispose();
    }
  });

  test('bad input', () => {
    expect(errorOf(() => ops.where(zeros([2]), zeros([3]), zeros([3])))).toMatch(/where: cannot broadcast cond \[2\] with broadcast\(a, b\) \[3\]/);
    expect(errorOf(() => ops.where(tensor(new Int32Array([1]), [1]), zeros([3]), zeros([3])))).toMatch(/where: cond: expected dtype f32, got i32/);
  });
});

describe('dropout', () => {
  test('deterministic per seed, keep probability, scaling, backward uses the same mask', () => {
    const n = 100003;
    const x = tensor(new Float32Array(n).fill(2), [n], { requiresGrad: true });
    const p = 0.3;
    const y1 = ops.dropout(x, p, { seed: 1234 });
    const y2 = ops.dropout(x, p, { seed: 1234 });
    const y3 = ops.dropout(x, p, { seed: 1235 });
    const a1 = y1.toFloat32Array();
    expect(Array.from(a1)).toEqual(Array.from(y2.toFloat32Array()));
    expect(Array.from(a1)).not.toEqual(Array.from(y3.toFloat32Array()));
    let zerosCount = 0;
    for (const v of a1) {
      if (v === 0) zerosCount++;
      else expect(Math.abs(v - 2 / 0.7)).toBeLessThan(1e-5);
    }
    // Binomial sd = sqrt(n p (1-p)) ~ 145: 6 sd bound.
    expect(Math.abs(zerosCount - n * p)).toBeLessThan(6 * Math.sqrt(n * p * (1 - p)));
    ops.sum(y1).backward();
    const g = x.grad!.toFloat32Array();
    for (let i = 0; i < n; i++) if ((g[i] === 0) !== (a1[i] === 0)) throw new Error(`mask mismatch at ${i}`);
    expect(Math.abs(g.find((v) => v !== 0)! - 1 / 0.7)).toBeLessThan(1e-6);
  });

  test('mask does not depend on the thread count', () => {
    const n = 200001;
    const x = tensor(new Float32Array(n).fill(1), [n]);
    const before = native().numThreads();
    try {
      native().setNumThreads(1);
      const a = ops.dropout(x, 0.5, { seed: 99 }).toFloat32Array();
      native().setNumThreads(Math.max(2, before));
      const b = ops.dropout(x, 0.5, { seed: 99 }).toFloat32Array();
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    } finally {
      native().setNumThreads(before);
    }
  });

  test('eval mode and p = 0 are the identity with a pass-through gradient', () => {
    const x = tensor([1, 2, 3], [3], { requiresGrad: true });
    const y = ops.dropout(x, 0.9, { training: false });
    expect(Array.from(y.toFloat32Array())).toEqual([1, 2, 3]);
    ops.sum(ops.mul(y, ops.dropout(x, 0))).backward();
    expect(Array.from(x.grad!.toFloat32Array())).toEqual([2, 4, 6]);
  });

  test('bad input', () => {
    expect(errorOf(() => ops.dropout(zeros([2]), 1))).toMatch(/dropout: p: expected a probability in \[0, 1\), got 1/);
    expect(errorOf(() => ops.dropout(zeros([2]), -0.1))).toMatch(/dropout: p: expected >= 0, got -0.1/);
    expect(errorOf(() => ops.dropout(zeros([2]), 0.5, { seed: 1.5 }))).toMatch(/dropout: seed: expected an integer, got 1.5/);
  });
});

describe('memory', () => {
  test('scope frees every temporary of forward and backward', () => {
    const start = memoryStats().count;
    scope(() => {
      const a = tensor([[1, 2, 3], [4, 5, 6]], undefined, { requiresGrad: true });
      const b = tensor([0.5, -1, 2], [3], { requiresGrad: true });
      const c = tensor(0.25, [], { requiresGrad: true });
      const y = ops.mul(ops.sigmoid(ops.add(a, b)), ops.div(ops.maximum(a, c), ops.addScalar(ops.exp(b), 1)));
      const z = ops.where(ops.greater(a, b), ops.gelu(y), ops.minimum(y, c));
      ops.sum(ops.clamp(ops.dropout(z, 0.2, { seed: 3 }), -5, 5)).backward();
      expect(a.grad).not.toBeNull();
      expect(b.grad!.shape).toEqual([3]);
      expect(c.grad!.shape).toEqual([]);
    });
    expect(memoryStats().count).toBe(start);
  });

  test('cuda is reported honestly', () => {
    // The CUDA kernels are compiled in build-cuda; they only run when a GPU answers.
    expect(typeof backendInfo().cuda).toBe('boolean');
  });
});
