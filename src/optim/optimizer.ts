// Shared optimiser machinery: parameter list checks, lazily allocated per-parameter state tensors
// (kept out of scopes), zeroGrad, and state()/loadState() for checkpoints.
import { Tensor, zeros, keep, formatShape } from '../tensor';
import { checkNumber } from '../ops/validate';

/** Checkpointable optimiser state: scalar settings plus named state tensors ("<param index>.<slot>"). */
export interface OptimizerState {
  type: string;
  /** Hyper-parameters (lr, betas, ...) and per-parameter step counts ("step.<i>"). */
  scalars: Record<string, number>;
  /** Live state tensors (moments, accumulators); loadState copies from them. */
  tensors: Record<string, Tensor>;
}

export abstract class Optimizer {
  readonly params: readonly Tensor[];
  /** Learning rate used by the next step() (schedules assign it). */
  lr: number;
  protected readonly slots: Map<string, Tensor>[];
  protected readonly steps: number[];
  protected abstract readonly typeName: string;

  protected constructor(kind: string, params: readonly Tensor[], lr: number) {
    if (!Array.isArray(params)) throw new TypeError(`${kind}: params: expected an array of Tensors, got ${typeof params}`);
    params.forEach((p, i) => {
      if (!(p instanceof Tensor)) throw new TypeError(`${kind}: params[${i}]: expected a Tensor, got ${typeof p}`);
      if (p.dtype !== 'f32') throw new TypeError(`${kind}: params[${i}]: expected dtype f32, got ${p.dtype}`);
    });
    if (new Set(params).size !== params.length) throw new Error(`${kind}: params: the same tensor appears twice`);
    this.params = [...params];
    this.lr = checkNumber(kind, 'lr', lr, { min: 0 });
    this.slots = params.map(() => new Map<string, Tensor>());
    this.steps = params.map(() => 0);
  }

  /** Applies one update from the current gradients. */
  abstract step(): void;

  /** Drops the dense and sparse gradients of every parameter. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad = null;
      if (p.sparseGrad !== null) {
        p.sparseGrad.rows.dispose();
        p.sparseGrad.values.dispose();
        p.sparseGrad = null;
      }
    }
  }

  /** Per-parameter state tensor `name`, allocated as zeros (filled with `init`) on first use. */
  protected slot(i: number, name: string, init = 0): Tensor {
    let t = this.slots[i].get(name);
    if (t === undefined) {
      const p = this.params[i];
      t = keep(zeros(p.shape, { device: p.device }));
      if (init !== 0) t.storage.fill(init, 'f32');
      this.slots[i].set(name, t);
    }
    return t;
  }

  protected abstract hyper(): Record<string, number>;
  protected abstract setHyper(h: Record<string, number>): void;

  state(): OptimizerState {
    const scalars: Record<string, number> = { ...this.hyper(), lr: this.lr };
    this.steps.forEach((s, i) => {
      scalars[`step.${i}`] = s;
    });
    const tensors: Record<string, Tensor> = {};
    this.slots.forEach((m, i) => {
      for (const [name, t] of m) tensors[`${i}.${name}`] = t;
    });
    return { type: this.typeName, scalars, tensors };
  }

  /** Restores a state() (validated fully before anything changes). */
  loadState(s: OptimizerState): void {
    const kind = this.typeName;
    if (s === null || typeof s !== 'object') throw new TypeError(`${kind}.loadState: expected an object, got ${String(s)}`);
    if (s.type !== kind) throw new Error(`${kind}.loadState: type: expected ${kind}, got ${String(s.type)}`);
    const problems: string[] = [];
    const copies: [number, string, Tensor][] = [];
    for (const [key, t] of Object.entries(s.tensors ?? {})) {
      const m = /^(\d+)\.(\w+)$/.exec(key);
      const i = m === null ? -1 : Number(m[1]);
      if (m === null || i >= this.params.length) {
        problems.push(`unexpected tensor ${key}`);
        continue;
      }
      const p = this.params[i];
      if (!(t instanceof Tensor) || t.disposed) problems.push(`${key}: expected a live Tensor`);
      else if (t.rank !== p.rank || t.shape.some((d, j) => d !== p.shape[j])) problems.push(`${key}: expected shape ${formatShape(p.shape)}, got ${formatShape(t.shape)}`);
      else if (t.dtype !== 'f32') problems.push(`${key}: expected dtype f32, got ${t.dtype}`);
      else copies.push([i, m[2], t]);
    }
    const steps = this.steps.map((_, i) => s.scalars?.[`step.${i}`]);
    steps.forEach((v, i) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) problems.push(`step.${i}: expected a non-negative integer, got ${String(v)}`);
    });
    if (typeof s.scalars?.lr !== 'number') problems.push(`lr: expected a number, got ${String(s.scalars?.lr)}`);
    if (problems.length > 0) throw new Error(`${kind}.loadState: ${problems.join('; ')}`);
    for (const [i, name, t] of copies) {
      const dst = this.slot(i, name);
      if (dst !== t) dst.storage.copyFrom(t.storage);
    }
    steps.forEach((v, i) => {
      this.steps[i] = v as number;
    });
    this.lr = s.scalars.lr;
    this.setHyper(s.scalars);
  }

  /** Frees the optimiser state (not the parameters). */
  dispose(): void {
    for (const m of this.slots) {
      for (const t of m.values()) t.dispose();
      m.clear();
    }
  }
}
