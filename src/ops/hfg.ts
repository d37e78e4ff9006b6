// HFG grouped attention (DESIGN.md §4.2): many small multi-head softmax attentions at once, one
// fused native kernel per direction (score → masked softmax → weighted sum; the backward pass
// recomputes the softmax instead of saving it).
import type { NativeStorage } from '../native';
import { native } from '../native';
import { record } from '../autograd';
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
