// qgs-engine: query-conditioned generative search rankers and RL-from-verifiable-rewards losses
// with a native C++/CUDA core. Public API root (CommonJS and ESM).
export {
  Tensor,
  tensor,
  zeros,
  ones,
  full,
  randn,
  rand,
  empty,
  scope,
  keep,
  manualSeed,
  memoryStats,
  releaseCachedMemory,
  isTensor,
  Random,
  shapeSize,
} from './tensor';
export type { Shape, SparseRowGrad, TensorOptions, TensorData, NestedArray, DType, Device } from './tensor';
export { noGrad, isGradEnabled, record, clone } from './autograd';
export type { GradNode, BackwardRule } from './autograd';
export { backendInfo } from './native';
export type { CudaInfo, BuildInfo } from './native';
export * as ops from './ops';
export * as nn from './nn';
export * as optim from './optim';
export * as data from './data';
export * as metrics from './metrics';
export * as io from './io';
export { Ranker } from './qgs/serving';
export * as serving from './qgs/serving';
export * as qgs from './qgs';
export * as rl from './rl';
