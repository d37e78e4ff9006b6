// RL helpers around the clipped policy losses (DESIGN.md §4.3, §11): group advantages, ETR bounds,
// DAPO filtering, CLPO difficulty and KL scales, and named presets. The losses themselves are
// ops.clippedPolicyLoss and ops.fusedLinearPolicyLoss.
export {
  groupAdvantages,
  stepwiseAdvantages,
  stepwiseTokenAdvantages,
  groupPassRates,
  resolveGroups,
  type Grouping,
  type AdvantageMode,
  type GroupAdvantageOptions,
  type StepwiseOptions,
} from './advantages';
export { etrBounds, etrGroupWeights, type EtrOptions, type EtrBounds } from './etr';
export { dapoFilter, dapoOverlongPenalty, type DapoFilterResult } from './dapo';
export {
  clpoDifficulty,
  clpoClassify,
  clpoKlScale,
  clpoResponseDifficulty,
  type Difficulty,
  type ClpoThresholds,
  type ClpoGroup,
  type ClpoKlScaleOptions,
} from './clpo';
export { presets, grpo, dapo, drgrpo, etr, clpo, modeBalanced, type PolicyPreset, type PresetLossOptions } from './presets';
