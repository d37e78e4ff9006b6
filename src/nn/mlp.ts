// nn.MLP: Linear → activation → dropout, repeated over the hidden sizes, then a final Linear (no
// activation on the output: it feeds a loss or a head).
import { Tensor, type Device } from '../tensor';
import { relu, gelu, silu, tanh } from '../ops/elementwise';
import { checkNumber } from '../ops/validate';
import { Module } from './module';
import { Linear } from './linear';
import { Dropout } from './dropout';
import type { LinearInit } from './init';

export type Activation = 'relu' | 'gelu' | 'silu' | 'tanh';

export interface MLPOptions {
  activation?: Activation;
  /** Dropout probability after each hidden activation (default 0: none). */
  dropout?: number;
  bias?: boolean;
  init?: LinearInit;
  /** Seeds layer i with seed + 10 i (and its dropout with seed + 10 i + 5). */
  seed?: number;
  device?: Device;
}

const activations: Record<Activation, (x: Tensor) => Tensor> = { relu, gelu, silu, tanh };

export class MLP extends Module {
  readonly layers: Linear[] = [];
  readonly activation: Activation;
  private readonly drops: Dropout[] = [];

  constructor(inFeatures: number, hiddenSizes: readonly number[], outFeatures: number, opts: MLPOptions = {}) {
    super();
    if (!Array.isArray(hiddenSizes)) throw new TypeError(`MLP: hiddenSizes: expected an array of integers, got ${typeof hiddenSizes}`);
    const act = opts.activation ?? 'relu';
    if (!(act in activations)) throw new TypeError(`MLP: activation: expected 'relu', 'gelu', 'silu' or 'tanh', got ${String(act)}`);
    this.activation = act;
    const p = opts.dropout ?? 0;
    const sizes = [inFeatures, ...hiddenSizes, outFeatures];
    sizes.forEach((s, i) => checkNumber('MLP', i === 0 ? 'inFeatures' : i === sizes.length - 1 ? 'outFeatures' : `hiddenSizes[${i - 1}]`, s, { integer: true, min: 1 }));
    for (let i = 0; i + 1 < sizes.length; i++) {
      const seed = opts.seed === undefined ? undefined : opts.seed + 10 * i;
      this.layers.push(this.registerModule(`fc${i}`, new Linear(sizes[i], sizes[i + 1], { bias: opts.bias, init: opts.init, seed, device: opts.device })));
      if (i + 2 < sizes.length && p > 0) {
        this.drops.push(this.registerModule(`drop${i}`, new Dropout(p, { seed: seed === undefined ? undefined : seed + 5 })));
      }
    }
  }

  forward(x: Tensor): Tensor {
    let h = x;
    const f = activations[this.activation];
    for (let i = 0; i < this.layers.length; i++) {
      h = this.layers[i].forward(h);
      if (i + 1 < this.layers.length) {
        h = f(h);
        const d = this.drops[i];
        if (d !== undefined) h = d.forward(h);
      }
    }
    return h;
  }
}
