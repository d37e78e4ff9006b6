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
