// The two halves every HSTU-style block shares — nn.LinearHSTU, nn.HSTU and the QGS encoder's
// EncoderBlock differ only in the mixing between them (research/papers.md §7.1):
//   [U, V, Q, K] = split(SiLU(W1 LN_in(X) + b1))   ...mixing of Q, K, V into O...
//   Y = X + Dropout(W2 (U ⊙ LN_out(O)) + b2)
// The blocks own their modules (under their own parameter names, which checkpoints keep); these
// functions are the one place the block's arithmetic around the mixing is written.
import type { Tensor } from '../tensor';
import { silu, mul, add } from '../ops/elementwise';
import { split, reshape } from '../ops/movement';
import type { LayerNorm } from './layernorm';
import type { Linear } from './linear';
import type { Dropout } from './dropout';

export interface HstuHeads {
  heads: number;
  /** Query/key width per head. */
  dqk: number;
  /** Value width per head. */
  dv: number;
}

/**
 * LN_in → SiLU(W1 x + b1) → U [..., H·dv] and V [..., H, dv], Q and K [..., H, dqk] (heads split
 * out), for x [...lead, D].
 */
export function hstuProject(lnIn: LayerNorm, proj: Linear, x: Tensor, lead: readonly number[], s: HstuHeads): { u: Tensor; v: Tensor; q: Tensor; k: Tensor } {
  const H = s.heads;
  const p = silu(proj.forward(lnIn.forward(x)));
  const [u, v, q, k] = split(p, [H * s.dv, H * s.dv, H * s.dqk, H * s.dqk], -1);
  return { u, v: reshape(v, [...lead, H, s.dv]), q: reshape(q, [...lead, H, s.dqk]), k: reshape(k, [...lead, H, s.dqk]) };
}

/** x + Dropout(W2 (U ⊙ LN_out(O)) + b2) for the mixing's output o [...lead, H, dv] (or [...lead, H·dv]). */
export function hstuFinish(lnOut: LayerNorm, out: Linear, drop: Dropout, x: Tensor, o: Tensor, u: Tensor, lead: readonly number[], s: HstuHeads): Tensor {
  const on = lnOut.forward(reshape(o, [...lead, s.heads * s.dv]));
  return add(x, drop.forward(out.forward(mul(u, on))));
}
