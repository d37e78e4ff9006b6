// The serving form of a trained model's ranking side (weights frozen once a checkpoint is loaded):
// item representations precomputed for the whole catalogue (embedItems is four lookups, a title-term
// pooling and three adds per candidate — ~1 ms for 1,000 candidates, now one gather), and the
// per-group feature projections folded into one block-diagonal matrix (one GEMM instead of a split,
// G small GEMMs and a concat). The HFG head itself runs its fused CPU layer under noGrad. The table
// also serves the item half of the history's pair tokens (encode, step).
import { Tensor, tensor, keep, scope } from '../tensor';
import { noGrad } from '../autograd';
import * as ops from '../ops';
import type { QgsModel } from './model';

export interface RankingPlanOptions {
  /** Largest precomputed item table (bytes); a bigger catalogue embeds candidates per request. Default 256 MiB. */
  maxItemTableBytes?: number;
}

/** Items embedded per chunk while building the table (bounds the temporaries). */
const TABLE_CHUNK = 8192;

export class RankingPlan {
  /** [itemVocab, D] item representations, or null when the catalogue exceeds maxItemTableBytes. */
  readonly itemTable: Tensor | null;
  /** [G·D, F] block-diagonal group projections and their biases [G·D]. */
  private readonly groupWeight: Tensor;
  private readonly groupBias: Tensor;

  constructor(readonly model: QgsModel, opts: RankingPlanOptions = {}) {
    const { dim: D, itemVocab: V, layout } = model.cfg;
    const maxBytes = opts.maxItemTableBytes ?? 256 * 2 ** 20;
    this.itemTable = V * D * 4 <= maxBytes ? keep(this.buildItemTable(V, D)) : null;
    const F = layout.dim;
    const G = layout.groups.length;
    const w = new Float32Array(G * D * F);
    const b = new Float32Array(G * D);
    model.head.groups.projections.forEach((proj, g) => {
      const { offset, width } = layout.groups[g];
      const pw = proj.weight.toFloat32Array(); // [D, width]
      for (let o = 0; o < D; o++) for (let i = 0; i < width; i++) w[(g * D + o) * F + offset + i] = pw[o * width + i];
      if (proj.bias !== null) b.set(proj.bias.toFloat32Array(), g * D);
    });
    this.groupWeight = keep(tensor(w, [G * D, F]));
    this.groupBias = keep(tensor(b, [G * D]));
  }

  private buildItemTable(V: number, D: number): Tensor {
    const host = new Float32Array(V * D);
    for (let s = 0; s < V; s += TABLE_CHUNK) {
      const ids = Int32Array.from({ length: Math.min(TABLE_CHUNK, V - s) }, (_, i) => s + i);
      host.set(scope(() => noGrad(() => this.model.embedItems(ids).toFloat32Array())), s * D);
    }
    return tensor(host, [V, D]);
  }

  /** Item representations [N, D] for item token ids. */
  items(items: Int32Array): Tensor {
    if (this.itemTable === null) return this.model.embedItems(items);
    return ops.gather(this.itemTable, tensor(items, [items.length], { dtype: 'i32' }), 0);
  }

  /** Pair-token embeddings [T, D] (QgsModel.embedTokens with the item side from the table). */
  embedTokens(terms: Int32Array, items: Int32Array): Tensor {
    return ops.add(this.model.poolTerms(terms, this.model.cfg.maxTerms), this.items(items));
  }

  /** Click logits [N] — the same function as QgsModel.rankLogits (call under noGrad). */
  rankLogits(ctx: Tensor, items: Int32Array, features: Tensor): Tensor {
    const N = items.length;
    const G = this.model.cfg.layout.groups.length;
    const groups = ops.reshape(ops.linear(features, this.groupWeight, this.groupBias), [N, G, this.model.cfg.dim]);
    return this.model.head.forwardTokens(ctx, this.items(items), groups, features);
  }

  dispose(): void {
    this.itemTable?.dispose();
    this.groupWeight.dispose();
    this.groupBias.dispose();
  }
}
