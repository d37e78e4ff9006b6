// Global-norm gradient clipping over dense and row-sparse gradients together.
import { native } from '../native';
import { Tensor } from '../tensor';
import { checkNumber } from '../ops/validate';
import './kernels';

/**
 * Scales every gradient (dense .grad and sparse .sparseGrad.values) by maxNorm / norm when the
 * global L2 norm exceeds maxNorm. Returns the norm before clipping (NaN/Infinity are returned as is
 * and nothing is scaled, so the caller can skip the step).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  if (!Array.isArray(params)) throw new TypeError(`clipGradNorm: params: expected an array of Tensors, got ${typeof params}`);
  checkNumber('clipGradNorm', 'maxNorm', maxNorm, { min: 0 });
  const nb = native();
  const grads: Tensor[] = [];
  params.forEach((p, i) => {
    if (!(p instanceof Tensor)) throw new TypeError(`clipGradNorm: params[${i}]: expected a Tensor, got ${typeof p}`);
    if (p.grad !== null) grads.push(p.grad);
    if (p.sparseGrad !== null) grads.push(p.sparseGrad.values);
  });
  let ss = 0;
  for (const g of grads) ss += nb.sumSquares(g.storage, g.size);
  const norm = Math.sqrt(ss);
  if (Number.isFinite(norm) && norm > maxNorm) {
    const s = maxNorm / (norm + 1e-6);
    for (const g of grads) nb.scaleInplace(g.storage, g.size, s);
  }
  return norm;
}
