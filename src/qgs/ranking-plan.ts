// The serving form of a trained model's ranking side (weights frozen once a checkpoint is loaded):
// item representations precomputed for the whole catalogue (embedItems is four lookups, a title-term
// pooling and three adds per candidate — ~1 ms for 1,000 candidates, now one gather), and the
// per-group feature projections folded into one block-diagonal matrix (one GEMM instead of a split,
// G small GEMMs and a concat). The HFG head itself runs its fused CPU layer under noGrad. The table
// also serves the item half of the history's pair tokens (encode, step).
import { Tensor, empty, tensor, keep, scope } from '../tensor';
import { noGrad } from '../autograd';
import * as ops from '../ops';
import type { QgsModel } from './model';
import { native, type NativeStorage } from '../native';
import { needsGrad } from '../autograd';
import { checkTensor } from '../ops/validate';
import { HFGAttention } from '../nn/hfg-attention';
import { HFG_CONTEXT_LAYER_ACTIVATIONS, type HfgContextLayerParams } from '../ops/hfg';

declare module '../native' {
  interface NativeBinding {
    rankHeadForward(
      logits: NativeStorage, ctx: NativeStorage, req: NativeStorage, item: NativeStorage, feats: NativeStorage | null,
      typeEmb: NativeStorage, groupW: NativeStorage | null, groupB: NativeStorage | null, matchW1: NativeStorage,
      matchB1: NativeStorage | null, matchW2: NativeStorage, matchB2: NativeStorage | null, logitW: NativeStorage,
      ln1W: NativeStorage | null, ln1B: NativeStorage | null, wqkv: NativeStorage, bqkv: NativeStorage | null,
      wo: NativeStorage, bo: NativeStorage | null, ln2W: NativeStorage | null, ln2B: NativeStorage | null,
      w1: NativeStorage, b1: NativeStorage | null, w2: NativeStorage, b2: NativeStorage | null,
      lnOutW: NativeStorage | null, lnOutB: NativeStorage | null,
      sizes: number[], eps1: number, eps2: number, epsOut: number, logitB: number, activation: number,
    ): void;
  }
}

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
  /** The HFG layer's parameters and the logit bias when the whole head can run as one native call. */
  private readonly fused: { layer: HfgContextLayerParams; logitBias: number } | null;

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
    this.fused = this.fusedHead();
  }

  // The fused kernel implements exactly: HFG fusion with one layer and context pooling, a two-layer
  // ReLU match MLP, and the linear logit over [pooled, match, features] (RankingHead for 'hfg').
  private fusedHead(): { layer: HfgContextLayerParams; logitBias: number } | null {
    const head = this.model.head;
    if (!(head.fusion instanceof HFGAttention) || head.match.layers.length !== 2 || head.match.activation !== 'relu') return null;
    const layer = head.fusion.singleLayerContextParams();
    if (layer === null || this.model.device !== 'cpu') return null;
    return { layer, logitBias: head.logit.bias === null ? 0 : head.logit.bias.toFloat32Array()[0] };
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

  /**
   * Click logits [N] for candidates of several requests: context rows ctx [R, D], req [N] the
   * request of each candidate. One native call for the whole head when the model allows it (see
   * fusedHead), else the composed head over gathered context rows. Call under noGrad.
   */
  scoreCandidates(ctx: Tensor, req: Int32Array, items: Int32Array, features: Tensor): Tensor {
    const N = items.length;
    const OP = 'RankingPlan.scoreCandidates';
    checkTensor(OP, 'ctx', ctx, { dtype: 'f32', shape: [-1, this.model.cfg.dim] });
    checkTensor(OP, 'features', features, { dtype: 'f32', shape: [N, this.model.cfg.layout.dim] });
    if (req.length !== N) throw new Error(`${OP}: req: expected one request index per candidate (${N}), got ${req.length}`);
    const head = this.model.head;
    if (this.fused === null || this.itemTable === null || needsGrad([ctx, features, ...head.parameters()])) {
      return this.rankLogits(ops.gather(ctx, tensor(req, [N], { dtype: 'i32' }), 0), items, features);
    }
    const { dim: D, layout } = this.model.cfg;
    const G = layout.groups.length;
    const F = layout.dim;
    const p = this.fused.layer;
    const fusion = head.fusion as HFGAttention;
    const [m1, m2] = head.match.layers;
    const item = this.items(items);
    const reqT = tensor(req, [N], { dtype: 'i32' });
    const out = empty([N]);
    const s = (t: Tensor | null | undefined): NativeStorage | null => (t == null ? null : t.storage);
    native().rankHeadForward(
      out.storage, ctx.storage, reqT.storage, item.storage, s(features), fusion.typeEmbedding.storage, this.groupWeight.storage,
      this.groupBias.storage, m1.weight.storage, s(m1.bias), m2.weight.storage, s(m2.bias), head.logit.weight.storage,
      s(p.ln1Weight), s(p.ln1Bias), p.wqkv.storage, s(p.bqkv), p.wo.storage, s(p.bo), s(p.ln2Weight), s(p.ln2Bias),
      p.w1.storage, s(p.b1), p.w2.storage, s(p.b2), s(p.lnOutWeight), s(p.lnOutBias),
      [N, ctx.shape[0], D, G, p.heads, p.w1.shape[0], F, m1.weight.shape[0]],
      p.eps1 ?? 1e-5, p.eps2 ?? 1e-5, p.epsOut ?? 1e-5, this.fused.logitBias, HFG_CONTEXT_LAYER_ACTIVATIONS.indexOf(p.activation ?? 'gelu'),
    );
    return out;
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
