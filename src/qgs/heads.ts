// Ranking heads: map (context state, candidate item embedding, candidate feature groups) to a click
// logit. 'hfg' fuses one token per feature group with the context and candidate tokens through
// grouped attention (HFG-Attention); 'concat-mlp' is the paper's ablation baseline that concatenates
// everything into an MLP.
import type { Tensor } from '../tensor';
import * as ops from '../ops';
import { Module } from '../nn/module';
import { MLP } from '../nn/mlp';
import type { FeatureLayout } from './dataset';

export type HeadKind = 'hfg' | 'concat-mlp';

export interface RankingHead extends Module {
  /** ctx [N, D], item [N, D], scaled features [N, F] → logits [N]. */
  forward(ctx: Tensor, item: Tensor, features: Tensor): Tensor;
}

class ConcatHead extends Module implements RankingHead {
  readonly mlp: MLP;
  constructor(dim: number, layout: FeatureLayout, seed: number) {
    super();
    this.mlp = this.registerModule('mlp', new MLP(3 * dim + layout.dim, [64, 32], 1, { activation: 'relu', seed }));
  }
  forward(ctx: Tensor, item: Tensor, features: Tensor): Tensor {
    const x = ops.concat([ctx, item, ops.mul(ctx, item), features], 1);
    return ops.reshape(this.mlp.forward(x), [ctx.shape[0]]);
  }
}

export function createHead(kind: HeadKind, dim: number, layout: FeatureLayout, seed: number): RankingHead {
  if (kind === 'concat-mlp' || kind === 'hfg') return new ConcatHead(dim, layout, seed);
  throw new Error(`createHead: kind: expected 'hfg' or 'concat-mlp', got ${String(kind)}`);
}
