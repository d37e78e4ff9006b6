// Learning-rate schedules: pure functions of the step, so resuming from a checkpoint needs only the
// step count.
import { checkNumber } from '../ops/validate';

export interface WarmupCosineOptions {
  /** Peak learning rate reached at the end of warm-up. */
  lr: number;
  /** Linear warm-up steps (from lr / warmup at step 0 up to lr). */
  warmup: number;
  /** Step at which the cosine reaches minLr (and stays there). */
  total: number;
  /** Final learning rate (default 0). */
  minLr?: number;
}

/**
 * Linear warm-up then cosine decay: step s (0-based) → lr · (s+1)/warmup for s < warmup, then
 * minLr + (lr − minLr) · ½(1 + cos(π · progress)), progress = (s − warmup)/(total − warmup) ∈ [0, 1].
 * Use: `opt.lr = sched(step)` before each `opt.step()`.
 */
export function warmupCosine(o: WarmupCosineOptions): (step: number) => number {
  if (o === null || typeof o !== 'object') throw new TypeError(`warmupCosine: expected an options object, got ${String(o)}`);
  const lr = checkNumber('warmupCosine', 'lr', o.lr, { min: 0 });
  const warmup = checkNumber('warmupCosine', 'warmup', o.warmup, { integer: true, min: 0 });
  const total = checkNumber('warmupCosine', 'total', o.total, { integer: true, min: 1 });
  const minLr = checkNumber('warmupCosine', 'minLr', o.minLr ?? 0, { min: 0, max: lr });
  if (warmup > total) throw new RangeError(`warmupCosine: warmup: expected <= total (${total}), got ${warmup}`);
  return (step: number): number => {
    checkNumber('warmupCosine', 'step', step, { integer: true, min: 0 });
    if (step < warmup) return (lr * (step + 1)) / warmup;
    if (total === warmup) return minLr;
    const progress = Math.min(1, (step - warmup) / (total - warmup));
    return minLr + (lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}
