// Optimisers (DESIGN.md §1: optim → ops): AdamW (fused native update), SparseAdam / SparseAdagrad
// for row-sparse embedding gradients, global-norm clipping, warm-up + cosine schedule.
export { Optimizer } from './optimizer';
export type { OptimizerState } from './optimizer';
export { AdamW } from './adamw';
export type { AdamWOptions } from './adamw';
export { SparseAdam, SparseAdagrad } from './sparse';
export type { SparseAdamOptions, SparseAdagradOptions } from './sparse';
export { clipGradNorm } from './clip';
export { warmupCosine } from './schedule';
export type { WarmupCosineOptions } from './schedule';
