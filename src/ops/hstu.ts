// HSTU's quadratic pointwise attention (research/papers.md §2): per sequence and head,
//   o_i = Σ_{j ≤ i} SiLU(α q_i·k_j + bias_ij) · scale · v_j      (causal, no softmax),
// bias_ij = positionBias[min(i − j, P − 1)] + timeBias[bucket(ts_i − ts_j)], bucket(x) =
// min(floor(log(max(|x|, 1)) / timeBucketDiv), NB − 1). The O(L²) quality/speed baseline of the linear
// recurrence; same [B, L, H, d] / packed [ΣL, H, d] layouts as ops.linearRecurrence.
import type { NativeStorage } from '../native';
import { native } from '../native';
import { Tensor, empty, zeros, formatShape } from '../tensor';
import { record, needsGrad } from '../autograd';
import { checkTensor, sameDevice } from './validate';
import { intArray, checkOffsets, checkLengths, callNative } from './jagged';

declare module '../native' {
  interface NativeBinding {
    hstuForward(
      out: NativeStorage, q: NativeStorage, k: NativeStorage, v: NativeStorage, posBias: NativeStorage | null,
      timeBias: NativeStorage | null, timestamps: NativeStorage | null, offsets: Int32Array | null,
      lengths: Int32Array | null, batch: number, maxLen: number, heads: number, dqk: number, dv: number, alpha: number,
      invN: number, numPos: number, numTime: number, timeDiv: number,
    ): void;
    hstuBackward(
      dq: NativeStorage | null, dkOut: NativeStorage | null, dvOut: NativeStorage | null, dpos: NativeStorage | null,
      dtime: NativeStorage | null, q: NativeStorage, k: NativeStorage, v: NativeStorage, posBias: NativeStorage | null,
      timeBias: NativeStorage | null, timestamps: NativeStorage | null, dout: NativeStorage, offsets: Int32Array | null,
      lengths: Int32Array | null, batch: number, maxLen: number, heads: number, dqk: number, dv: number, alpha: number,
      invN: number, numPos: number, numTime: number, timeDiv: number,
    ): void;
  }
}

export interface HstuAttentionOptions {
  /** The constant normaliser after SiLU (HSTU's 1/n): default 1 / L_max. */
  scale?: number;
  /** Scale α on q·k inside the SiLU (default 1). */
  alpha?: number;
  /** Padded form: true lengths (default all L); padding rows output 0. */
  lengths?: Int32Array | readonly number[];
  /** Packed form: B+1 non-decreasing row offsets (offsets[0] = 0, offsets[B] = ΣL). */
  offsets?: Int32Array | readonly number[];
  /** Learned relative position bias [P], indexed by min(i − j, P − 1); shared by all heads. */
  positionBias?: Tensor | null;
  /** Learned time bias [NB] over log-buckets of ts_i − ts_j; shared by all heads. Needs `timestamps`. */
  timeBias?: Tensor | null;
  /** int32 timestamps [B, L] (padded) or [ΣL] (packed), e.g. seconds. */
  timestamps?: Tensor | null;
  /** Bucket width in log space (HSTU: 0.301). */
  timeBucketDiv?: number;
}

function finite(op: string, name: string, x: unknown, def: number): number {
  if (x === undefined) return def;
  if (typeof x !== 'number' || !Number.isFinite(x)) throw new TypeError(`${op}: ${name}: expected a finite number, got ${String(x)}`);
  return x;
}

/**
 * HSTU pointwise attention `SiLU(α q kᵀ + bias) · scale ⊙ causal` applied to v. Padded `q, k [B, L, H, dqk]`,
 * `v [B, L, H, dv]` → `[B, L, H, dv]`; packed with `offsets`: `[ΣL, H, d]` → `[ΣL, H, dv]`. Differentiable
 * in q, k, v, positionBias and timeBias.
 */
export function hstuAttention(q: Tensor, k: Tensor, v: Tensor, opts: HstuAttentionOptions = {}): Tensor {
  const op = 'hstuAttention';
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: opts: expected an object, got ${String(opts)}`);
  const packed = opts.offsets !== undefined && opts.offsets !== null;
  if (packed && opts.lengths !== undefined) throw new Error(`${op}: give either offsets (packed) or lengths (padded), not both`);
  checkTensor(op, 'q', q, { dtype: 'f32', rank: packed ? 3 : 4 });
  const lead = packed ? 1 : 2;
  const leadShape = q.shape.slice(0, lead);
  let offsets: Int32Array | null = null;
  let lengths: Int32Array | null = null;
  let batch: number;
  let maxLen: number;
  let rows: number;
  let lmax: number;
  if (packed) {
    offsets = intArray(op, 'offsets', opts.offsets);
    rows = q.shape[0];
    checkOffsets(op, offsets, rows);
    batch = offsets.length - 1;
    maxLen = 0;
    lmax = 0;
    for (let b = 0; b < batch; b++) lmax = Math.max(lmax, offsets[b + 1] - offsets[b]);
  } else {
    batch = q.shape[0];
    maxLen = q.shape[1];
    rows = batch * maxLen;
    lmax = maxLen;
    if (opts.lengths !== undefined) {
      lengths = intArray(op, 'lengths', opts.lengths);
      checkLengths(op, lengths, batch, maxLen);
    }
  }
  const heads = q.shape[lead];
  const dqk = q.shape[lead + 1];
  checkTensor(op, 'k', k, { dtype: 'f32', shape: q.shape });
  checkTensor(op, 'v', v, { dtype: 'f32', shape: [...leadShape, heads, -1] });
  const dv = v.shape[lead + 1];
  if (heads < 1 || dqk < 1 || dv < 1) throw new Error(`${op}: heads and head dims must be >= 1, got H = ${heads}, dqk = ${dqk}, dv = ${dv}`);
  const pos = opts.positionBias ?? null;
  if (pos !== null) {
    checkTensor(op, 'positionBias', pos, { dtype: 'f32', rank: 1 });
    if (pos.shape[0] < 1) throw new Error(`${op}: positionBias: expected at least 1 entry, got shape ${formatShape(pos.shape)}`);
  }
  const tw = opts.timeBias ?? null;
  const ts = opts.timestamps ?? null;
  if (tw !== null) {
    checkTensor(op, 'timeBias', tw, { dtype: 'f32', rank: 1 });
    if (tw.shape[0] < 1) throw new Error(`${op}: timeBias: expected at least 1 entry, got shape ${formatShape(tw.shape)}`);
    if (ts === null) throw new Error(`${op}: timestamps: required when timeBias is given`);
    checkTensor(op, 'timestamps', ts, { dtype: 'i32', shape: leadShape });
  }
  sameDevice(op, { q, k, v, positionBias: pos, timeBias: tw, timestamps: tw !== null ? ts : null });
  const scale = finite(op, 'scale', opts.scale, 1 / Math.max(1, lmax));
  const alpha = finite(op, 'alpha', opts.alpha, 1);
  const timeDiv = finite(op, 'timeBucketDiv', opts.timeBucketDiv, 0.301);
  if (!(timeDiv > 0)) throw new RangeError(`${op}: timeBucketDiv: expected > 0, got ${timeDiv}`);
  const numPos = pos === null ? 0 : pos.shape[0];
  const numTime = tw === null ? 0 : tw.shape[0];
  const tsUsed = tw === null ? null : ts;
  const s = (t: Tensor | null): NativeStorage | null => (t === null ? null : t.storage);
  const b = native();
  const out = empty([...leadShape, heads, dv], { device: q.device });
  callNative(op, () => b.hstuForward(out.storage, q.storage, k.storage, v.storage, s(pos), s(tw), s(tsUsed), offsets, lengths,
    batch, maxLen, heads, dqk, dv, alpha, scale, numPos, numTime, timeDiv));
  const inputs: Tensor[] = [q, k, v];
  if (pos !== null) inputs.push(pos);
  if (tw !== null) inputs.push(tw);
  if (!needsGrad(inputs)) return out;
  return record(op, out, inputs, (g) => {
    // Every element of these buffers is written by the kernel (padding rows included).
    const want = (t: Tensor): Tensor | null => (t.requiresGrad ? (t.size === 0 ? zeros(t.shape, { device: t.device }) : empty(t.shape, { device: t.device })) : null);
    const dq = want(q);
    const dk = want(k);
    const dvv = want(v);
    const dp = pos !== null ? want(pos) : null;
    const dt = tw !== null ? want(tw) : null;
    callNative(op, () => b.hstuBackward(s(dq), s(dk), s(dvv), s(dp), s(dt), q.storage, k.storage, v.storage, s(pos), s(tw),
      s(tsUsed), g.storage, offsets, lengths, batch, maxLen, heads, dqk, dv, alpha, scale, numPos, numTime, timeDiv));
    const grads: (Tensor | null)[] = [dq, dk, dvv];
    if (pos !== null) grads.push(dp);
    if (tw !== null) grads.push(dt);
    return grads;
  });
}
