// nn.HSTU: the original HSTU block with quadratic pointwise attention (research/papers.md §2), the
// quality baseline of nn.LinearHSTU:
//   X̃ = LN_in(X);  [U, V, Q, K] = split(SiLU(X̃ W1 + b1))
//   O = hstuAttention(Q, K, V; SiLU(α QKᵀ + rab_pos + rab_time) · scale ⊙ causal)
//   Y = X + Dropout(W2 (U ⊙ LN_out(O)) + b2)
// with a learned relative position bias (shared by heads) and, when timestamps are given, a learned
// log-bucketed time bias. step() serves one new token per sequence against a K/V cache: O(t) per
// token (the linear block's step is O(1)); it equals the full forward at that position.
import { Tensor, tensor, zeros, type Device } from '../tensor';
import { hstuAttention } from '../ops/hstu';
import { silu, mul, add, mulScalar } from '../ops/elementwise';
import { reshape, concat, gather } from '../ops/movement';
import { sum } from '../ops/reduce';
import { checkNumber, checkTensor } from '../ops/validate';
import { Module } from './module';
import { Linear } from './linear';
import { LayerNorm } from './layernorm';
import { Dropout } from './dropout';
import type { SequenceBatchOptions } from './linear-hstu';
import { hstuProject, hstuFinish } from './hstu-parts';

export interface HSTUOptions {
  heads?: number;
  dqk?: number;
  dv?: number;
  dropout?: number;
  /** Positions covered by the relative position bias (default 256); also n of the 1/n scale. */
  maxLen?: number;
  /** Time-bias buckets (default 128), used when timestamps are passed. */
  timeBuckets?: number;
  /** Bucket width in log space (default 0.301, as HSTU). */
  timeBucketDiv?: number;
  /** α on q·k (default 1 / sqrt(dqk)). */
  alpha?: number;
  /** Constant normaliser after SiLU (default 1 / maxLen). */
  scale?: number;
  seed?: number;
  device?: Device;
}

export interface HSTUBatchOptions extends SequenceBatchOptions {
  /** int32 timestamps [B, L] (padded) or [ΣL] (packed): enables the time bias. */
  timestamps?: Tensor | null;
}

/** K/V cache of an HSTU block for serving: every sequence in the batch has the same length t. */
export interface HSTUState {
  /** [B, t, H, dqk] keys so far (null before the first token). */
  keys: Tensor | null;
  /** [B, t, H, dv] values so far. */
  values: Tensor | null;
  /** Timestamps so far, [B][t] row-major (empty when no timestamps are used). */
  timestamps: Int32Array;
  length: number;
}

export class HSTU extends Module {
  readonly dim: number;
  readonly heads: number;
  readonly dqk: number;
  readonly dv: number;
  readonly maxLen: number;
  readonly alpha: number;
  readonly scale: number;
  readonly timeBucketDiv: number;
  readonly lnIn: LayerNorm;
  readonly proj: Linear;
  readonly lnOut: LayerNorm;
  readonly out: Linear;
  readonly drop: Dropout;
  readonly positionBias: Tensor;
  readonly timeBias: Tensor;

  constructor(dim: number, opts: HSTUOptions = {}) {
    super();
    const op = 'HSTU';
    this.dim = checkNumber(op, 'dim', dim, { integer: true, min: 1 });
    this.heads = checkNumber(op, 'heads', opts.heads ?? 2, { integer: true, min: 1 });
    this.dqk = checkNumber(op, 'dqk', opts.dqk ?? Math.max(1, Math.floor(dim / this.heads)), { integer: true, min: 1 });
    this.dv = checkNumber(op, 'dv', opts.dv ?? Math.max(1, Math.floor(dim / this.heads)), { integer: true, min: 1 });
    this.maxLen = checkNumber(op, 'maxLen', opts.maxLen ?? 256, { integer: true, min: 1 });
    const nb = checkNumber(op, 'timeBuckets', opts.timeBuckets ?? 128, { integer: true, min: 1 });
    this.timeBucketDiv = checkNumber(op, 'timeBucketDiv', opts.timeBucketDiv ?? 0.301, { min: Number.MIN_VALUE });
    this.alpha = checkNumber(op, 'alpha', opts.alpha ?? 1 / Math.sqrt(this.dqk));
    this.scale = checkNumber(op, 'scale', opts.scale ?? 1 / this.maxLen);
    const H = this.heads;
    const seed = opts.seed;
    this.lnIn = this.registerModule('lnIn', new LayerNorm(dim, { device: opts.device }));
    this.proj = this.registerModule('proj', new Linear(dim, 2 * H * this.dv + 2 * H * this.dqk, { seed, device: opts.device }));
    this.lnOut = this.registerModule('lnOut', new LayerNorm(H * this.dv, { device: opts.device }));
    this.out = this.registerModule('out', new Linear(H * this.dv, dim, { seed: seed === undefined ? undefined : seed + 1, device: opts.device }));
    this.drop = this.registerModule('drop', new Dropout(opts.dropout ?? 0, { seed: seed === undefined ? undefined : seed + 2 }));
    this.positionBias = this.registerParameter('positionBias', zeros([this.maxLen], { device: opts.device }));
    this.timeBias = this.registerParameter('timeBias', zeros([nb], { device: opts.device }));
  }

  private project(x: Tensor, lead: readonly number[]): { u: Tensor; q: Tensor; k: Tensor; v: Tensor } {
    return hstuProject(this.lnIn, this.proj, x, lead, this);
  }

  private finish(x: Tensor, o: Tensor, u: Tensor, lead: readonly number[]): Tensor {
    return hstuFinish(this.lnOut, this.out, this.drop, x, o, u, lead, this);
  }

  /** x: [B, L, D] (padded, optional lengths) or [ΣL, D] (packed, offsets) → same shape. */
  forward(x: Tensor, opts: HSTUBatchOptions = {}): Tensor {
    const op = 'HSTU.forward';
    const packed = opts.offsets !== undefined;
    checkTensor(op, 'x', x, { dtype: 'f32', rank: packed ? 2 : 3 });
    if (x.shape[x.rank - 1] !== this.dim) throw new Error(`${op}: x: expected last dimension ${this.dim}, got shape [${x.shape.join(', ')}]`);
    const lead = x.shape.slice(0, x.rank - 1);
    const { u, q, k, v } = this.project(x, lead);
    const ts = opts.timestamps ?? null;
    const o = hstuAttention(q, k, v, {
      scale: this.scale, alpha: this.alpha, lengths: opts.lengths, offsets: opts.offsets, positionBias: this.positionBias,
      timeBias: ts === null ? null : this.timeBias, timestamps: ts, timeBucketDiv: this.timeBucketDiv,
    });
    return this.finish(x, o, u, lead);
  }

  /** An empty K/V cache. */
  initialState(): HSTUState {
    return { keys: null, values: null, timestamps: new Int32Array(0), length: 0 };
  }

  private bucket(dt: number): number {
    const b = Math.floor(Math.log(Math.max(Math.abs(dt), 1)) / this.timeBucketDiv);
    return Math.min(b, this.timeBias.shape[0] - 1);
  }

  /**
   * One new token per sequence: x [B, D] (and its timestamps when the model uses time) → { y [B, D],
   * state } with the keys/values appended. Equals the full forward at that position (eval mode).
   */
  step(state: HSTUState, x: Tensor, timestamps?: Int32Array | readonly number[]): { y: Tensor; state: HSTUState } {
    const op = 'HSTU.step';
    checkTensor(op, 'x', x, { dtype: 'f32', rank: 2 });
    const B = x.shape[0];
    if (x.shape[1] !== this.dim) throw new Error(`${op}: x: expected shape [B, ${this.dim}], got [${x.shape.join(', ')}]`);
    const t = state.length;
    if (state.keys !== null) checkTensor(op, 'state.keys', state.keys, { shape: [B, t, this.heads, this.dqk] });
    const useTime = timestamps !== undefined;
    if (useTime && timestamps.length !== B) throw new Error(`${op}: timestamps: expected ${B} entries, got ${timestamps.length}`);
    if (useTime && state.timestamps.length !== B * t) throw new Error(`${op}: timestamps: the cache was built without timestamps`);
    const H = this.heads;
    const { u, q, k, v } = this.project(x, [B]);
    const k1 = reshape(k, [B, 1, H, this.dqk]);
    const v1 = reshape(v, [B, 1, H, this.dv]);
    const keys = state.keys === null ? k1 : concat([state.keys, k1], 1);
    const values = state.values === null ? v1 : concat([state.values as Tensor, v1], 1);
    const n = t + 1;
    // score_j = α q·k_j + pos[min(t − j, P − 1)] (+ time bias), j = 0..t
    let s = mulScalar(sum(mul(reshape(q, [B, 1, H, this.dqk]), keys), -1), this.alpha); // [B, n, H]
    const P = this.positionBias.shape[0];
    const pidx = new Int32Array(n);
    for (let j = 0; j < n; j++) pidx[j] = Math.min(t - j, P - 1);
    s = add(s, reshape(gather(this.positionBias, tensor(pidx, [n], { dtype: 'i32', device: x.device }), 0), [1, n, 1]));
    let tsAll = new Int32Array(0);
    if (useTime) {
      tsAll = new Int32Array(B * n);
      const tidx = new Int32Array(B * n);
      for (let b = 0; b < B; b++) {
        for (let j = 0; j < t; j++) tsAll[b * n + j] = state.timestamps[b * t + j];
        tsAll[b * n + t] = timestamps[b];
        for (let j = 0; j < n; j++) tidx[b * n + j] = this.bucket(tsAll[b * n + t] - tsAll[b * n + j]);
      }
      s = add(s, reshape(gather(this.timeBias, tensor(tidx, [B * n], { dtype: 'i32', device: x.device }), 0), [B, n, 1]));
    }
    const a = mulScalar(silu(s), this.scale); // [B, n, H]
    const o = sum(mul(reshape(a, [B, n, H, 1]), values), 1); // [B, H, dv]
    return { y: this.finish(x, o, u, [B]), state: { keys, values, timestamps: tsAll, length: n } };
  }
}
