// What AdamW and SparseAdam share: the Adam hyper-parameters (validated once, checkpointed by name)
// and the float64 bias corrections. Only the update kernel differs (dense fused pass vs touched rows).
import type { Tensor } from '../tensor';
import { checkNumber } from '../ops/validate';
import { Optimizer } from './optimizer';

export interface AdamOptions {
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  /** Decoupled weight decay. */
  weightDecay?: number;
}

export abstract class AdamBase extends Optimizer {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;

  protected constructor(kind: string, params: readonly Tensor[], opts: AdamOptions, defaultWeightDecay: number) {
    super(kind, params, opts.lr ?? 1e-3);
    const [b1, b2] = opts.betas ?? [0.9, 0.999];
    this.beta1 = checkNumber(kind, 'betas[0]', b1, { min: 0, max: 0.999999 });
    this.beta2 = checkNumber(kind, 'betas[1]', b2, { min: 0, max: 0.99999999 });
    this.eps = checkNumber(kind, 'eps', opts.eps ?? 1e-8, { min: Number.MIN_VALUE });
    this.weightDecay = checkNumber(kind, 'weightDecay', opts.weightDecay ?? defaultWeightDecay, { min: 0 });
  }

  /**
   * Counts a step of parameter i and returns its bias corrections 1 − β^t, in float64: β^t for
   * t ~ 10^6 underflows float32 precision.
   */
  protected nextStep(i: number): { bc1: number; bc2: number } {
    const t = ++this.steps[i];
    return { bc1: 1 - Math.pow(this.beta1, t), bc2: 1 - Math.pow(this.beta2, t) };
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
