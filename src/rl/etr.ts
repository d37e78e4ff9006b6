// ETR — elastic trust regions (DESIGN.md §4.3; research/papers.md §3.2, our INFERRED formulation:
// the paper's exact formula could not be read). Per-sequence clip bounds
//   ε_i = ε_0 · clamp(1 + α(|A_i| − 1), m_min, m_max) · (λ_min + (1 − λ_min) · 4 p_g (1 − p_g))
// micro level: larger bounds for large-|A| (high-confidence) samples; macro level: larger budgets
// for prompts near the "optimal learning zone" p_g ≈ 0.5. With α = 0 and λ_min = 1 the factors are
// exactly 1 and the plain GRPO bounds come back.
import { checkFiniteArray, resolveGroups, type Grouping } from './advantages';

export interface EtrOptions {
  /** Base lower / upper bounds ε_0 (GRPO default 0.2 / 0.2). */
  epsLow?: number;
  epsHigh?: number;
  /** Micro elasticity α (default 0.5, a guess: the paper's value is unknown). */
  alpha?: number;
  /** Clamp of the micro factor (defaults 0.5 and 2). Must contain 1. */
  mMin?: number;
  mMax?: number;
  /** Floor of the macro factor at p_g ∈ {0, 1} (default 0.5). 1 disables the macro level. */
  lambdaMin?: number;
  /** Scale only ε_high (keep ε_low at ε_0), a conservative variant. Default false. */
  widenOnlyHigh?: boolean;
}

export interface EtrBounds {
  /** Per-sequence ε_low, capped at 1 (a ratio bound 1 − ε_low cannot go below 0). */
  epsLow: Float64Array;
  epsHigh: Float64Array;
}

function num(op: string, name: string, v: unknown, dflt: number, lo: number, hi: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw new RangeError(`${op}: ${name}: expected a number in [${lo}, ${hi}], got ${String(v)}`);
  return v;
}

/** Per-sequence ETR clip bounds from advantages A_i and group pass rates p_g (per response). */
export function etrBounds(advantages: ArrayLike<number>, passRates: ArrayLike<number>, opts: EtrOptions = {}): EtrBounds {
  const op = 'etrBounds';
  const A = checkFiniteArray(op, 'advantages', advantages);
  const P = checkFiniteArray(op, 'passRates', passRates);
  if (P.length !== A.length) throw new RangeError(`${op}: passRates: expected ${A.length} values (one per response), got ${P.length}`);
  const e0l = num(op, 'epsLow', opts.epsLow, 0.2, 0, 1);
  const e0h = num(op, 'epsHigh', opts.epsHigh, 0.2, 0, 1e6);
  const alpha = num(op, 'alpha', opts.alpha, 0.5, 0, 1e6);
  const mMin = num(op, 'mMin', opts.mMin, 0.5, 0, 1);
  const mMax = num(op, 'mMax', opts.mMax, 2, 1, 1e6);
  const lambdaMin = num(op, 'lambdaMin', opts.lambdaMin, 0.5, 0, 1);
  const epsLow = new Float64Array(A.length);
  const epsHigh = new Float64Array(A.length);
  for (let i = 0; i < A.length; i++) {
    const p = P[i];
    if (p < 0 || p > 1) throw new RangeError(`${op}: passRates: expected values in [0, 1], got ${p} at index ${i}`);
    const m = Math.min(Math.max(1 + alpha * (Math.abs(A[i]) - 1), mMin), mMax);
    const n = lambdaMin + (1 - lambdaMin) * 4 * p * (1 - p);
    const f = m * n;
    epsHigh[i] = e0h * f;
    epsLow[i] = opts.widenOnlyHigh ? e0l : Math.min(1, e0l * f);
  }
  return { epsLow, epsHigh };
}

/**
 * ETR macro level as an explicit budget (research/papers.md §3.2 option): per-response weight
 * w_g = σ_g / mean_g σ_g with σ_g = sqrt(p_g (1 − p_g)). Multiply the advantages by it (the
 * clipped surrogate is linear in A for positive weights). Groups with σ = 0 get weight 0; if every
 * group has σ = 0 the weights are all 1.
 */
export function etrGroupWeights(rewards: ArrayLike<number>, grouping: Grouping, threshold = 0): Float64Array {
  const op = 'etrGroupWeights';
  const r = checkFiniteArray(op, 'rewards', rewards);
  const { members } = resolveGroups(op, r.length, grouping);
  const sig = members.map((g) => {
    const p = g.filter((i) => r[i] > threshold).length / g.length;
    return Math.sqrt(p * (1 - p));
  });
  const mean = sig.reduce((a, b) => a + b, 0) / Math.max(1, sig.length);
  const out = new Float64Array(r.length).fill(1);
  if (mean === 0) return out;
  members.forEach((g, k) => g.forEach((i) => (out[i] = sig[k] / mean)));
  return out;
}
