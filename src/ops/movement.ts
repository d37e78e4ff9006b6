// Movement ops: reshape (zero-copy view), transpose, broadcastTo, concat, split, slice, narrow and
// gather (index_select). All but reshape are one strided-copy or gather kernel call; they work on
// f32 and i32 data (gradients for f32 only).
import { native } from '../native';
import { Tensor, empty, zeros, formatShape, shapeSize, type Shape } from '../tensor';
import { record } from '../autograd';
import { checkTensor, checkNumber, normAxis, sameDevice } from './validate';
import { contiguousStrides, rawBroadcast, sumTo } from './ew-util';

declare module '../native' {
  interface NativeBinding {
    /** x [outer, n, inner], indices [m] -> out [outer, m, inner] (4-byte words); indices checked natively. */
    ewGather(out: NativeStorage, x: NativeStorage, indices: NativeStorage, outer: number, n: number, inner: number, m: number): void;
    /** dx [outer, n, inner] = scatter-add of dy [outer, m, inner] (dx overwritten). */
    ewGatherBackward(dx: NativeStorage, dy: NativeStorage, indices: NativeStorage, outer: number, n: number, inner: number, m: number): void;
  }
}

function checkShapeArg(op: string, name: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${op}: ${name}: expected an array of integers, got ${typeof shape}`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isInteger(d)) throw new TypeError(`${op}: ${name}: expected integers, got ${String(d)} in [${shape.join(', ')}]`);
  }
  return shape as number[];
}

// ---- reshape ----

/** Same data, new shape (zero-copy view). One dimension may be -1 (inferred). */
export function reshape(x: Tensor, shape: Shape): Tensor {
  checkTensor('reshape', 'x', x);
  const s = [...checkShapeArg('reshape', 'shape', shape)];
  const inferred = s.filter((d) => d === -1).length;
  if (inferred > 1) throw new Error(`reshape: shape: at most one -1 is allowed, got ${formatShape(s)}`);
  for (const d of s) if (d < -1) throw new RangeError(`reshape: shape: expected dimensions >= 0 (or one -1), got ${formatShape(s)}`);
  if (inferred === 1) {
    const known = shapeSize(s.filter((d) => d !== -1));
    const i = s.indexOf(-1);
    if (known === 0 || x.size % known !== 0) {
      throw new Error(`reshape: cannot reshape x ${formatShape(x.shape)} (${x.size} elements) into ${formatShape(s)}`);
    }
    s[i] = x.size / known;
  }
  if (shapeSize(s) !== x.size) {
    throw new Error(`reshape: cannot reshape x ${formatShape(x.shape)} (${x.size} elements) into ${formatShape(s)} (${shapeSize(s)} elements)`);
  }
  const out = x.view(s);
  return record('reshape', out, [x], (g) => [g.view(x.shape)]);
}

/** Inserts a size-1 axis at `axis` (in [-rank-1, rank]); a zero-copy view. */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  checkTensor('unsqueeze', 'x', x);
  const a = normAxis('unsqueeze', axis, x.rank + 1);
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

/** Removes size-1 axes (all of them, or the given ones, which must have size 1); a zero-copy view. */
export function squeeze(x: Tensor, axes?: number | readonly number[]): Tensor {
  checkTensor('squeeze', 'x', x);
  let drop: number[];
  if (axes === undefined) {
    drop = x.shape.flatMap((d, i) => (d === 1 ? [i] : []));
  } else {
    drop = (typeof axes === 'number' ? [axes] : [...axes]).map((a) => normAxis('squeeze', a, x.rank, 'axes'));
    for (const a of drop) {
      if (x.shape[a] !== 1) throw new Error(`squeeze: axes: axis ${a} of x ${formatShape(x.shape)} has size ${x.shape[a]}, expected 1`);
    }
  }
  return reshape(x, x.shape.filter((_, i) => !drop.includes(i)));
}

/** Merges axes start..end (inclusive, default all) into one; a zero-copy view. */
export function flatten(x: Tensor, start = 0, end = -1): Tensor {
  checkTensor('flatten', 'x', x);
  if (x.rank === 0) return reshape(x, [1]);
  const s = normAxis('flatten', start, x.rank, 'start');
  const e = normAxis('flatten', end, x.rank, 'end');
  if (s > e) throw new RangeError(`flatten: expected start <= end, got start ${start} and end ${end} for rank ${x.rank}`);
  return reshape(x, [...x.shape.slice(0, s), shapeSize(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

// ---- transpose ----

function checkPerm(op: string, perm: readonly number[], rank: number): number[] {
  checkShapeArg(op, 'perm', perm);
  if (perm.length !== rank) throw new Error(`${op}: perm: expected ${rank} axes (the rank of x), got [${perm.join(', ')}]`);
  const p = perm.map((a) => normAxis(op, a, rank, 'perm'));
  const seen = new Set(p);
  if (seen.size !== rank) throw new Error(`${op}: perm: expected a permutation of 0..${rank - 1}, got [${perm.join(', ')}]`);
  return p;
}

function rawTranspose(x: Tensor, perm: readonly number[]): Tensor {
  const shape = perm.map((p) => x.shape[p]);
  const xs = contiguousStrides(x.shape);
  const out = empty(shape, { dtype: x.dtype, device: x.device });
  native().ewStridedCopy(out.storage, 0, contiguousStrides(shape), x.storage, 0, perm.map((p) => xs[p]), shape);
  return out;
}

/** Permutes the axes (default: reverses them, like numpy). Copies the data. */
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  checkTensor('transpose', 'x', x);
  const p = perm === undefined ? Array.from({ length: x.rank }, (_, i) => x.rank - 1 - i) : checkPerm('transpose', perm, x.rank);
  const out = rawTranspose(x, p);
  const inv = new Array<number>(p.length);
  p.forEach((a, i) => (inv[a] = i));
  return record('transpose', out, [x], (g) => [rawTranspose(g, inv)]);
}

// ---- broadcastTo ----

/** x broadcast (numpy rules) to `shape`, materialised. The gradient is summed back. */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  checkTensor('broadcastTo', 'x', x);
  const s = checkShapeArg('broadcastTo', 'shape', shape);
  const off = s.length - x.rank;
  const ok = off >= 0 && x.shape.every((d, i) => d === s[i + off] || d === 1) && s.every((d) => d >= 0);
  if (!ok) throw new Error(`broadcastTo: cannot broadcast x ${formatShape(x.shape)} to ${formatShape(s)} (expected each dimension of x to equal the target's or be 1)`);
  const out = rawBroadcast(x, s);
  return record('broadcastTo', out, [x], (g) => [sumTo(g, x.shape)]);
}

// ---- narrow / slice (strided copies of a box) ----

/** Copies the box [begin, begin + size) of x (no recording). */
function rawSlice(x: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
  const xs = contiguousStrides(x.shape);
  const offset = begin.reduce((acc, b, i) => acc + b * xs[i], 0);
  const out = empty(size, { dtype: x.dtype, device: x.device });
  if (out.size > 0) native().ewStridedCopy(out.storage, 0, contiguousStrides(size), x.storage, offset, xs, [...size]);
  return out;
}

/** Zeros of `shape` with g written into the box at `begin` (the backward of a slice). */
function rawUnslice(g: Tensor, shape: Shape, begin: readonly number[]): Tensor {
  const out = zeros(shape, { device: g.device });
  const os = contiguousStrides(shape);
  const offset = begin.reduce((acc, b, i) => acc + b * os[i], 0);
  if (g.size > 0) native().ewStridedCopy(out.storage, offset, os, g.storage, 0, contiguousStrides(g.shape), [...g.shape]);
  return out;
}

function sliceRecorded(op: string, x: Tensor, begin: number[], size: number[]): Tensor {
  const out = rawSlice(x, begin, size);
  return record(op, out, [x], (g) => [rawUnslice(g, x.shape, begin)]);
}

/**
 * The box of x starting at `begin` with extent `size` (tf.slice semantics; -1 in size means "to
 * the end of that axis"). Copies the data.
 */
export function slice(x: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
  checkTensor('slice', 'x', x);
  checkShapeArg('slice', 'begin', begin);
  checkShapeArg('slice', 'size', size);
  if (begin.length !== x.rank || size.length !== x.rank) {
    throw new Error(`slice: begin and size must have ${x.rank} entries (the rank of x ${formatShape(x.shape)}), got begin [${begin.join(', ')}] and size [${size.join(', ')}]`);
  }
  const sz = size.map((s, i) => (s === -1 ? x.shape[i] - begin[i] : s));
  for (let i = 0; i < x.rank; i++) {
    if (begin[i] < 0 || sz[i] < 0 || begin[i] + sz[i] > x.shape[i]) {
      throw new RangeError(`slice: axis ${i}: the box [${begin[i]}, ${begin[i] + sz[i]}) is outside x ${formatShape(x.shape)} (expected 0 <= begin and begin + size <= ${x.shape[i]})`);
    }
  }
  return sliceRecorded('slice', x, [...begin], sz);
}

/** Elements start .. start + length - 1 of one axis (torch.narrow). Copies the data. */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  checkTensor('narrow', 'x', x);
  const a = normAxis('narrow', axis, x.rank);
  if (x.rank === 0) throw new RangeError('narrow: x is 0-d and has no axis');
  checkNumber('narrow', 'start', start, { integer: true });
  checkNumber('narrow', 'length', length, { integer: true, min: 0 });
  const n = x.shape[a];
  const s = start < 0 ? start + n : start;
  if (s < 0 || s + length > n) {
    throw new RangeError(`narrow: start ${start} and length ${length} select [${s}, ${s + length}) outside axis ${a} of size ${n} (x ${formatShape(x.shape)})`);
  }
  const begin = x.shape.map((_, i) => (i === a ? s : 0));
  const size = x.shape.map((d, i) => (i === a ? length : d));
  return sliceRecorded('narrow', x, begin, size);
}

// ---- concat / split ----

/** Joins tensors along an existing axis (all other dimensions equal; same dtype and device). */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors as unknown) || tensors.length === 0) throw new Error('concat: tensors: expected a non-empty array of tensors');
  tensors.forEach((t, i) => checkTensor('concat', `tensors[${i}]`, t));
  const t0 = tensors[0];
  if (t0.rank === 0) throw new Error('concat: tensors[0]: 0-d tensors cannot be concatenated (expected rank >= 1)');
  const a = normAxis('concat', axis, t0.rank);
  sameDevice('concat', Object.fromEntries(tensors.map((t, i) => [`tensors[${i}]`, t])));
  let total = 0;
  tensors.forEach((t, i) => {
    if (t.dtype !== t0.dtype) throw new TypeError(`concat: tensors[${i}]: expected dtype ${t0.dtype} (as tensors[0]), got ${t.dtype}`);
    const ok = t.rank === t0.rank && t.shape.every((d, k) => k === a || d === t0.shape[k]);
    if (!ok) throw new Error(`concat: tensors[${i}] has shape ${formatShape(t.shape)}, expected ${formatShape(t0.shape.map((d, k) => (k === a ? -1 : d))).replace('-1', '*')} (all dimensions but axis ${a} equal to tensors[0])`);
    total += t.shape[a];
  });
  const shape = t0.shape.map((d, k) => (k === a ? total : d));
  const out = empty(shape, { dtype: t0.dtype, device: t0.device });
  const os = contiguousStrides(shape);
  const starts: number[] = [];
  let at = 0;
  for (const t of tensors) {
    starts.push(at);
    if (t.size > 0) native().ewStridedCopy(out.storage, at * os[a], os, t.storage, 0, contiguousStrides(t.shape), [...t.shape]);
    at += t.shape[a];
  }
  return record('concat', out, [...tensors], (g) =>
    tensors.map((t, i) => (t.requiresGrad ? rawSlice(g, t.shape.map((_, k) => (k === a ? starts[i] : 0)), t.shape) : null)),
  );
}

/**
 * Splits x along an axis: `sizes` as an array of lengths summing to the axis size, or a number of
 * equal sections that must divide it (numpy.split). Returns one tensor per piece (copies).
 */
export function split(x: Tensor, sizesOrCount: number | readonly number[], axis = 0): Tensor[] {
  checkTensor('split', 'x', x);
  if (x.rank === 0) throw new RangeError('split: x is 0-d and has no axis');
  const a = normAxis('split', axis, x.rank);
  const n = x.shape[a];
  let sizes: number[];
  if (typeof sizesOrCount === 'number') {
    checkNumber('split', 'count', sizesOrCount, { integer: true, min: 1 });
    if (n % sizesOrCount !== 0) throw new Error(`split: count ${sizesOrCount} does not divide axis ${a} of size ${n} (x ${formatShape(x.shape)})`);
    sizes = new Array<number>(sizesOrCount).fill(n / sizesOrCount);
  } else {
    sizes = [...checkShapeArg('split', 'sizes', sizesOrCount)];
    if (sizes.some((s) => s < 0)) throw new RangeError(`split: sizes: expected non-negative sizes, got [${sizes.join(', ')}]`);
    const tot = sizes.reduce((p, s) => p + s, 0);
    if (tot !== n) throw new Error(`split: sizes [${sizes.join(', ')}] sum to ${tot}, expected axis ${a} size ${n} (x ${formatShape(x.shape)})`);
  }
  const out: Tensor[] = [];
  let at = 0;
  for (const s of sizes) {
    out.push(sliceRecorded('split', x, x.shape.map((_, k) => (k === a ? at : 0)), x.shape.map((d, k) => (k === a ? s : d))));
    at += s;
  }
  return out;
}

// ---- gather (index_select) ----

/**
 * Selects entries of x along `axis` by i32 `indices` (torch.index_select, generalised to any
 * indices shape: out shape = x.shape[:axis] + indices.shape + x.shape[axis+1:]). Works on f32 and
 * i32 x; gradients (f32) scatter-add back. An index outside [0, size) is an Error naming it.
 */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  checkTensor('gather', 'x', x);
  checkTensor('gather', 'indices', indices, { dtype: 'i32' });
  if (x.rank === 0) throw new RangeError('gather: x is 0-d and has no axis');
  const a = normAxis('gather', axis, x.rank);
  sameDevice('gather', { x, indices });
  const outer = shapeSize(x.shape.slice(0, a));
  const n = x.shape[a];
  const inner = shapeSize(x.shape.slice(a + 1));
  const m = indices.size;
  const shape = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)];
  const out = empty(shape, { dtype: x.dtype, device: x.device });
  try {
    native().ewGather(out.storage, x.storage, indices.storage, outer, n, inner, m);
  } catch (e) {
    out.dispose();
    throw new RangeError(`${(e as Error).message} (axis ${a} of x ${formatShape(x.shape)})`);
  }
  if (x.dtype !== 'f32') return out;
  return record('gather', out, [x], (g) => {
    const dx = empty(x.shape, { device: g.device });
    native().ewGatherBackward(dx.storage, g.storage, indices.storage, outer, n, inner, m);
    return [dx];
  });
}
