// nn.Embedding: a [numEmbeddings, dim] table looked up by i32 ids; optionally with row-sparse
// gradients (weight.sparseGrad) for large catalogues trained with optim.SparseAdam/SparseAdagrad.
import { Tensor, randn, type Device } from '../tensor';
import { embedding } from '../ops/nn';
import { checkNumber } from '../ops/validate';
import { Module } from './module';

export interface EmbeddingModuleOptions {
  /** Row-sparse gradients (default false). */
  sparse?: boolean;
  /** Init N(0, std²) (default std 1, as PyTorch). */
  std?: number;
  seed?: number;
  device?: Device;
}

export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly dim: number;
  readonly sparse: boolean;
  readonly weight: Tensor;

  constructor(numEmbeddings: number, dim: number, opts: EmbeddingModuleOptions = {}) {
    super();
    this.numEmbeddings = checkNumber('Embedding', 'numEmbeddings', numEmbeddings, { integer: true, min: 1 });
    this.dim = checkNumber('Embedding', 'dim', dim, { integer: true, min: 1 });
    const std = checkNumber('Embedding', 'std', opts.std ?? 1, { min: 0 });
    this.sparse = opts.sparse ?? false;
    this.weight = this.registerParameter('weight', randn([numEmbeddings, dim], { std, seed: opts.seed, device: opts.device }));
  }

  /** i32 ids of any shape → [...ids.shape, dim]. */
  forward(indices: Tensor): Tensor {
    return embedding(this.weight, indices, { sparse: this.sparse });
  }
}
