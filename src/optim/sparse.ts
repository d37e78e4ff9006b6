// Sparse optimisers for embedding tables with row-sparse gradients (param.sparseGrad): only the
// rows present are read and written, so a step costs O(rows touched · dim), not O(table).
// SparseAdam is "lazy" Adam (as torch.optim.SparseAdam): a row's moments decay only on the steps
// where that row has a gradient.
import { native } from '../native';
import type { Tensor } from '../tensor';
import { checkNumber } from '../ops/validate';
import { Optimizer } from './optimizer';
import './kernels';

function sparseOf(kind: string, p: Tensor, i: number): { rows: Tensor; values: Tensor } | null {
  if (p.grad !== null) {
    throw new Error(`${kind}: params[${i}] has a dense gradient; ${kind} updates row-sparse gradients only (use embedding(..., { sparse: true }) or optim.AdamW)`);
  }
  if (p.rank < 2) throw new Error(`${kind}: params[${i}]: expected a table of rank >= 2, got shape [${p.shape.join(', ')}]`);
  return p.sparseGrad;
}

export interface SparseAdamOptions {
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  /** Decoupled weight decay applied to the touched rows only (default 0). */
  weightDecay?: number;
}

export class SparseAdam extends Optimizer {
  protected readonly typeName = 'SparseAdam';
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;

  constructor(params: readonly Tensor[], opts: SparseAdamOptions = {}) {
    super('SparseAdam', params, opts.lr ?? 1e-3);
    const [b1, b2] = opts.betas ?? [0.9, 0.999];
    this.beta1 = checkNumber('SparseAdam', 'betas[0]', b1, { min: 0, max: 0.999999 });
    this.beta2 = checkNumber('SparseAdam', 'betas[1]', b2, { min: 0, max: 0.99999999 });
    this.eps = checkNumber('SparseAdam', 'eps', opts.eps ?? 1e-8, { min: Number.MIN_VALUE });
    this.weightDecay = checkNumber('SparseAdam', 'weightDecay', opts.weightDecay ?? 0, { min: 0 });
  }

  step(): void {
    const nb = native();
    this.params.forEach((p, i) => {
      const sg = sparseOf('SparseAdam', p, i);
      if (sg === null) return;
      const t = ++this.steps[i];
      const bc1 = 1 - Math.pow(this.beta1, t);
      const bc2 = 1 - Math.pow(this.beta2, t);
      const V = p.shape[0];
      const D = p.size / Math.max(V, 1);
      nb.sparseAdamStep(p.storage, this.slot(i, 'm').storage, this.slot(i, 'v').storage, sg.rows.storage, sg.values.storage, sg.rows.size, V, D, this.lr, this.beta1, this.beta2, this.eps, this.weightDecay, bc1, bc2);
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

export interface SparseAdagradOptions {
  lr?: number;
  eps?: number;
  /** Starting value of the squared-gradient accumulator (default 0). */
  initialAccumulator?: number;
  weightDecay?: number;
}

export class SparseAdagrad extends Optimizer {
  protected readonly typeName = 'SparseAdagrad';
  eps: number;
  weightDecay: number;
  readonly initialAccumulator: number;

  constructor(params: readonly Tensor[], opts: SparseAdagradOptions = {}) {
    super('SparseAdagrad', params, opts.lr ?? 1e-2);
    this.eps = checkNumber('SparseAdagrad', 'eps', opts.eps ?? 1e-10, { min: Number.MIN_VALUE });
    this.weightDecay = checkNumber('SparseAdagrad', 'weightDecay', opts.weightDecay ?? 0, { min: 0 });
    this.initialAccumulator = checkNumber('SparseAdagrad', 'initialAccumulator', opts.initialAccumulator ?? 0, { min: 0 });
  }

  step(): void {
    const nb = native();
    this.params.forEach((p, i) => {
      const sg = sparseOf('SparseAdagrad', p, i);
      if (sg === null) return;
      this.steps[i]++;
      const V = p.shape[0];
      const D = p.size / Math.max(V, 1);
      nb.sparseAdagradStep(p.storage, this.slot(i, 'acc', this.initialAccumulator).storage, sg.rows.storage, sg.values.storage, sg.rows.size, V, D, this.lr, this.eps, this.weightDecay);
    });
  }

  protected hyper(): Record<string, number> {
    return { eps: this.eps, weightDecay: this.weightDecay, initialAccumulator: this.initialAccumulator };
  }
  protected setHyper(h: Record<string, number>): void {
    this.eps = h.eps ?? this.eps;
    this.weightDecay = h.weightDecay ?? this.weightDecay;
  }
}
