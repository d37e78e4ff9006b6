// The serving form of a trained model's ranking side (weights frozen once a checkpoint is loaded):
// item representations precomputed for the whole catalogue (embedItems is four lookups, a title-term
// pooling and three adds per candidate — ~1 ms for 1,000 candidates, now one gather), and the
// per-group feature projections folded into one block-diagonal matrix (one GEMM instead of a split,
// G small GEMMs and a concat). On the CPU the whole HFG head then runs as one fused op
// (ops.hfgRankHead) for every candidate of a batch. The table also serves the item half of the
// history's pair tokens (encode, step), and a Linear HSTU encoder's one-token steps (an event
// observed, a request's read-out) run as one native call through every layer (encoderPlan).
import { Tensor, tensor, keep, scope } from '../tensor';
import { isGradEnabled, noGrad, needsGrad } from '../autograd';
import * as ops from '../ops';
import { checkTensor } from '../ops/validate';
import { HFGAttention } from '../nn/hfg-attention';
import type { QgsModel } from './model';
import { PAD_TERM } from './dataset';

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
  /** The whole head as one native call, its weights prepared once (null: the composed head serves). */
  private readonly fused: ops.HfgRankHeadPlan | null;
  /** Every layer's serving step and the final norm as one native call (null: the composed step serves). */
  readonly encoderPlan: ops.LinearHstuEncoderPlan | null;

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
    this.encoderPlan = this.fusedEncoder();
  }

  // Linear encoders on the CPU with the item table; the decays are taken as they are now (frozen).
  private fusedEncoder(): ops.LinearHstuEncoderPlan | null {
    const { encoder } = this.model;
    if (encoder.cfg.kind !== 'linear' || this.model.device !== 'cpu' || this.itemTable === null) return null;
    return noGrad(() => scope(() => new ops.LinearHstuEncoderPlan({
      layers: encoder.blocks.map((b) => b.blockParams(true)),
      finalNorm: { weight: encoder.finalNorm.weight, bias: encoder.finalNorm.bias, eps: encoder.finalNorm.eps },
    })));
  }

  /**
   * One pair token per row (terms [R × maxTerms], item tokens [R]) through the encoder plan against
   * the rows' states [R × layers·H·dk·dv]: `write` stores the updated states in `statesOut`; `hOut`
   * [R × D] receives the encoder output (required for a read-out). Only when encoderPlan is not null.
   */
  stepTokens(statesIn: Float32Array, terms: Int32Array, items: Int32Array, opts: ops.EncoderPlanStepOptions): void {
    const plan = this.planFor('stepTokens');
    const tokens = this.pairTokens(terms, items);
    // The results are plain arrays (no graph): the term table's requiresGrad does not matter here.
    noGrad(() => plan.step(statesIn, tokens, opts));
  }

  /**
   * A cold encode through the encoder plan: the packed sequences of pair tokens (terms [T × maxTerms],
   * item tokens [T]) → each sequence's final states in opts.statesOut [B × layers·H·dk·dv].
   */
  encodeTokens(terms: Int32Array, items: Int32Array, opts: ops.EncoderPlanEncodeOptions): void {
    const plan = this.planFor('encodeTokens');
    const tokens = this.pairTokens(terms, items);
    noGrad(() => plan.encode(tokens, opts));
  }

  private planFor(method: string): ops.LinearHstuEncoderPlan {
    if (this.encoderPlan === null) throw new Error(`RankingPlan.${method}: no encoder plan for this model (the composed encoder serves)`);
    return this.encoderPlan;
  }

  // The encoder plan reads the item half of a pair token from the catalogue table (there is a plan
  // only when there is a table).
  private pairTokens(terms: Int32Array, items: Int32Array): ops.PairTokens {
    return { terms, termsPerToken: this.model.cfg.maxTerms, items, termTable: this.model.termEmb.weight, itemTable: this.itemTable as Tensor, padTerm: PAD_TERM };
  }

  // The fused kernel implements exactly: HFG fusion with one layer and context pooling, a two-layer
  // ReLU match MLP, and the linear logit over [pooled, match, features] (RankingHead for 'hfg'). The
  // plan copies the weights as they are now: like the item table, it serves a frozen model.
  private fusedHead(): ops.HfgRankHeadPlan | null {
    const head = this.model.head;
    const fusion = head.fusion;
    if (!(fusion instanceof HFGAttention) || head.match.layers.length !== 2 || head.match.activation !== 'relu') return null;
    const layer = fusion.singleLayerContextParams();
    if (layer === null || this.model.device !== 'cpu' || this.itemTable === null) return null;
    const [m1, m2] = head.match.layers;
    return noGrad(() => new ops.HfgRankHeadPlan({
      layer,
      typeEmbedding: fusion.typeEmbedding,
      groupWeight: this.groupWeight,
      groupBias: this.groupBias,
      matchW1: m1.weight,
      matchB1: m1.bias,
      matchW2: m2.weight,
      matchB2: m2.bias,
      logitWeight: head.logit.weight,
      logitBias: head.logit.bias === null ? 0 : head.logit.bias.toFloat32Array()[0],
    }));
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

  /**
   * Pair-token embeddings [T, D] (QgsModel.embedTokens with the item side from the table). On the
   * CPU at inference the term pooling is one fused bag op instead of gather → multiply → sum.
   */
  embedTokens(terms: Int32Array, items: Int32Array): Tensor {
    const m = this.model.cfg.maxTerms;
    const table = this.model.termEmb.weight;
    if (table.device !== 'cpu' || needsGrad([table])) return ops.add(this.model.poolTerms(terms, m), this.items(items));
    // poolTerms' mean over the non-padding terms (termPoolWeights), as a mean bag.
    const pooled = ops.embeddingBag(table, tensor(terms, [items.length, m], { dtype: 'i32' }), { mode: 'mean', paddingIdx: PAD_TERM });
    return ops.add(pooled, this.items(items));
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
    // Checked here so the fused and the composed head refuse a bad index with the same message.
    const R = ctx.shape[0];
    for (let i = 0; i < N; i++) if (!(req[i] >= 0 && req[i] < R)) throw new RangeError(`${OP}: req[${i}] must be in [0, ${R}), got ${req[i]}`);
    // With gradients recording, the head's own parameters count too (the plan computes none); the
    // walk over them only happens then.
    const grads = isGradEnabled() && needsGrad([ctx, features, ...this.model.head.parameters()]);
    if (this.fused === null || this.itemTable === null || grads) {
      return this.rankLogits(ops.gather(ctx, tensor(req, [N], { dtype: 'i32' }), 0), items, features);
    }
    // Items are read from the catalogue table inside the kernel (no gathered [N, D] copy: ~0.1 ms).
    return this.fused.run(ctx, req, this.itemTable, features, items);
  }

  /** Whether scoreInto applies: the fused head with the catalogue table. */
  get canScoreInto(): boolean {
    return this.fused !== null && this.itemTable !== null;
  }

  /**
   * scoreCandidates on plain arrays (serving: nothing to record gradients for): ctx [R × D] context
   * rows, req [N] each candidate's request, items [N] item tokens, features [N × F] → logits [N].
   * Only when canScoreInto.
   */
  scoreInto(logits: Float32Array, ctx: Float32Array, req: Int32Array, items: Int32Array, features: Float32Array): void {
    if (this.fused === null || this.itemTable === null) throw new Error("RankingPlan.scoreInto: this model's head has no fused plan (use scoreCandidates)");
    this.fused.score(logits, ctx, req, this.itemTable, items, features);
  }

  /** Click logits [N] — the same function as QgsModel.rankLogits (call under noGrad). */
  rankLogits(ctx: Tensor, items: Int32Array, features: Tensor): Tensor {
    const N = items.length;
    const G = this.model.cfg.layout.groups.length;
    const groups = ops.reshape(ops.linear(features, this.groupWeight, this.groupBias), [N, G, this.model.cfg.dim]);
    return this.model.head.forwardTokens(ctx, this.items(items), groups, features);
  }

  dispose(): void {
    this.fused?.dispose();
    this.encoderPlan?.dispose();
    this.itemTable?.dispose();
    this.groupWeight.dispose();
    this.groupBias.dispose();
  }
}
