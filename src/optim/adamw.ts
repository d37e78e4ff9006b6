// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay and bias correction, one fused
// native pass per parameter (p, m, v read and written once; CPU SIMD / CUDA).
import { native } from '../native';
import type { Tensor } from '../tensor';
import { checkNumber } from '../ops/validate';
import { Optimizer } from './optimizer';
import './kernels';

export interface AdamWOptions {
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  /** Decoupled weight decay (default 0.01, as PyTorch). Use two optimisers to exclude biases / norms. */
  weightDecay?: number;
}

export class AdamW extends Optimizer {
  protected readonly typeName = 'AdamW';
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;

  constructor(params: readonly Tensor[], opts: AdamWOptions = {}) {
    super('AdamW', params, opts.lr ?? 1e-3);
    const [b1, b2] = opts.betas ?? [0.9, 0.999];
    this.beta1 = checkNumber('AdamW', 'betas[0]', b1, { min: 0, max: 0.999999 });
    this.beta2 = checkNumber('AdamW', 'betas[1]', b2, { min: 0, max: 0.99999999 });
    this.eps = checkNumber('AdamW', 'eps', opts.eps ?? 1e-8, { min: Number.MIN_VALUE });
    this.weightDecay = checkNumber('AdamW', 'weightDecay', opts.weightDecay ?? 0.01, { min: 0 });
  }

  step(): void {
    const nb = native();
    this.params.forEach((p, i) => {
      if (p.sparseGrad !== null) {
        throw new Error(`AdamW: params[${i}] has a row-sparse gradient (sparse embedding); update it with optim.SparseAdam or optim.SparseAdagrad`);
      }
      const g = p.grad;
      if (g === null) return; // untouched this step: no update, no step count (as PyTorch)
      const t = ++this.steps[i];
      // Bias corrections in float64: beta^t for t ~ 10^6 underflows float32 precision.
      const bc1 = 1 - Math.pow(this.beta1, t);
      const bc2 = 1 - Math.pow(this.beta2, t);
      nb.adamwStep(p.storage, this.slot(i, 'm').storage, this.slot(i, 'v').storage, g.storage, p.size, this.lr, this.beta1, this.beta2, this.eps, this.weightDecay, bc1, bc2);
    });
  }

  protected hyper(): Record<string, number> {
    return { beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay };
  }
  protected setHyper(h: Record<string, number>): void {
    this.beta1 = h.beta1 ?? this.beta1;
    this.beta2 = h.beta2 ?? this.beta2;
    this.eps = h.eps ?? this.eps;
    this.weightDecay = h.weightDecay ?? this.weightDecay;
  }
}
