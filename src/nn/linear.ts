// nn.Linear: y = x Wᵀ + b over the last axis (weight [out, in], PyTorch layout), one fused op.
import { Tensor, type Device } from '../tensor';
import { linear } from '../ops/linalg';
import { checkNumber } from '../ops/validate';
import { Module } from './module';
import { initLinear, type LinearInit } from './init';

export interface LinearOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
  /** 'default' (PyTorch: U(±1/sqrt(in))), 'xavier' (Glorot uniform, zero bias), 'kaiming' (He normal, zero bias). */
  init?: LinearInit;
  seed?: number;
  device?: Device;
}

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super();
    this.inFeatures = checkNumber('Linear', 'inFeatures', inFeatures, { integer: true, min: 1 });
    this.outFeatures = checkNumber('Linear', 'outFeatures', outFeatures, { integer: true, min: 1 });
    const { w, b } = initLinear(outFeatures, inFeatures, opts.init ?? 'default', opts.bias ?? true, { seed: opts.seed, device: opts.device });
    this.weight = this.registerParameter('weight', w);
    this.bias = b === null ? null : this.registerParameter('bias', b);
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}
