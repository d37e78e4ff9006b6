// Shared internals of the elementwise / reduce / movement ops (not exported from the package):
// broadcasting rules and strides, and non-recording kernel calls used by forward and backward rules.
import { native } from '../native';
import { Tensor, empty, formatShape, shapeSize, type Shape } from '../tensor';
import { normAxis } from './validate';

declare module '../native' {
  interface NativeBinding {
    /** x [outer, r, inner] -> out [outer, inner]; op 0 sum (times scale), 1 max, 2 min. */
    ewReduce(op: number, out: NativeStorage, x: NativeStorage, outer: number, r: number, inner: number, scale: number): void;
    /** dst[dstOffset + sum i*dstStrides] = src[srcOffset + sum i*srcStrides] over shape (4-byte words). */
    ewStridedCopy(dst: NativeStorage, dstOffset: number, dstStrides: number[], src: NativeStorage, srcOffset: number, srcStrides: number[], shape: number[]): void;
  }
}

/** Row-major contiguous strides of a shape. */
export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** The numpy broadcast of two shapes; throws naming both shapes when they are incompatible. */
export function broadcastShapes(op: string, a: Shape, b: Shape, names: [string, string] = ['a', 'b']): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(
        `${op}: cannot broadcast ${names[0]} ${formatShape(a)} with ${names[1]} ${formatShape(b)}: ` +
          `dimension ${i} of the result is ${da} vs ${db} (expected equal sizes or 1)`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Element strides of an input of shape `inShape` read over the broadcast output shape `outShape`. */
export function broadcastStrides(inShape: Shape, outShape: Shape): number[] {
  const cs = contiguousStrides(inShape);
  const off = outShape.length - inShape.length;
  const s = new Array<number>(outShape.length).fill(0);
  for (let i = 0; i < inShape.length; i++) s[i + off] = inShape[i] === 1 ? 0 : cs[i];
  return s;
}

export enum RedOp {
  Sum = 0,
  Max = 1,
  Min = 2,
}

/** Axis argument of the reductions: one axis, a list, or undefined for all axes. */
export type Axes = number | readonly number[] | undefined;

/** Normalised, sorted, unique axes; throws on bad or repeated axes. */
export function normAxes(op: string, axes: Axes, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : axes;
  if (!Array.isArray(list)) throw new TypeError(`${op}: axes: expected an integer, an array of integers or undefined, got ${typeof axes}`);
  const out: number[] = [];
  for (const a of list) {
    if (typeof a !== 'number') throw new TypeError(`${op}: axes: expected integers, got ${typeof a}`);
    const n = normAxis(op, a, rank, 'axes');
    if (rank === 0) throw new RangeError(`${op}: axes: a 0-d tensor has no axis ${a}`);
    if (out.includes(n)) throw new RangeError(`${op}: axes: axis ${a} is repeated in [${list.join(', ')}]`);
    out.push(n);
  }
  return out.sort((x, y) => x - y);
}

export function keptShape(shape: Shape, axes: readonly number[], keepDims: boolean): number[] {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}

/**
 * Runs the kernel: reduces `axes` of x (no recording). Groups of adjacent reduced axes are reduced
 * one pass each, last group first; `scaleAll` multiplies a sum (1/N for the mean).
 */
export function rawReduce(op: RedOp, x: Tensor, axes: readonly number[], keepDims: boolean, scaleAll = 1): Tensor {
  const finalShape = keptShape(x.shape, axes, keepDims);
  // Groups [start, end) of adjacent reduced axes.
  const groups: [number, number][] = [];
  for (const a of axes) {
    const last = groups[groups.length - 1];
    if (last !== undefined && last[1] === a) last[1] = a + 1;
    else groups.push([a, a + 1]);
  }
  let cur = x;
  let curShape = [...x.shape];
  for (let gi = groups.length - 1; gi >= 0; gi--) {
    const [s, e] = groups[gi];
    const outer = shapeSize(curShape.slice(0, s));
    const r = shapeSize(curShape.slice(s, e));
    const inner = shapeSize(curShape.slice(e));
    const nextShape = [...curShape.slice(0, s), ...new Array<number>(e - s).fill(1), ...curShape.slice(e)];
    const out = empty(nextShape, { device: x.device });
    native().ewReduce(op, out.storage, cur.storage, outer, r, inner, gi === 0 ? scaleAll : 1);
    if (cur !== x) cur.dispose();
    cur = out;
    curShape = nextShape;
  }
  if (cur === x) {
    // No axes: a copy (numpy sum(axis=()) is the identity).
    const c = empty(x.shape, { device: x.device });
    c.storage.copyFrom(x.storage);
    cur = c;
  }
  if (cur.shape.length === finalShape.length && cur.shape.every((d, i) => d === finalShape[i])) return cur;
  const v = cur.view(finalShape);
  cur.dispose();
  return v;
}

/** Copies x broadcast to `shape` (no recording). */
export function rawBroadcast(x: Tensor, shape: Shape): Tensor {
  const out = empty(shape, { dtype: x.dtype, device: x.device });
  native().ewStridedCopy(out.storage, 0, contiguousStrides(shape), x.storage, 0, broadcastStrides(x.shape, shape), [...shape]);
  return out;
}

/** @internal Sums g (of a broadcast result shape) back to `shape` (no recording). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  const off = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < off || (shape[i - off] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const r = rawReduce(RedOp.Sum, g, axes, true);
  if (r.shape.length === shape.length && r.shape.every((d, i) => d === shape[i])) return r;
  const v = r.view(shape);
  r.dispose();
  return v;
}

