// Losses with fused native kernels: one pass computes the loss and saves its gradient, so the
// backward is a single scale (DESIGN.md §4.3 spirit: never materialise what a second pass would
// recompute). ops.l2Normalize, ops.bceWithLogits, ops.crossEntropy (log-sum-exp stable, ignoreIndex),
// ops.infoNCE (sampled softmax with the positive at index 0; per-row or shared negatives).
import { native } from '../native';
import { Tensor, empty, formatShape, tensor } from '../tensor';
import { record } from '../autograd';
import { checkTensor, checkNumber, normAxis, sameDevice } from './validate';
import { axisSplit } from './nn';

declare module '../native' {
  interface NativeBinding {
    l2NormalizeForward(y: NativeStorage, norm: NativeStorage, x: NativeStorage, outer: number, dim: number, inner: number, eps: number): void;
    l2NormalizeBackward(dx: NativeStorage, dy: NativeStorage, y: NativeStorage, norm: NativeStorage, outer: number, dim: number, inner: number, eps: number): void;
    /** Returns the sum of the (weighted) losses; writes per-element losses (when given) and dlogits. */
    bceWithLogits(loss: NativeStorage | null, dx: NativeStorage, x: NativeStorage, t: NativeStorage, w: NativeStorage | null, wn: number, n: number): number;
    crossEntropyForward(
      loss: NativeStorage, dx: NativeStorage, logits: NativeStorage, targets: NativeStorage | null, n: number, c: number,
      ignoreIndex: number, hasIgnore: boolean,
    ): { count: number; sum: number };
    rowDot(out: NativeStorage, a: NativeStorage, b: NativeStorage, n: number, d: number, scale: number): void;
    rowDotsMany(out: NativeStorage, q: NativeStorage, neg: NativeStorage, n: number, k: number, d: number, scale: number): void;
    concatPosNeg(logits: NativeStorage, pos: NativeStorage, neg: NativeStorage, n: number, k: number): void;
    splitPosNeg(g0: NativeStorage, gneg: NativeStorage, g: NativeStorage, n: number, k: number): void;
    infonceRowsBackward(
      dq: NativeStorage | null, dp: NativeStorage | null, dneg: NativeStorage | null, g0: NativeStorage, gneg: NativeStorage,
      q: NativeStorage, p: NativeStorage, neg: NativeStorage, n: number, k: number, d: number,
    ): void;
    /** out[i] = alpha * src[i] * (gScalar ? g[0] : g[i]). */
    scaleBy(out: NativeStorage, src: NativeStorage, g: NativeStorage, gScalar: boolean, n: number, alpha: number): void;
    /** out[r, :] = alpha * g[r] * src[r, :] (g null: 1). */
    scaleRows(out: NativeStorage, src: NativeStorage, g: NativeStorage | null, rows: number, cols: number, alpha: number): void;
  }
}

export type Reduction = 'mean' | 'sum' | 'none';

export interface LossOptions {
  /** 'mean' (default), 'sum', or 'none' (per-element / per-row losses). */
  reduction?: Reduction;
  /**
   * Divide the summed loss by this instead of the element/row count (reduction 'mean' only). Lets
   * micro-batches and data-parallel shards use the global batch's count (DESIGN.md §12).
   */
  normalizer?: number;
}

function lossOpts(op: string, opts: LossOptions): { reduction: Reduction; normalizer: number | undefined } {
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: options: expected an object, got ${String(opts)}`);
  const reduction = opts.reduction ?? 'mean';
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none') {
    throw new TypeError(`${op}: reduction: expected 'mean', 'sum' or 'none', got ${String(reduction)}`);
  }
  let normalizer: number | undefined;
  if (opts.normalizer !== undefined) {
    normalizer = checkNumber(op, 'normalizer', opts.normalizer, { min: Number.MIN_VALUE });
    if (reduction !== 'mean') throw new Error(`${op}: normalizer: only valid with reduction 'mean', got reduction '${reduction}'`);
  }
  return { reduction, normalizer };
}

/** A scalar tensor holding v on `device`. */
function scalarOn(v: number, device: Tensor['device']): Tensor {
  return tensor(new Float32Array([v]), [], { device });
}

/**
 * Attaches the backward of a loss whose per-element gradient `dsaved` was computed in the forward:
 * reduced losses scale it by the incoming scalar gradient (times alpha), 'none' multiplies rows
 * (rowLen elements per loss value) by the incoming per-row gradient.
 */
function savedGradLoss(name: string, out: Tensor, inputs: Tensor[], dsaved: Tensor, alpha: number, rows: number, rowLen: number, perRow: boolean, extraOwned: Tensor[] = []): Tensor {
  const x = inputs[0];
  return record(name, out, inputs, (g) => {
    const dx = empty(x.shape, { device: x.device });
    if (perRow) native().scaleRows(dx.storage, dsaved.storage, g.storage, rows, rowLen, alpha);
    else native().scaleBy(dx.storage, dsaved.storage, g.storage, true, dx.size, alpha);
    return inputs.map((_, i) => (i === 0 ? dx : null));
  }, [dsaved, ...extraOwned]);
}

/** x / max(||x||_2, eps) along `axis` (default last). */
export function l2Normalize(x: Tensor, axis = -1, eps = 1e-12): Tensor {
  const op = 'l2Normalize';
  checkTensor(op, 'x', x, { dtype: 'f32' });
  if (x.rank === 0) throw new Error(`${op}: x: expected rank >= 1, got a scalar`);
  const ax = normAxis(op, axis, x.rank);
  checkNumber(op, 'eps', eps, { min: Number.MIN_VALUE });
  const { outer, dim, inner } = axisSplit(x.shape, ax);
  const y = empty(x.shape, { device: x.device });
  const norm = empty([outer * inner], { device: x.device });
  native().l2NormalizeForward(y.storage, norm.storage, x.storage, outer, dim, inner, eps);
  const saved = y.view(y.shape);
  return record(op, y, [x], (g) => {
    const dx = empty(x.shape, { device: x.device });
    native().l2NormalizeBackward(dx.storage, g.storage, saved.storage, norm.storage, outer, dim, inner, eps);
    return [dx];
  }, [saved, norm]);
}

export interface BceOptions extends LossOptions {
  /** Per-element weights: the shape of logits, or [lastDim] (per-class, broadcast over rows). */
  weight?: Tensor | null;
}

/**
 * Binary cross-entropy on logits, stable for any magnitude:
 * w · (max(x, 0) − x·t + log(1 + exp(−|x|))). targets are probabilities in [0, 1] (soft labels
 * allowed). Differentiable in logits only (targets and weight get no gradient).
 */
export function bceWithLogits(logits: Tensor, targets: Tensor, opts: BceOptions = {}): Tensor {
  const op = 'bceWithLogits';
  checkTensor(op, 'logits', logits, { dtype: 'f32' });
  checkTensor(op, 'targets', targets, { dtype: 'f32', shape: logits.shape, device: logits.device });
  const { reduction, normalizer } = lossOpts(op, opts);
  const w = opts.weight ?? null;
  if (w !== null) {
    checkTensor(op, 'weight', w, { dtype: 'f32', device: logits.device });
    const last = logits.rank > 0 ? logits.shape[logits.rank - 1] : 1;
    const same = w.rank === logits.rank && w.shape.every((d, i) => d === logits.shape[i]);
    if (!same && !(w.rank === 1 && w.shape[0] === last)) {
      throw new Error(`${op}: weight: expected shape ${formatShape(logits.shape)} or [${last}], got ${formatShape(w.shape)}`);
    }
  }
  const n = logits.size;
  const dx = empty(logits.shape, { device: logits.device });
  const nb = native();
  if (reduction === 'none') {
    const loss = empty(logits.shape, { device: logits.device });
    nb.bceWithLogits(loss.storage, dx.storage, logits.storage, targets.storage, w?.storage ?? null, w?.size ?? 1, n);
    return savedGradLoss(op, loss, [logits, targets], dx, 1, n, 1, true);
  }
  const sum = nb.bceWithLogits(null, dx.storage, logits.storage, targets.storage, w?.storage ?? null, w?.size ?? 1, n);
  const div = reduction === 'sum' ? 1 : normalizer ?? n;
  const out = scalarOn(div === 0 ? 0 : sum / div, logits.device);
  return savedGradLoss(op, out, [logits, targets], dx, div === 0 ? 0 : 1 / div, 1, n, false);
}

export interface CrossEntropyOptions extends LossOptions {
  /** Rows whose target equals this contribute neither loss nor gradient, and are not counted by 'mean'. */
  ignoreIndex?: number;
}

/**
 * Softmax cross-entropy: logits [N, C], integer class targets i32 [N] → logsumexp(x) − x[t]
 * (max-shifted). 'mean' divides by the number of non-ignored rows (0 when all are ignored, so a
 * padding-only micro-batch contributes 0, not NaN). Differentiable in logits.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropy';
  checkTensor(op, 'logits', logits, { dtype: 'f32', rank: 2 });
  const [N, C] = logits.shape;
  checkTensor(op, 'targets', targets, { dtype: 'i32', shape: [N], device: logits.device });
  const { reduction, normalizer } = lossOpts(op, opts);
  const hasIgnore = opts.ignoreIndex !== undefined;
  const ignore = hasIgnore ? checkNumber(op, 'ignoreIndex', opts.ignoreIndex, { integer: true }) : 0;
  if (C === 0 && N > 0) throw new Error(`${op}: logits: expected at least one class, got ${formatShape(logits.shape)}`);
  const loss = empty([N], { device: logits.device });
  const dx = empty(logits.shape, { device: logits.device });
  const { count, sum } = native().crossEntropyForward(loss.storage, dx.storage, logits.storage, targets.storage, N, C, ignore, hasIgnore);
  if (reduction === 'none') return savedGradLoss(op, loss, [logits, targets], dx, 1, N, C, true);
  loss.dispose();
  const div = reduction === 'sum' ? 1 : normalizer ?? count;
  const out = scalarOn(div === 0 ? 0 : sum / div, logits.device);
  return savedGradLoss(op, out, [logits, targets], dx, div === 0 ? 0 : 1 / div, 1, N * C, false);
}

export interface InfoNCEOptions {
  /** Softmax temperature τ > 0: logits are similarities / τ (default 1). */
  temperature?: number;
  /** 'mean' (default) over queries, 'sum', or 'none' ([N]). */
  reduction?: Reduction;
}

/**
 * InfoNCE / sampled softmax: for each query q_i the logits are [⟨q_i, p_i⟩, ⟨q_i, n_ij⟩...] / τ and
 * the positive is class 0. `negatives` is [N, K, D] (per-query negatives, e.g. impressed-unclicked)
 * or [M, D] (shared across the batch: one GEMM). Differentiable in query, positive and negatives.
 * Inputs are used as given (normalise them first with l2Normalize for cosine similarity).
 */
export function infoNCE(query: Tensor, positive: Tensor, negatives: Tensor, opts: InfoNCEOptions = {}): Tensor {
  const op = 'infoNCE';
  checkTensor(op, 'query', query, { dtype: 'f32', rank: 2 });
  const [N, D] = query.shape;
  checkTensor(op, 'positive', positive, { dtype: 'f32', shape: [N, D] });
  checkTensor(op, 'negatives', negatives, { dtype: 'f32' });
  sameDevice(op, { query, positive, negatives });
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: options: expected an object, got ${String(opts)}`);
  const tau = checkNumber(op, 'temperature', opts.temperature ?? 1, { min: Number.MIN_VALUE });
  const { reduction } = lossOpts(op, { reduction: opts.reduction });
  let shared: boolean;
  let K: number;
  if (negatives.rank === 3) {
    if (negatives.shape[0] !== N || negatives.shape[2] !== D) {
      throw new Error(`${op}: negatives: expected shape [${N}, K, ${D}] or [M, ${D}], got ${formatShape(negatives.shape)}`);
    }
    shared = false;
    K = negatives.shape[1];
  } else if (negatives.rank === 2) {
    if (negatives.shape[1] !== D) throw new Error(`${op}: negatives: expected shape [${N}, K, ${D}] or [M, ${D}], got ${formatShape(negatives.shape)}`);
    shared = true;
    K = negatives.shape[0];
  } else {
    throw new Error(`${op}: negatives: expected rank 3 ([N, K, D]) or 2 ([M, D]), got ${formatShape(negatives.shape)}`);
  }
  const inv = 1 / tau;
  const dev = query.device;
  const nb = native();
  const pos = empty([N], { device: dev });
  const neg = empty([N, K], { device: dev });
  nb.rowDot(pos.storage, query.storage, positive.storage, N, D, inv);
  if (shared) nb.gemm(neg.storage, query.storage, negatives.storage, 1, N, K, D, false, true, 0, 0, 0, inv, 0);
  else nb.rowDotsMany(neg.storage, query.storage, negatives.storage, N, K, D, inv);
  const logits = empty([N, K + 1], { device: dev });
  nb.concatPosNeg(logits.storage, pos.storage, neg.storage, N, K);
  pos.dispose();
  neg.dispose();
  const rowLoss = empty([N], { device: dev });
  const dlog = empty([N, K + 1], { device: dev });
  const { sum } = nb.crossEntropyForward(rowLoss.storage, dlog.storage, logits.storage, null, N, K + 1, 0, false);
  logits.dispose();
  let out: Tensor;
  let alpha = inv;
  if (reduction === 'none') {
    out = rowLoss;
  } else {
    rowLoss.dispose();
    const div = reduction === 'sum' ? 1 : N;
    out = scalarOn(div === 0 ? 0 : sum / div, dev);
    alpha = div === 0 ? 0 : inv / div;
  }
  return record(op, out, [query, positive, negatives], (g) => {
    // dlogits scaled by the incoming gradient and 1/τ, split into the positive column and the rest.
    const G = empty([N, K + 1], { device: dev });
    if (reduction === 'none') nb.scaleRows(G.storage, dlog.storage, g.storage, N, K + 1, alpha);
    else nb.scaleBy(G.storage, dlog.storage, g.storage, true, G.size, alpha);
    const g0 = empty([N], { device: dev });
    const gneg = empty([N, K], { device: dev });
    nb.splitPosNeg(g0.storage, gneg.storage, G.storage, N, K);
    G.dispose();
    const dq = query.requiresGrad ? empty([N, D], { device: dev }) : null;
    const dp = positive.requiresGrad ? empty([N, D], { device: dev }) : null;
    const dn = negatives.requiresGrad ? empty(negatives.shape, { device: dev }) : null;
    if (!shared) {
      nb.infonceRowsBackward(dq?.storage ?? null, dp?.storage ?? null, dn?.storage ?? null, g0.storage, gneg.storage, query.storage, positive.storage, negatives.storage, N, K, D);
    } else {
      if (dq !== null) {
        nb.scaleRows(dq.storage, positive.storage, g0.storage, N, D, 1);
        nb.gemm(dq.storage, gneg.storage, negatives.storage, 1, N, D, K, false, false, 0, 0, 0, 1, 1);
      }
      if (dp !== null) nb.scaleRows(dp.storage, query.storage, g0.storage, N, D, 1);
      if (dn !== null) nb.gemm(dn.storage, gneg.storage, query.storage, 1, K, D, N, true, false, 0, 0, 0, 1, 0);
    }
    g0.dispose();
    gneg.dispose();
    return [dq, dp, dn];
  }, [dlog]);
}
