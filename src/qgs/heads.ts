// Ranking heads: map (context state, candidate item representation, candidate feature groups) to a
// click logit. Each numeric feature group of the dense rows becomes one D-dim token through its own
// projection; then 'hfg' fuses [context, item, group tokens] with HFG-Attention (nn.HFGAttention),
// and 'concat-mlp' (the paper's ablation) concatenates the same tokens into an MLP
// (nn.ConcatFeatureMLP). Both end in a linear click logit, so the comparison isolates the fusion.
import type { Tensor } from '../tensor';
import * as ops from '../ops';
import { Module } from '../nn/module';
import { Linear } from '../nn/linear';
import { MLP } from '../nn/mlp';
import { HFGAttention, type HFGAttentionOptions, type HFGPooling } from '../nn/hfg-attention';
import { ConcatFeatureMLP } from '../nn/concat-feature-mlp';
import type { FeatureLayout } from './dataset';

export type HeadKind = 'hfg' | 'concat-mlp';

/** The HFG fusion's shape (kind 'hfg'); dim, numGroups and seed come from the head. */
export type HfgHeadOptions = Pick<HFGAttentionOptions, 'heads' | 'layers' | 'pooling' | 'ffnHidden'>;

/**
 * The default HFG shape (QgsConfig's hfg* defaults are these): one layer read out at the context
 * token is what the fused serving head (ops.hfgRankHead) runs; FFN width ffnMult · dim.
 */
export const DEFAULT_HFG_HEAD: { readonly heads: number; readonly layers: number; readonly pooling: HFGPooling; readonly ffnMult: number } = {
  heads: 2,
  layers: 1,
  pooling: 'context',
  ffnMult: 2,
};

/**
 * Dense feature rows [N, F] → one token per group [N, G, D]. This is nn.FeatureGroups' dense path
 * applied to packed rows (already standardised by the trainer's scaler), which avoids building one
 * JS object per candidate on the training hot path.
 */
class DenseGroupTokens extends Module {
  readonly projections: Linear[] = [];
  constructor(readonly layout: FeatureLayout, dim: number, seed: number) {
    super();
    layout.groups.forEach((g, i) => this.projections.push(this.registerModule(`group${i}`, new Linear(g.width, dim, { seed: seed + i }))));
  }
  forward(features: Tensor): Tensor {
    const N = features.shape[0];
    const slices = ops.split(features, this.layout.groups.map((g) => g.width), 1);
    const tokens = slices.map((x, i) => ops.reshape(this.projections[i].forward(x), [N, 1, -1]));
    return ops.concat(tokens, 1);
  }
}

export class RankingHead extends Module {
  readonly groups: DenseGroupTokens;
  readonly fusion: HFGAttention | ConcatFeatureMLP;
  readonly match: MLP;
  readonly logit: Linear;

  constructor(readonly kind: HeadKind, dim: number, layout: FeatureLayout, seed: number, hfg?: HfgHeadOptions) {
    super();
    const G = layout.groups.length;
    this.groups = this.registerModule('groups', new DenseGroupTokens(layout, dim, seed));
    if (kind === 'hfg') {
      const { heads, layers, pooling, ffnMult } = DEFAULT_HFG_HEAD;
      this.fusion = this.registerModule('fusion', new HFGAttention({ ...(hfg ?? { heads, layers, pooling, ffnHidden: ffnMult * dim }), dim, numGroups: G, seed: seed + 50 }));
    } else if (kind === 'concat-mlp') {
      this.fusion = this.registerModule('fusion', new ConcatFeatureMLP({ dim, numGroups: G, hidden: [4 * dim, 2 * dim], seed: seed + 50 }));
    } else {
      throw new Error(`RankingHead: kind: expected 'hfg' or 'concat-mlp', got ${String(kind)}`);
    }
    // The logit also sees a user–item match MLP over [ctx, item, ctx ⊙ item] (the sequence side of
    // the score, as in the retrieval head of DESIGN.md §5) and the standardised features themselves
    // (a wide path, so the head starts from what a linear model on the features knows). Both are
    // identical for the two fusion kinds, so the comparison still isolates the fusion.
    this.match = this.registerModule('match', new MLP(3 * dim, [2 * dim], dim, { activation: 'relu', seed: seed + 77 }));
    this.logit = this.registerModule('logit', new Linear(2 * dim + layout.dim, 1, { seed: seed + 99 }));
  }

  /** ctx [N, D], item [N, D], standardised features [N, F] → logits [N]. */
  forward(ctx: Tensor, item: Tensor, features: Tensor): Tensor {
    return this.forwardTokens(ctx, item, this.groups.forward(features), features);
  }

  /** Same as forward, with the group tokens [N, G, D] already computed (the serving plan's path). */
  forwardTokens(ctx: Tensor, item: Tensor, groupTokens: Tensor, features: Tensor): Tensor {
    const pooled = this.fusion.forward(ctx, item, groupTokens);
    const match = ops.relu(this.match.forward(ops.concat([ctx, item, ops.mul(ctx, item)], 1)));
    return ops.reshape(this.logit.forward(ops.concat([pooled, match, features], 1)), [ctx.shape[0]]);
  }
}

export function createHead(kind: HeadKind, dim: number, layout: FeatureLayout, seed: number, hfg?: HfgHeadOptions): RankingHead {
  return new RankingHead(kind, dim, layout, seed, hfg);
}
