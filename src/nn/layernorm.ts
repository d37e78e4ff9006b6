// nn.LayerNorm over the last axis, with learned scale (ones) and shift (zeros) unless affine=false.
import { Tensor, ones, zeros, type Device } from '../tensor';
import { layerNorm } from '../ops/nn';
import { checkNumber } from '../ops/validate';
import { Module } from './module';

export interface LayerNormOptions {
  eps?: number;
  /** Learn weight and bias (default true). */
  affine?: boolean;
  device?: Device;
}

export class LayerNorm extends Module {
  readonly dim: number;
  readonly eps: number;
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;

  constructor(dim: number, opts: LayerNormOptions = {}) {
    super();
    this.dim = checkNumber('LayerNorm', 'dim', dim, { integer: true, min: 1 });
    this.eps = checkNumber('LayerNorm', 'eps', opts.eps ?? 1e-5, { min: Number.MIN_VALUE });
    const affine = opts.affine ?? true;
    this.weight = affine ? this.registerParameter('weight', ones([dim], { device: opts.device })) : null;
    this.bias = affine ? this.registerParameter('bias', zeros([dim], { device: opts.device })) : null;
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}
