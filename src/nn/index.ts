// Modules: nn.Module and the layers built on the ops (DESIGN.md §1: nn → ops).
export { Module } from './module';
export type { StateDict, LoadStateDictOptions } from './module';
export { Linear } from './linear';
export type { LinearOptions } from './linear';
export { Embedding } from './embedding';
export type { EmbeddingModuleOptions } from './embedding';
export { LayerNorm } from './layernorm';
export type { LayerNormOptions } from './layernorm';
export { Dropout } from './dropout';
export type { DropoutModuleOptions } from './dropout';
export { MLP } from './mlp';
export type { MLPOptions, Activation } from './mlp';
export { uniform, xavierUniform, kaimingNormal } from './init';
export type { LinearInit, InitOptions } from './init';
export { LinearHSTU } from './linear-hstu';
export type { LinearHSTUOptions, LinearHSTUState, SequenceBatchOptions } from './linear-hstu';
export { HSTU } from './hstu';
export type { HSTUOptions, HSTUBatchOptions, HSTUState } from './hstu';
export { FeatureGroups, OOV_ROW, MISSING_ROW, FIRST_VALUE_ROW } from './feature-groups';
export type {
  FeatureGroupsOptions,
  FeatureGroupsOutput,
  FeatureGroupSpec,
  FeatureSpec,
  DenseFeatureSpec,
  CategoricalFeatureSpec,
  CategoryValue,
  RawFeatureValue,
  FeatureRecord,
  DenseStats,
} from './feature-groups';
export { HFGAttention } from './hfg-attention';
export type { HFGAttentionOptions, HFGPooling } from './hfg-attention';
export { ConcatFeatureMLP } from './concat-feature-mlp';
export type { ConcatFeatureMLPOptions } from './concat-feature-mlp';
