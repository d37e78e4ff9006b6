// nn.Dropout: inverted dropout while training, identity after eval(). With a seed, call i uses
// seed + i, so a training run is reproducible; without one every call draws a fresh mask.
import { Tensor } from '../tensor';
import { dropout } from '../ops/elementwise';
import { checkNumber } from '../ops/validate';
import { Module } from './module';

export interface DropoutModuleOptions {
  seed?: number;
}

export class Dropout extends Module {
  readonly p: number;
  private readonly seed: number | undefined;
  private calls = 0;

  constructor(p = 0.5, opts: DropoutModuleOptions = {}) {
    super();
    this.p = checkNumber('Dropout', 'p', p, { min: 0 });
    if (!(p < 1)) throw new RangeError(`Dropout: p: expected a probability in [0, 1), got ${p}`);
    this.seed = opts.seed === undefined ? undefined : checkNumber('Dropout', 'seed', opts.seed, { integer: true, min: 0 });
  }

  forward(x: Tensor): Tensor {
    const seed = this.seed === undefined ? undefined : (this.seed + this.calls++) % 2 ** 52;
    return dropout(x, this.p, { training: this.training, seed });
  }
}
