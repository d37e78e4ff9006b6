// Named loss presets that expand to explicit options (nothing is hidden: a preset is a plain object
// the caller can print, diff and override). Use as
//   const p = rl.presets.dapo();
//   const adv = rl.groupAdvantages(rewards, { groupSize: G }, p.advantage);
//   ops.clippedPolicyLoss(logp, { ...p.loss, oldLogp, advantages: tensor(Float32Array.from(adv)), mask });
// Sources: research/papers.md (§3 ETR, §4 AFRL, §5 CLPO, §6 GRPO/DAPO/Dr.GRPO) and
// research/anchors-kernels.md §4 (verl / TRL defaults). INFERRED values are marked.
import type { PolicyLossAgg } from '../ops/policy';
import type { GroupAdvantageOptions } from './advantages';
import type { EtrOptions } from './etr';
import type { ClpoThresholds, ClpoKlScaleOptions } from './clpo';

/** Scalar loss options of ops.clippedPolicyLoss (the tensors are added by the caller). */
export interface PresetLossOptions {
  epsLow: number;
  epsHigh: number;
  dualClip?: number;
  klBeta: number;
  agg: PolicyLossAgg;
  /** A fixed normalizer (Dr.GRPO: N_global · maxLen); otherwise pass the global token/sequence count. */
  normalizer?: number;
}

export interface PolicyPreset {
  name: 'grpo' | 'dapo' | 'drgrpo' | 'etr' | 'clpo' | 'modeBalanced';
  /** Where the values come from. */
  source: string;
  advantage: GroupAdvantageOptions & { stepwise?: boolean };
  loss: PresetLossOptions;
  /** DAPO dynamic sampling: drop groups whose rewards are all equal (rl.dapoFilter). */
  dynamicSampling: boolean;
  /** ETR per-sequence bounds (rl.etrBounds) when present. */
  etr?: EtrOptions;
  /** CLPO difficulty thresholds and KL scales (rl.clpoClassify, rl.clpoKlScale) when present. */
  clpo?: ClpoThresholds & ClpoKlScaleOptions;
  /** AFRL mode-balanced SFT weight λ (fusedLinearPolicyLoss sftWeight) when present. */
  sftWeight?: number;
}

type Overrides = { [K in keyof PolicyPreset]?: K extends 'loss' ? Partial<PresetLossOptions> : PolicyPreset[K] };

function merge(base: PolicyPreset, o: Overrides): PolicyPreset {
  return { ...base, ...o, loss: { ...base.loss, ...(o.loss ?? {}) }, advantage: { ...base.advantage, ...(o.advantage ?? {}) } } as PolicyPreset;
}

/** GRPO (DeepSeekMath): std-normalised group advantages, ε = 0.2, k3 KL in the loss with β = 0.04, 1/G · 1/|o_i| aggregation. */
export function grpo(o: Overrides = {}): PolicyPreset {
  return merge(
    {
      name: 'grpo',
      source: 'DeepSeekMath GRPO (ε 0.2, β 0.04, seq-mean-token-mean); verl compute_grpo_outcome_advantage (unbiased std, eps 1e-6)',
      advantage: { mode: 'grpo', eps: 1e-6, std: 'unbiased' },
      loss: { epsLow: 0.2, epsHigh: 0.2, klBeta: 0.04, agg: 'seq-mean-token-mean' },
      dynamicSampling: false,
    },
    o,
  );
}

/** DAPO: clip-higher 0.2 / 0.28, token-level loss, no KL, dynamic sampling (overlong penalty: rl.dapoOverlongPenalty). */
export function dapo(o: Overrides = {}): PolicyPreset {
  return merge(
    {
      name: 'dapo',
      source: 'DAPO (arXiv 2503.14476): ε_low 0.2, ε_high 0.28, token-mean, β 0, dynamic sampling; papers.md §6.1',
      advantage: { mode: 'grpo', eps: 1e-6, std: 'unbiased' },
      loss: { epsLow: 0.2, epsHigh: 0.28, klBeta: 0, agg: 'token-mean' },
      dynamicSampling: true,
    },
    o,
  );
}

/**
 * Dr.GRPO: advantages R − mean (no std), Σ m ℓ / (N · L_max). Pass `loss.normalizer` =
 * N_global · maxLen for micro-batches; without it the default N · T (padded length) is used.
 */
export function drgrpo(o: Overrides = {}): PolicyPreset {
  return merge(
    {
      name: 'drgrpo',
      source: 'Dr.GRPO (arXiv 2503.20783): no std normalisation, constant normaliser N·L_max, β 0; verl seq-mean-token-sum-norm',
      advantage: { mode: 'drgrpo' },
      loss: { epsLow: 0.2, epsHigh: 0.2, klBeta: 0, agg: 'seq-mean-token-sum' },
      dynamicSampling: false,
    },
    o,
  );
}

/** ETR: GRPO advantages with per-sequence elastic bounds (INFERRED coefficients α 0.5, m ∈ [0.5, 2], λ_min 0.5). */
export function etr(o: Overrides = {}): PolicyPreset {
  return merge(
    {
      name: 'etr',
      source: 'ETR (arXiv 2601.03723) dual-level elasticity; formula and coefficients INFERRED (DESIGN.md §4.3, papers.md §3.2)',
      advantage: { mode: 'grpo', eps: 1e-6, std: 'unbiased' },
      loss: { epsLow: 0.2, epsHigh: 0.2, klBeta: 0, agg: 'token-mean' },
      dynamicSampling: false,
      etr: { epsLow: 0.2, epsHigh: 0.2, alpha: 0.5, mMin: 0.5, mMax: 2, lambdaMin: 0.5, widenOnlyHigh: false },
    },
    o,
  );
}

/** CLPO: ε 0.2, dual clip 3, token-mean, β 0.001 × (0.5 hard | 1 other), difficulty (0.3, 0.7], zero-variance groups dropped. */
export function clpo(o: Overrides = {}): PolicyPreset {
  return merge(
    {
      name: 'clpo',
      source: 'CLPO code (github.com/csuking/CLPO, scripts/clpo_qwen3_8b.sh, verl defaults): papers.md §5.1, §7.4',
      advantage: { mode: 'grpo', eps: 1e-6, std: 'unbiased' },
      loss: { epsLow: 0.2, epsHigh: 0.2, dualClip: 3, klBeta: 0.001, agg: 'token-mean' },
      dynamicSampling: true,
      clpo: { tauHard: 0.3, tauMedium: 0.7, hardScale: 0.5, otherScale: 1 },
    },
    o,
  );
}

/** AFRL mode-balanced: Stepwise-GRPO advantages + λ · SFT on expert targets (λ 0.1 and the rest INFERRED). */
export function modeBalanced(o: Overrides = {}): PolicyPreset {
  return merge(
    {
      name: 'modeBalanced',
      source: 'AFRL (arXiv 2602.10006) mode-balanced optimisation; Stepwise-GRPO and λ INFERRED (papers.md §4.2)',
      advantage: { mode: 'grpo', eps: 1e-6, std: 'unbiased', stepwise: true },
      loss: { epsLow: 0.2, epsHigh: 0.2, klBeta: 0, agg: 'token-mean' },
      dynamicSampling: false,
      sftWeight: 0.1,
    },
    o,
  );
}

/** Every preset by name. */
export const presets = { grpo, dapo, drgrpo, etr, clpo, modeBalanced } as const;
