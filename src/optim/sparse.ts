// Sparse optimisers for embedding tables with row-sparse gradients (param.sparseGrad): only the
// rows present are read and written, so a step costs O(rows touched · dim), not O(table).
// SparseAdam is "lazy" Adam (as torch.optim.SparseAdam): a row's moments decay only on the steps
// where that row has a gradient.
import { native } from '../native';
import type { Tensor } from '../tensor';
import { checkNumber } from '../ops/validate';
import { Optimizer } from './optimizer';
import { AdamBase, type AdamOptions } from './adam-base';
import './kernels';

function sparseOf(kind: string, p: Tensor, i: number): { rows: Tensor; values: Tensor } | null {
  if (p.grad !== null) {
    throw new Error(`${kind}: params[${i}] has a dense gradient; ${kind} updates row-sparse gradients only (use embedding(..., { sparse: true }) or optim.AdamW)`);
  }
  if (p.rank < 2) throw new Error(`${kind}: params[${i}]: expected a table of rank >= 2, got shape [${p.shape.join(', ')}]`);
  return p.sparseGrad;
}

export interface SparseAdamOptions extends AdamOptions {
  /** Decoupled weight decay applied to the touched rows only (default 0). */
  weightDecay?: number;
}

export class SparseAdam extends AdamBase {
  protected readonly typeName = 'SparseAdam';

  constructor(params: readonly Tensor[], opts: SparseAdamOptions = {}) {
    super('SparseAdam', params, opts, 0);
  }

  step(): void {
    const nb = native();
    this.params.forEach((p, i) => {
      const sg = sparseOf('SparseAdam', p, i);
      if (sg === null) return;
      const { bc1, bc2 } = this.nextStep(i);
      const V = p.shape[0];
      const D = p.size / Math.max(V, 1);
      nb.sparseAdamStep(p.storage, this.slot(i, 'm').storage, this.slot(i, 'v').storage, sg.rows.storage, sg.values.storage, sg.rows.size, V, D, this.lr, this.beta1, this.beta2, this.eps, this.weightDecay, bc1, bc2);
    });
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
