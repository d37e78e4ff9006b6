// Reductions over axes: sum, mean, max, min (numpy/torch semantics; no axes = all axes, giving a
// 0-d tensor unless keepDims). Any axis set becomes one or more [outer, r, inner] kernel passes:
// adjacent reduced axes are merged, so the common cases (last axis, first axis, everything) are a
// single pass. Sums accumulate in double in the kernel.
import { Tensor, formatShape, shapeSize } from '../tensor';
import { record } from '../autograd';
import { checkTensor } from './validate';
import { equal, div, mul, mulScalar } from './elementwise';
import { RedOp, normAxes, keptShape, rawReduce, rawBroadcast, type Axes } from './ew-util';


function reduceOp(name: string, op: RedOp, x: Tensor, axes: Axes, keepDims: boolean, mean: boolean): Tensor {
  checkTensor(name, 'x', x, { dtype: 'f32' });
  if (typeof keepDims !== 'boolean') throw new TypeError(`${name}: keepDims: expected a boolean, got ${typeof keepDims}`);
  const ax = normAxes(name, axes, x.rank);
  const count = shapeSize(ax.map((a) => x.shape[a]));
  if (count === 0 && (op !== RedOp.Sum || mean) && shapeSize(keptShape(x.shape, ax, true)) > 0) {
    throw new Error(`${name}: cannot reduce over zero elements (x ${formatShape(x.shape)}, axes [${ax.join(', ')}]); expected a non-empty reduced extent`);
  }
  const out = rawReduce(op, x, ax, keepDims, mean ? 1 / count : 1);
  const keptKeep = keptShape(x.shape, ax, true);
  return record(name, out, [x], (g) => {
    const gk = g.view(keptKeep);
    if (op === RedOp.Sum) {
      const b = rawBroadcast(gk, x.shape);
      gk.dispose();
      if (!mean) return [b];
      const s = mulScalar(b, 1 / count);
      b.dispose();
      return [s];
    }
    // max/min: the gradient goes to the elements equal to the result, split evenly among ties.
    const yk = out.view(keptKeep);
    const mask = equal(x, yk);
    const cnt = rawReduce(RedOp.Sum, mask, ax, true);
    const w = div(mask, cnt);
    const dx = mul(w, gk);
    for (const t of [yk, mask, cnt, w, gk]) t.dispose();
    return [dx];
  });
}

/** Sum over axes (all when omitted: a 0-d tensor). Accumulates in double. */
export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return reduceOp('sum', RedOp.Sum, x, axes, keepDims, false);
}

/** Mean over axes (all when omitted). */
export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return reduceOp('mean', RedOp.Sum, x, axes, keepDims, true);
}

/** Max over axes (all when omitted); NaN propagates; the gradient is split among tied maxima. */
export function max(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return reduceOp('max', RedOp.Max, x, axes, keepDims, false);
}

/** Min over axes (all when omitted); NaN propagates; the gradient is split among tied minima. */
export function min(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return reduceOp('min', RedOp.Min, x, axes, keepDims, false);
}
