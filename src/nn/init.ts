// Seeded parameter initialisers. Without a seed the global generator is used (manualSeed()
// makes that reproducible too).
import { Tensor, rand, randn, zeros, type Device } from '../tensor';

export type LinearInit = 'default' | 'xavier' | 'kaiming';

export interface InitOptions {
  seed?: number;
  device?: Device;
}

/** U(-bound, bound). */
export function uniform(shape: readonly number[], bound: number, opts: InitOptions = {}): Tensor {
  return rand(shape, { low: -bound, high: bound, seed: opts.seed, device: opts.device });
}

/** Glorot/Xavier uniform for a [fanOut, fanIn] matrix: U(±sqrt(6 / (fanIn + fanOut))). */
export function xavierUniform(shape: readonly [number, number], opts: InitOptions = {}): Tensor {
  const [fanOut, fanIn] = shape;
  return uniform(shape, Math.sqrt(6 / Math.max(1, fanIn + fanOut)), opts);
}

/** He/Kaiming normal for ReLU nets: N(0, 2 / fanIn). */
export function kaimingNormal(shape: readonly [number, number], opts: InitOptions = {}): Tensor {
  return randn(shape, { std: Math.sqrt(2 / Math.max(1, shape[1])), seed: opts.seed, device: opts.device });
}

/** Weight and bias of a Linear layer [out, in]. 'default' is PyTorch's: U(±1/sqrt(in)) for both. */
export function initLinear(outF: number, inF: number, kind: LinearInit, bias: boolean, opts: InitOptions): { w: Tensor; b: Tensor | null } {
  const bound = 1 / Math.sqrt(Math.max(1, inF));
  // The bias gets its own stream (seed + 1) so it does not repeat the weight's first values.
  const biasOpts: InitOptions = { seed: opts.seed === undefined ? undefined : opts.seed + 1, device: opts.device };
  switch (kind) {
    case 'default':
      return { w: uniform([outF, inF], bound, opts), b: bias ? uniform([outF], bound, biasOpts) : null };
    case 'xavier':
      return { w: xavierUniform([outF, inF], opts), b: bias ? zeros([outF], { device: opts.device }) : null };
    case 'kaiming':
      return { w: kaimingNormal([outF, inF], opts), b: bias ? zeros([outF], { device: opts.device }) : null };
    default:
      throw new TypeError(`Linear: init: expected 'default', 'xavier' or 'kaiming', got ${String(kind)}`);
  }
}
