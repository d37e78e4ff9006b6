// Movement ops: reshape, transpose, broadcastTo, concat, split, slice, narrow, gather — forward
// against index-arithmetic references, gradients, i32 data, bad input, no leaks.
import { ops, tensor, zeros, scope, memoryStats, Random, Tensor } from '../src';
import { freshSeed, randomArray, tensorFrom, asF64, expectClose, gradCheck, errorOf } from './helpers';

type Shape = readonly number[];
const size = (s: Shape): number => s.reduce((p, d) => p * d, 1);

function unravel(k: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = k % shape[d];
    k = Math.floor(k / shape[d]);
  }
  return idx;
}
function ravel(idx: readonly number[], shape: Shape): number {
  let f = 0;
  for (let d = 0; d < shape.length; d++) f = f * shape[d] + idx[d];
  return f;
}

function refTranspose(x: ArrayLike<number>, shape: Shape, perm: number[]): Float64Array {
  const os = perm.map((p) => shape[p]);
  const out = new Float64Array(size(os));
  for (let k = 0; k < out.length; k++) {
    const oi = unravel(k, os);
    const xi = new Array<number>(shape.length);
    perm.forEach((p, i) => (xi[p] = oi[i]));
    out[k] = x[ravel(xi, shape)];
  }
  return out;
}

function refSlice(x: ArrayLike<number>, shape: Shape, begin: number[], sz: number[]): Float64Array {
  const out = new Float64Array(size(sz));
  for (let k = 0; k < out.length; k++) out[k] = x[ravel(unravel(k, sz).map((v, i) => v + begin[i]), shape)];
  return out;
}

function refGather(x: ArrayLike<number>, shape: Shape, idx: ArrayLike<number>, axis: number): Float64Array {
  const outer = size(shape.slice(0, axis));
  const n = shape[axis];
  const inner = size(shape.slice(axis + 1));
  const out = new Float64Array(outer * idx.length * inner);
  for (let o = 0; o < outer; o++) for (let j = 0; j < idx.length; j++) for (let i = 0; i < inner; i++) out[(o * idx.length + j) * inner + i] = x[(o * n + idx[j]) * inner + i];
  return out;
}

describe('reshape', () => {
  test('zero-copy view, -1 inference, gradient', () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [6], { requiresGrad: true });
    const y = ops.reshape(x, [2, -1]);
    expect(y.shape).toEqual([2, 3]);
    (x.data() as Float32Array)[0] = 10; // shared storage
    expect(y.toArray()).toEqual([[10, 2, 3], [4, 5, 6]]);
    expect(ops.reshape(x, [-1]).shape).toEqual([6]);
    expect(ops.reshape(tensor(5), [1, 1]).shape).toEqual([1, 1]);
    expect(ops.reshape(zeros([0, 3]), [3, 0]).shape).toEqual([3, 0]);
    ops.sum(ops.mul(y, tensor([1, 2, 3]))).backward();
    expect(Array.from(x.grad!.toFloat32Array())).toEqual([1, 2, 3, 1, 2, 3]);
    const i = tensor(new Int32Array([1, 2, 3, 4]), [4]);
    expect(ops.reshape(i, [2, 2]).dtype).toBe('i32');
  });

  test('bad input', () => {
    const x = zeros([2, 3]);
    expect(errorOf(() => ops.reshape(x, [4, 2]))).toMatch(/reshape: cannot reshape x \[2, 3\] \(6 elements\) into \[4, 2\] \(8 elements\)/);
    expect(errorOf(() => ops.reshape(x, [-1, 4]))).toMatch(/reshape: cannot reshape x \[2, 3\] \(6 elements\) into \[-1, 4\]/);
    expect(errorOf(() => ops.reshape(x, [-1, -1]))).toMatch(/at most one -1/);
    expect(errorOf(() => ops.reshape(x, [2, 1.5]))).toMatch(/reshape: shape: expected integers/);
  });
});

describe('unsqueeze, squeeze, flatten', () => {
  test('shapes, shared storage, gradient, errors', () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [2, 1, 3], { requiresGrad: true });
    expect(ops.unsqueeze(x, 0).shape).toEqual([1, 2, 1, 3]);
    expect(ops.unsqueeze(x, -1).shape).toEqual([2, 1, 3, 1]);
    expect(ops.squeeze(x).shape).toEqual([2, 3]);
    expect(ops.squeeze(x, 1).shape).toEqual([2, 3]);
    expect(ops.flatten(x).shape).toEqual([6]);
    expect(ops.flatten(x, 1).shape).toEqual([2, 3]);
    expect(ops.flatten(tensor(2)).shape).toEqual([1]);
    ops.sum(ops.mul(ops.flatten(ops.unsqueeze(ops.squeeze(x), 0)), tensor([1, 2, 3, 4, 5, 6]))).backward();
    expect(Array.from(x.grad!.toFloat32Array())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(errorOf(() => ops.squeeze(x, 0))).toMatch(/squeeze: axes: axis 0 of x \[2, 1, 3\] has size 2, expected 1/);
    expect(errorOf(() => ops.unsqueeze(x, 4))).toMatch(/unsqueeze: axis: expected an integer in \[-4, 3\], got 4/);
    expect(errorOf(() => ops.flatten(x, 2, 1))).toMatch(/flatten: expected start <= end/);
  });
});

describe('transpose and broadcastTo', () => {
  test('transpose forward (default reverse and perms), gradient, i32', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const cases: [Shape, number[] | undefined][] = [[[7], undefined], [[3, 65], undefined], [[257, 129], [1, 0]], [[2, 3, 4], [1, 0, 2]], [[2, 3, 4, 5], [3, 1, 0, 2]], [[2, 0, 3], [2, 0, 1]], [[], undefined]];
    for (const [shape, perm] of cases) {
      const p = perm ?? Array.from({ length: shape.length }, (_, i) => shape.length - 1 - i);
      const x = tensorFrom(randomArray(rng, size(shape)), shape);
      const y = ops.transpose(x, perm);
      expect(y.shape).toEqual(p.map((a) => shape[a]));
      expectClose(y.toFloat32Array(), refTranspose(asF64(x), shape, p), 1e-7, `transpose ${JSON.stringify(shape)}`, seed);
      if (size(shape) > 0 && size(shape) < 100) {
        gradCheck({ what: 'transpose', seed: rng.nextU32(), inputs: [randomArray(rng, size(shape))], shapes: [shape], op: ([t]) => ops.transpose(t, perm), ref: ([t]) => refTranspose(t, shape, p) });
      }
    }
    const i = tensor(new Int32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
    expect(ops.transpose(i).toArray()).toEqual([[1, 4], [2, 5], [3, 6]]);
    expect(errorOf(() => ops.transpose(zeros([2, 3]), [0, 0]))).toMatch(/transpose: perm: expected a permutation of 0..1, got \[0, 0\]/);
    expect(errorOf(() => ops.transpose(zeros([2, 3]), [0]))).toMatch(/transpose: perm: expected 2 axes/);
  });

  test('broadcastTo forward and gradient (sum back)', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const cases: [Shape, Shape][] = [[[1], [65]], [[3, 1], [2, 3, 7]], [[], [4, 5]], [[7], [7]], [[1, 5], [0, 5]]];
    for (const [xs, ts] of cases) {
      const ref = (v: Float64Array): Float64Array => {
        const out = new Float64Array(size(ts));
        for (let k = 0; k < out.length; k++) {
          const oi = unravel(k, ts);
          const off = ts.length - xs.length;
          out[k] = v[ravel(xs.map((d, i) => (d === 1 ? 0 : oi[i + off])), xs)];
        }
        return out;
      };
      gradCheck({ what: `broadcastTo ${JSON.stringify([xs, ts])}`, seed: rng.nextU32(), inputs: [randomArray(rng, size(xs))], shapes: [xs], op: ([t]) => ops.broadcastTo(t, ts), ref: ([t]) => ref(t) });
    }
    expect(errorOf(() => ops.broadcastTo(zeros([2, 3]), [3, 3]))).toMatch(/broadcastTo: cannot broadcast x \[2, 3\] to \[3, 3\]/);
    expect(errorOf(() => ops.broadcastTo(zeros([2, 3]), [3]))).toMatch(/broadcastTo: cannot broadcast x \[2, 3\] to \[3\]/);
  });
});

describe('concat, split, slice, narrow', () => {
  test('concat forward/backward over each axis', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const base: Shape = [3, 4, 5];
    for (let axis = -3; axis < 3; axis++) {
      const a = (axis + 3) % 3;
      const lens = [1, 0, 3];
      const shapes = lens.map((l) => base.map((d, k) => (k === a ? l : d)));
      const total = lens.reduce((p, l) => p + l, 0);
      const outShape = base.map((d, k) => (k === a ? total : d));
      const ref = (xs: Float64Array[]): Float64Array => {
        const out = new Float64Array(size(outShape));
        for (let k = 0; k < out.length; k++) {
          const oi = unravel(k, outShape);
          let j = 0;
          let pos = oi[a];
          while (pos >= lens[j]) pos -= lens[j++];
          out[k] = xs[j][ravel(oi.map((v, d) => (d === a ? pos : v)), shapes[j])];
        }
        return out;
      };
      gradCheck({ what: `concat axis ${axis}`, seed: rng.nextU32(), inputs: shapes.map((s) => randomArray(rng, size(s))), shapes, op: (ts) => ops.concat(ts, axis), ref });
    }
    const i = ops.concat([tensor(new Int32Array([1, 2]), [1, 2]), tensor(new Int32Array([3, 4, 5, 6]), [2, 2])], 0);
    expect(i.toArray()).toEqual([[1, 2], [3, 4], [5, 6]]);
    expect(errorOf(() => ops.concat([zeros([2, 3]), zeros([2, 4])], 0))).toMatch(/concat: tensors\[1\] has shape \[2, 4\], expected \[\*, 3\]/);
    expect(errorOf(() => ops.concat([zeros([2]), tensor(new Int32Array([1]), [1])]))).toMatch(/concat: tensors\[1\]: expected dtype f32/);
    expect(errorOf(() => ops.concat([]))).toMatch(/concat: tensors: expected a non-empty array/);
    expect(errorOf(() => ops.concat([zeros([2])], 1))).toMatch(/concat: axis: expected an integer in \[-1, 0\], got 1/);
  });

  test('split by sizes and by count; gradients flow back to x', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const x = tensorFrom(randomArray(rng, 7 * 6), [7, 6], true);
    const parts = ops.split(x, [2, 0, 5], 0);
    expect(parts.map((p) => p.shape)).toEqual([[2, 6], [0, 6], [5, 6]]);
    const xs = asF64(x);
    expectClose(parts[2].toFloat32Array(), refSlice(xs, [7, 6], [2, 0], [5, 6]), 1e-7, 'split sizes', seed);
    const thirds = ops.split(x, 3, -1);
    expect(thirds.map((p) => p.shape)).toEqual([[7, 2], [7, 2], [7, 2]]);
    expectClose(thirds[1].toFloat32Array(), refSlice(xs, [7, 6], [0, 2], [7, 2]), 1e-7, 'split count', seed);
    // loss = sum(parts[0]) + 2 * sum(thirds[2]) -> grad = indicator of rows 0..1 + 2 * cols 4..5
    ops.add(ops.sum(parts[0]), ops.mulScalar(ops.sum(thirds[2]), 2)).backward();
    const g = x.grad!.toFloat32Array();
    for (let r = 0; r < 7; r++) for (let c = 0; c < 6; c++) expect(g[r * 6 + c]).toBe((r < 2 ? 1 : 0) + (c >= 4 ? 2 : 0));
    expect(errorOf(() => ops.split(x, 4, 0))).toMatch(/split: count 4 does not divide axis 0 of size 7/);
    expect(errorOf(() => ops.split(x, [3, 3], 0))).toMatch(/split: sizes \[3, 3\] sum to 6, expected axis 0 size 7/);
  });

  test('slice and narrow forward/backward; -1 sizes; negative start', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const shape: Shape = [5, 7, 3];
    gradCheck({ what: 'slice', seed: rng.nextU32(), inputs: [randomArray(rng, size(shape))], shapes: [shape], op: ([t]) => ops.slice(t, [1, 2, 0], [3, -1, 2]), ref: ([t]) => refSlice(t, shape, [1, 2, 0], [3, 5, 2]) });
    gradCheck({ what: 'narrow', seed: rng.nextU32(), inputs: [randomArray(rng, size(shape))], shapes: [shape], op: ([t]) => ops.narrow(t, 1, -4, 3), ref: ([t]) => refSlice(t, shape, [0, 3, 0], [5, 3, 3]) });
    const big = tensorFrom(randomArray(rng, 257 * 129), [257, 129]);
    const s = ops.slice(big, [3, 65], [250, 64]);
    expectClose(s.toFloat32Array(), refSlice(asF64(big), [257, 129], [3, 65], [250, 64]), 1e-7, 'big slice', seed);
    expect(ops.narrow(big, 0, 5, 0).shape).toEqual([0, 129]);
    expect(errorOf(() => ops.slice(big, [0, 100], [1, 30]))).toMatch(/slice: axis 1: the box \[100, 130\) is outside x \[257, 129\]/);
    expect(errorOf(() => ops.slice(big, [0], [1]))).toMatch(/slice: begin and size must have 2 entries/);
    expect(errorOf(() => ops.narrow(big, 2, 0, 1))).toMatch(/narrow: axis: expected an integer in \[-2, 1\], got 2/);
    expect(errorOf(() => ops.narrow(big, 0, 250, 10))).toMatch(/narrow: start 250 and length 10 select \[250, 260\) outside axis 0 of size 257/);
  });
});

describe('gather', () => {
  test('forward over each axis, repeated indices, any indices shape, backward scatter-adds', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const shape: Shape = [4, 9, 5];
    for (let axis = 0; axis < 3; axis++) {
      const n = shape[axis];
      const m = 11;
      const idx = new Int32Array(m).map(() => rng.int(n));
      idx[1] = idx[0]; // a repeated index accumulates twice in backward
      const it = tensor(idx, [m], { dtype: 'i32' });
      gradCheck({ what: `gather axis ${axis}`, seed: rng.nextU32(), inputs: [randomArray(rng, size(shape))], shapes: [shape], op: ([t]) => ops.gather(t, it, axis), ref: ([t]) => refGather(t, shape, idx, axis) });
    }
    const x = tensorFrom(randomArray(rng, 257 * 65), [257, 65]);
    const idx = new Int32Array(3 * 7).map(() => rng.int(257));
    const y = ops.gather(x, tensor(idx, [3, 7], { dtype: 'i32' }), 0);
    expect(y.shape).toEqual([3, 7, 65]);
    expectClose(y.toFloat32Array(), refGather(asF64(x), [257, 65], idx, 0), 1e-7, 'gather 2-d indices', seed);
    const xi = tensor(new Int32Array([10, 11, 12, 13, 14, 15]), [3, 2]);
    const yi = ops.gather(xi, tensor(new Int32Array([2, 0]), [2]), 0);
    expect(yi.dtype).toBe('i32');
    expect(yi.toArray()).toEqual([[14, 15], [10, 11]]);
  });

  test('out-of-range and bad indices are clear errors (checked before the kernel)', () => {
    const x = zeros([4, 10]);
    expect(errorOf(() => ops.gather(x, tensor(new Int32Array([1, 12, 3]), [3]), 1))).toMatch(/gather: indices\[1\] = 12 is out of range for an axis of size 10.*axis 1 of x \[4, 10\]/);
    expect(errorOf(() => ops.gather(x, tensor(new Int32Array([-1]), [1]), 0))).toMatch(/gather: indices\[0\] = -1 is out of range/);
    expect(errorOf(() => ops.gather(x, tensor([1, 2]), 0))).toMatch(/gather: indices: expected dtype i32, got f32/);
    expect(errorOf(() => ops.gather(x, tensor(new Int32Array([0]), [1]), 2))).toMatch(/gather: axis: expected an integer in \[-2, 1\], got 2/);
  });
});

describe('memory', () => {
  test('no leaks through forward and backward of every movement op', () => {
    const start = memoryStats().count;
    scope(() => {
      const x = tensor([[1, 2, 3], [4, 5, 6]], undefined, { requiresGrad: true });
      const t = ops.transpose(ops.reshape(x, [3, 2]));
      const c = ops.concat([t, ops.broadcastTo(ops.slice(x, [0, 1], [1, 2]), [2, 2])], 1);
      const [p, q] = ops.split(c, [1, 4], 1);
      const g = ops.gather(q, tensor(new Int32Array([1, 1, 0]), [3]), 0);
      ops.add(ops.sum(ops.narrow(g, 1, 1, 2)), ops.sum(p)).backward();
      expect(x.grad!.shape).toEqual([2, 3]);
    });
    expect(memoryStats().count).toBe(start);
  });

  test('disposed inputs are rejected', () => {
    const d = zeros([2, 2]);
    d.dispose();
    for (const f of [() => ops.reshape(d, [4]), () => ops.transpose(d), () => ops.slice(d, [0, 0], [1, 1]), () => ops.concat([d]), () => ops.gather(d, tensor(new Int32Array([0]), [1]))]) {
      expect(errorOf(f)).toMatch(/: (x|tensors\[0\]): tensor \[2, 2\] has been disposed/);
    }
    expect(errorOf(() => ops.transpose(undefined as unknown as Tensor))).toMatch(/transpose: x: expected a Tensor, got undefined/);
  });
});
