// HFG grouped attention (DESIGN.md §4.2): many small multi-head softmax attentions at once, one
// fused native kernel per direction (score → masked softmax → weighted sum; the backward pass
// recomputes the softmax instead of saving it).
import type { NativeStorage } from '../native';
import { native } from '../native';
import { record, needsGrad } from '../autograd';
import { Tensor, empty, formatShape } from '../tensor';
import { checkNumber, checkTensor, sameDevice } from './validate';

declare module '../native' {
  interface NativeBinding {
    groupedAttentionForward(
      out: NativeStorage, q: NativeStorage, k: NativeStorage, v: NativeStorage, keyMask: NativeStorage | null,
      N: number, H: number, Tq: number, Tk: number, d: number, scale: number,
    ): void;
    groupedAttentionBackward(
      dq: NativeStorage, dk: NativeStorage, dv: NativeStorage, dout: NativeStorage,
      q: NativeStorage, k: NativeStorage, v: NativeStorage, keyMask: NativeStorage | null,
      N: number, H: number, Tq: number, Tk: number, d: number, scale: number,
    ): void;
  }
}

/** Most keys per attention set (G + 2 tokens in HFG-Attention). */
export const GROUPED_ATTENTION_MAX_KEYS = 64;
/** Largest per-head width. */
export const GROUPED_ATTENTION_MAX_HEAD_DIM = 128;

export interface GroupedAttentionOptions {
  /**
   * f32 `[N, Tk]`: 1 = key present, 0 = missing (e.g. a feature group absent for that candidate).
   * Any nonzero value counts as present. A row with every key missing yields zeros and zero
   * gradients. Not differentiated.
   */
  keyMask?: Tensor | null;
  /** Score scale; defaults to 1/√d. Must be finite. */
  scale?: number;
}

const OP = 'groupedAttention';

/**
 * Softmax attention over small key sets for many independent rows:
 * `out[n,h,i] = Σ_j softmax_j(scale·⟨q[n,h,i], k[n,h,j]⟩ | keyMask[n,j] ≠ 0) · v[n,h,j]`.
 *
 * Shapes: `q [N, H, Tq, d]`, `k, v [N, H, Tk, d]` → `out [N, H, Tq, d]`; `1 ≤ Tk ≤ 64`, `1 ≤ d ≤ 128`.
 * Differentiable in q, k and v.
 */
export function groupedAttention(q: Tensor, k: Tensor, v: Tensor, opts: GroupedAttentionOptions = {}): Tensor {
  checkTensor(OP, 'q', q, { dtype: 'f32', rank: 4 });
  const [N, H, Tq, d] = q.shape;
  checkTensor(OP, 'k', k, { dtype: 'f32', rank: 4 });
  const Tk = k.shape[2];
  checkTensor(OP, 'k', k, { shape: [N, H, -1, d] });
  checkTensor(OP, 'v', v, { dtype: 'f32', shape: [N, H, Tk, d] });
  if (typeof opts !== 'object' || opts === null) throw new TypeError(`${OP}: opts: expected an object, got ${opts === null ? 'null' : typeof opts}`);
  const mask = opts.keyMask ?? null;
  if (mask !== null) checkTensor(OP, 'keyMask', mask, { dtype: 'f32', shape: [N, Tk] });
  sameDevice(OP, { q, k, v, keyMask: mask });
  if (H < 1 || Tq < 1) throw new Error(`${OP}: q: expected H >= 1 and Tq >= 1, got shape ${formatShape(q.shape)}`);
  if (Tk < 1 || Tk > GROUPED_ATTENTION_MAX_KEYS) {
    throw new RangeError(`${OP}: k: expected 1 <= Tk <= ${GROUPED_ATTENTION_MAX_KEYS} keys (dim 2), got ${Tk} (shape ${formatShape(k.shape)})`);
  }
  if (d < 1 || d > GROUPED_ATTENTION_MAX_HEAD_DIM) {
    throw new RangeError(`${OP}: q: expected head dim 1 <= d <= ${GROUPED_ATTENTION_MAX_HEAD_DIM} (dim 3), got ${d} (shape ${formatShape(q.shape)})`);
  }
  const scale = opts.scale === undefined ? 1 / Math.sqrt(d) : checkNumber(OP, 'scale', opts.scale);
  if (!Number.isFinite(scale)) throw new RangeError(`${OP}: scale: expected a finite number, got ${scale}`);

  const out = empty([N, H, Tq, d], { device: q.device });
  const maskStorage = mask === null ? null : mask.storage;
  native().groupedAttentionForward(out.storage, q.storage, k.storage, v.storage, maskStorage, N, H, Tq, Tk, d, scale);

  return record(OP, out, [q, k, v], (g) => {
    const dq = empty(q.shape, { device: q.device });
    const dk = empty(k.shape, { device: k.device });
    const dv = empty(v.shape, { device: v.device });
    // The mask is read again here (not cloned): it must outlive backward(), like the inputs.
    native().groupedAttentionBackward(
      dq.storage, dk.storage, dv.storage, g.storage, q.storage, k.storage, v.storage,
      mask === null ? null : mask.storage, N, H, Tq, Tk, d, scale,
    );
    return [dq, dk, dv];
  });
}

declare module '../native' {
  interface NativeBinding {
    hfgContextLayerForward(
      out: NativeStorage, x: NativeStorage, keyMask: NativeStorage | null,
      ln1W: NativeStorage | null, ln1B: NativeStorage | null, wqkv: NativeStorage, bqkv: NativeStorage | null,
      wo: NativeStorage, bo: NativeStorage | null, ln2W: NativeStorage | null, ln2B: NativeStorage | null,
      w1: NativeStorage, b1: NativeStorage | null, w2: NativeStorage, b2: NativeStorage | null,
      lnOutW: NativeStorage | null, lnOutB: NativeStorage | null,
      N: number, T: number, D: number, H: number, F: number, eps1: number, eps2: number, epsOut: number, activation: number,
    ): void;
  }
}

/** Activations the fused layer supports (the nn.MLP ones). */
export const HFG_CONTEXT_LAYER_ACTIVATIONS = ['relu', 'gelu', 'silu', 'tanh'] as const;
export type HfgContextLayerActivation = (typeof HFG_CONTEXT_LAYER_ACTIVATIONS)[number];

/** Parameters of one pre-LayerNorm HFG layer (PyTorch layout: weights [out, in]). */
export interface HfgContextLayerParams {
  heads: number;
  ln1Weight?: Tensor | null;
  ln1Bias?: Tensor | null;
  /** [3D, D]: query, key and value projections stacked. */
  wqkv: Tensor;
  bqkv?: Tensor | null;
  wo: Tensor;
  bo?: Tensor | null;
  ln2Weight?: Tensor | null;
  ln2Bias?: Tensor | null;
  /** [F, D] and [D, F]: the FFN. */
  w1: Tensor;
  b1?: Tensor | null;
  w2: Tensor;
  b2?: Tensor | null;
  lnOutWeight?: Tensor | null;
  lnOutBias?: Tensor | null;
  eps1?: number;
  eps2?: number;
  epsOut?: number;
  activation?: HfgContextLayerActivation;
}

const OP_LAYER = 'hfgContextLayer';

/**
 * One HFG-Attention layer read out at token 0, fused (inference only, CPU): for tokens `x [N, T, D]`,
 * `y = LN1(x)`; token 0's query attends over all T tokens' keys/values (H heads, masked by
 * `keyMask [N, T]`, scale 1/√(D/H)); `x1 = x₀ + Wo·a + bo`; `x2 = x1 + W2·act(W1·LN2(x1) + b1) + b2`;
 * returns `LNout(x2)` `[N, D]`. The same function as nn.HFGAttention's last layer with context
 * pooling, without the intermediate tensors. Not differentiable: throws if a gradient would be needed.
 */
export function hfgContextLayer(x: Tensor, p: HfgContextLayerParams, opts: { keyMask?: Tensor | null } = {}): Tensor {
  checkTensor(OP_LAYER, 'x', x, { dtype: 'f32', rank: 3 });
  const [N, T, D] = x.shape;
  if (typeof p !== 'object' || p === null) throw new TypeError(`${OP_LAYER}: params: expected an object, got ${p === null ? 'null' : typeof p}`);
  const H = checkNumber(OP_LAYER, 'heads', p.heads, { integer: true, min: 1 });
  if (D % H !== 0 || D / H > GROUPED_ATTENTION_MAX_HEAD_DIM) {
    throw new RangeError(`${OP_LAYER}: heads: expected a divisor of D = ${D} with D / heads <= ${GROUPED_ATTENTION_MAX_HEAD_DIM}, got ${H}`);
  }
  if (T < 1 || T > GROUPED_ATTENTION_MAX_KEYS) throw new RangeError(`${OP_LAYER}: x: expected 1 <= T <= ${GROUPED_ATTENTION_MAX_KEYS} tokens (dim 1), got shape ${formatShape(x.shape)}`);
  checkTensor(OP_LAYER, 'wqkv', p.wqkv, { dtype: 'f32', shape: [3 * D, D] });
  checkTensor(OP_LAYER, 'wo', p.wo, { dtype: 'f32', shape: [D, D] });
  checkTensor(OP_LAYER, 'w1', p.w1, { dtype: 'f32', rank: 2 });
  const F = p.w1.shape[0];
  checkTensor(OP_LAYER, 'w1', p.w1, { shape: [F, D] });
  checkTensor(OP_LAYER, 'w2', p.w2, { dtype: 'f32', shape: [D, F] });
  const vectors: [string, Tensor | null | undefined, number][] = [
    ['ln1Weight', p.ln1Weight, D], ['ln1Bias', p.ln1Bias, D], ['bqkv', p.bqkv, 3 * D], ['bo', p.bo, D], ['ln2Weight', p.ln2Weight, D],
    ['ln2Bias', p.ln2Bias, D], ['b1', p.b1, F], ['b2', p.b2, D], ['lnOutWeight', p.lnOutWeight, D], ['lnOutBias', p.lnOutBias, D],
  ];
  for (const [name, t, n] of vectors) if (t != null) checkTensor(OP_LAYER, name, t, { dtype: 'f32', shape: [n] });
  const mask = opts.keyMask ?? null;
  if (mask !== null) checkTensor(OP_LAYER, 'keyMask', mask, { dtype: 'f32', shape: [N, T] });
  const act = p.activation ?? 'gelu';
  const actIndex = HFG_CONTEXT_LAYER_ACTIVATIONS.indexOf(act);
  if (actIndex < 0) throw new TypeError(`${OP_LAYER}: activation: expected one of ${HFG_CONTEXT_LAYER_ACTIVATIONS.join(', ')}, got ${JSON.stringify(act)}`);
  const eps = (name: string, v: number | undefined): number => {
    const e = checkNumber(OP_LAYER, name, v ?? 1e-5);
    if (!(e > 0) || !Number.isFinite(e)) throw new RangeError(`${OP_LAYER}: ${name}: expected a positive finite number, got ${e}`);
    return e;
  };
  const e1 = eps('eps1', p.eps1);
  const e2 = eps('eps2', p.eps2);
  const eo = eps('epsOut', p.epsOut);
  const named: Record<string, Tensor | null | undefined> = { x, keyMask: mask, wqkv: p.wqkv, wo: p.wo, w1: p.w1, w2: p.w2 };
  for (const [name, t] of vectors) named[name] = t;
  const all = Object.values(named);
  if (sameDevice(OP_LAYER, named) !== 'cpu') {
    throw new Error(`${OP_LAYER}: expected CPU tensors (the fused layer is CPU only; on a GPU use nn.HFGAttention.forward), got ${x.device}`);
  }
  if (needsGrad(all)) throw new Error(`${OP_LAYER}: inference only: an input requires a gradient (call it under noGrad(), or use nn.HFGAttention.forward for training)`);
  const out = empty([N, D]);
  const s = (t: Tensor | null | undefined): NativeStorage | null => (t == null ? null : t.storage);
  native().hfgContextLayerForward(
    out.storage, x.storage, s(mask), s(p.ln1Weight), s(p.ln1Bias), p.wqkv.storage, s(p.bqkv), p.wo.storage, s(p.bo),
    s(p.ln2Weight), s(p.ln2Bias), p.w1.storage, s(p.b1), p.w2.storage, s(p.b2), s(p.lnOutWeight), s(p.lnOutBias),
    N, T, D, H, F, e1, e2, eo, actIndex,
  );
  return out;
}
