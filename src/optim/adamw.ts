// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay and bias correction, one fused
// native pass per parameter (p, m, v read and written once; CPU SIMD / CUDA).
import { native } from '../native';
import type { Tensor } from '../tensor';
import { AdamBase, type AdamOptions } from './adam-base';
import './kernels';

export interface AdamWOptions extends AdamOptions {
  /** Decoupled weight decay (default 0.01, as PyTorch). Use two optimisers to exclude biases / norms. */
  weightDecay?: number;
}

export class AdamW extends AdamBase {
  protected readonly typeName = 'AdamW';

  constructor(params: readonly Tensor[], opts: AdamWOptions = {}) {
    super('AdamW', params, opts, 0.01);
  }

  step(): void {
    const nb = native();
    this.params.forEach((p, i) => {
      if (p.sparseGrad !== null) {
        throw new Error(`AdamW: params[${i}] has a row-sparse gradient (sparse embedding); update it with optim.SparseAdam or optim.SparseAdagrad`);
      }
      const g = p.grad;
      if (g === null) return; // untouched this step: no update, no step count (as PyTorch)
      const { bc1, bc2 } = this.nextStep(i);
      nb.adamwStep(p.storage, this.slot(i, 'm').storage, this.slot(i, 'v').storage, g.storage, p.size, this.lr, this.beta1, this.beta2, this.eps, this.weightDecay, bc1, bc2);
    });
  }
}
