// Ranking heads: map (context state, candidate item embedding, candidate feature groups) to a click
// logit. 'hfg' fuses one token per feature group with the context and candidate tokens through
// grouped attention (HFG-Attention); 'concat-mlp' is the paper's ablation baseline that concatenates
// everything into an MLP.
import type { Tensor } from '../tensor';
import * as ops from '../ops';
import { Module } from '../nn/module';
import { MLP } from '../nn/mlp';
import { HFGAttention } from '../nn/hfg-attention';
import { ConcatFeatureMLP } from '../nn/concat-feature-mlp';
import type { FeatureLayout } from './dataset';

export type HeadKind = 'hfg' | 'concat-mlp';

export interface RankingHead extends Module {
  /** ctx [N, D], item [N, D], scaled features [N, F] → logits [N]. */
  forward(ctx: Tensor, item: Tensor, features: Tensor): Tensor;
}

export function createHead(kind: HeadKind, dim: number, layout: FeatureLayout, seed: number): RankingHead {
  if (kind === 'hfg') return new HfgHead(dim, layout, seed);
  if (kind === 'concat-mlp') return new ConcatHead(dim, layout, seed);
  throw new Error(`createHead: kind: expected 'hfg' or 'concat-mlp', got ${String(kind)}`);
}
