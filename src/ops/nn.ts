// Neural-network ops with fused native forward and backward kernels: softmax, logSoftmax,
// layerNorm (last axis), embedding (dense gradient, or a row-sparse one merged into
// weight.sparseGrad so a 10^6-row table never gets a dense gradient).
import { native } from '../native';
import { Tensor, empty, formatShape, shapeSize, keep, tensor } from '../tensor';
import { record } from '../autograd';
import { checkTensor, checkNumber, normAxis } from './validate';

declare module '../native' {
  interface NativeBinding {
    softmaxForward(y: NativeStorage, x: NativeStorage, outer: number, dim: number, inner: number, log: boolean): void;
    softmaxBackward(dx: NativeStorage, y: NativeStorage, dy: NativeStorage, outer: number, dim: number, inner: number, log: boolean): void;
    layerNormForward(
      y: NativeStorage, mean: NativeStorage, rstd: NativeStorage, x: NativeStorage, w: NativeStorage | null,
      b: NativeStorage | null, rows: number, cols: number, eps: number,
    ): void;
    layerNormBackward(
      dx: NativeStorage, dw: NativeStorage | null, db: NativeStorage | null, dy: NativeStorage, x: NativeStorage,
      mean: NativeStorage, rstd: NativeStorage, w: NativeStorage | null, rows: number, cols: number,
    ): void;
    embeddingForward(out: NativeStorage, weight: NativeStorage, idx: NativeStorage, n: number, vocab: number, dim: number): void;
    /** out [rows, dim] = 0, then out[idx[i]] += src[i]. */
    indexAddRows(out: NativeStorage, src: NativeStorage, idx: NativeStorage, n: number, rows: number, dim: number): void;
  }
}

/** [outer, dim, inner] view of a shape around one axis. */
export function axisSplit(shape: readonly number[], axis: number): { outer: number; dim: number; inner: number } {
  return {
    outer: shapeSize(shape.slice(0, axis)),
    dim: shape[axis],
    inner: shapeSize(shape.slice(axis + 1)),
  };
}

function softmaxImpl(op: string, x: Tensor, axis: number, log: boolean): Tensor {
  checkTensor(op, 'x', x, { dtype: 'f32' });
  if (x.rank === 0) throw new Error(`${op}: x: expected rank >= 1, got a scalar`);
  const ax = normAxis(op, axis, x.rank);
  const { outer, dim, inner } = axisSplit(x.shape, ax);
  const y = empty(x.shape, { device: x.device });
  native().softmaxForward(y.storage, x.storage, outer, dim, inner, log);
  // The backward needs the output; a view keeps its bytes alive even if the caller disposes y.
  const saved = y.view(y.shape);
  return record(op, y, [x], (g) => {
    const dx = empty(x.shape, { device: x.device });
    native().softmaxBackward(dx.storage, saved.storage, g.storage, outer, dim, inner, log);
    return [dx];
  }, [saved]);
}

/** exp(x) / sum(exp(x)) along `axis` (default last), max-shifted for stability. */
export function softmax(x: Tensor, axis = -1): Tensor {
  return softmaxImpl('softmax', x, axis, false);
}

/** x - logsumexp(x) along `axis` (default last). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return softmaxImpl('logSoftmax', x, axis, true);
}

/**
 * LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * weight + bias, with weight and bias
 * of shape [lastDim] (each optional). Statistics in float64; fused forward and backward kernels.
 */
export function layerNorm(x: Tensor, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const op = 'layerNorm';
  checkTensor(op, 'x', x, { dtype: 'f32' });
  if (x.rank === 0) throw new Error(`${op}: x: expected rank >= 1, got a scalar`);
  const cols = x.shape[x.rank - 1];
  if (cols === 0) throw new Error(`${op}: x: the normalised (last) axis must not be empty, got ${formatShape(x.shape)}`);
  if (weight != null) checkTensor(op, 'weight', weight, { dtype: 'f32', shape: [cols], device: x.device });
  if (bias != null) checkTensor(op, 'bias', bias, { dtype: 'f32', shape: [cols], device: x.device });
  checkNumber(op, 'eps', eps, { min: Number.MIN_VALUE });
  const rows = x.size / cols;
  const y = empty(x.shape, { device: x.device });
  const mean = empty([rows], { device: x.device });
  const rstd = empty([rows], { device: x.device });
  native().layerNormForward(y.storage, mean.storage, rstd.storage, x.storage, weight?.storage ?? null, bias?.storage ?? null, rows, cols, eps);
  const inputs: Tensor[] = [x];
  if (weight != null) inputs.push(weight);
  if (bias != null) inputs.push(bias);
  return record(op, y, inputs, (g) => {
    const dx = empty(x.shape, { device: x.device });
    const dw = weight != null && weight.requiresGrad ? empty([cols], { device: x.device }) : null;
    const db = bias != null && bias.requiresGrad ? empty([cols], { device: x.device }) : null;
    native().layerNormBackward(dx.storage, dw?.storage ?? null, db?.storage ?? null, g.storage, x.storage, mean.storage, rstd.storage, weight?.storage ?? null, rows, cols);
    const res: (Tensor | null)[] = [x.requiresGrad ? dx : null];
    if (!x.requiresGrad) dx.dispose();
    if (weight != null) res.push(dw);
    if (bias != null) res.push(db);
    return res;
  }, [mean, rstd]);
}

export interface EmbeddingOptions {
  /**
   * Row-sparse gradient: the backward accumulates {rows, values} for the looked-up rows into
   * weight.sparseGrad (merged across calls) and leaves weight.grad alone. For large tables with a
   * sparse optimiser (optim.SparseAdam / optim.SparseAdagrad).
   */
  sparse?: boolean;
}

/** Sorted unique ids of `idx` and, for each position, the index of its id in that list. */
function uniqueInverse(idx: Int32Array): { rows: Int32Array; inverse: Int32Array } {
  const sorted = Int32Array.from(idx).sort();
  let r = 0;
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[r++] = sorted[i];
  const rows = sorted.slice(0, r);
  const pos = new Map<number, number>();
  for (let i = 0; i < rows.length; i++) pos.set(rows[i], i);
  const inverse = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) inverse[i] = pos.get(idx[i]) as number;
  return { rows, inverse };
}

/**
 * Merges a row-sparse gradient {rows (may repeat), values [n, D]} into weight.sparseGrad. The merged
 * result has unique sorted rows; its tensors are kept (they outlive scopes) until the optimiser or
 * zeroGrad disposes them.
 */
export function accumulateSparseGrad(weight: Tensor, rowIds: Int32Array, values: Tensor): void {
  const dim = weight.size / Math.max(weight.shape[0], 1);
  const prev = weight.sparseGrad;
  const prevRows = prev !== null ? prev.rows.toInt32Array() : new Int32Array(0);
  const all = new Int32Array(prevRows.length + rowIds.length);
  all.set(prevRows, 0);
  all.set(rowIds, prevRows.length);
  const { rows, inverse } = uniqueInverse(all);
  const R = rows.length;
  const nb = native();
  const merged = keep(empty([R, ...weight.shape.slice(1)], { device: weight.device }));
  const invNew = tensor(inverse.subarray(prevRows.length), [rowIds.length], { dtype: 'i32', device: weight.device });
  nb.indexAddRows(merged.storage, values.storage, invNew.storage, rowIds.length, R, dim);
  invNew.dispose();
  if (prev !== null) {
    const invOld = tensor(inverse.subarray(0, prevRows.length), [prevRows.length], { dtype: 'i32', device: weight.device });
    const tmp = empty(merged.shape, { device: weight.device });
    nb.indexAddRows(tmp.storage, prev.values.storage, invOld.storage, prevRows.length, R, dim);
    nb.addInto(merged.storage, tmp.storage, merged.size);
    tmp.dispose();
    invOld.dispose();
    prev.rows.dispose();
    prev.values.dispose();
  }
  const rowsT = keep(tensor(rows, [R], { dtype: 'i32', device: weight.device }));
  weight.sparseGrad = { rows: rowsT, values: merged };
}

/**
 * Embedding lookup: weight [V, ...rowShape] gathered at i32 `indices` of any shape →
 * [...indices.shape, ...rowShape]. An index outside [0, V) is an error naming its position.
 */
export function embedding(weight: Tensor, indices: Tensor, opts: EmbeddingOptions = {}): Tensor {
  const op = 'embedding';
  checkTensor(op, 'weight', weight, { dtype: 'f32' });
  if (weight.rank < 2) throw new Error(`${op}: weight: expected rank >= 2 ([V, D]), got ${formatShape(weight.shape)}`);
  checkTensor(op, 'indices', indices, { dtype: 'i32', device: weight.device });
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: options: expected an object, got ${String(opts)}`);
  if (opts.sparse !== undefined && typeof opts.sparse !== 'boolean') throw new TypeError(`${op}: sparse: expected a boolean, got ${typeof opts.sparse}`);
  const sparse = opts.sparse === true;
  const V = weight.shape[0];
  const rowShape = weight.shape.slice(1);
  const D = shapeSize(rowShape);
  const n = indices.size;
  const out = empty([...indices.shape, ...rowShape], { device: weight.device });
  native().embeddingForward(out.storage, weight.storage, indices.storage, n, V, D);
  const savedIdx = indices.view(indices.shape);
  return record(op, out, [weight], (g) => {
    if (sparse) {
      accumulateSparseGrad(weight, savedIdx.toInt32Array(), g);
      return [null];
    }
    const dw = empty(weight.shape, { device: weight.device });
    native().indexAddRows(dw.storage, g.storage, savedIdx.storage, n, V, D);
    return [dw];
  }, [savedIdx]);
}
