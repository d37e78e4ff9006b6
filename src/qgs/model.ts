// The QGS model (DESIGN.md §5): pair-token embeddings → sequence encoder (Linear HSTU or quadratic
// HSTU) → query-conditioned read-out states; a retrieval head (InfoNCE over sampled and
// impressed-but-unclicked negatives) and a ranking head over the candidate's feature groups (HFG
// attention, or the concat-MLP baseline). Baselines differ only by config (variant/encoder/head).
import { Tensor, tensor } from '../tensor';
import * as ops from '../ops';
import { Module } from '../nn/module';
import { Embedding } from '../nn/embedding';
import { SequenceEncoder, packBatch, type EncoderKind } from './encoder';
import { PAD_TERM, type SequenceVariant, type TokenBatch, type FeatureLayout } from './dataset';
import { createHead, type HeadKind, type RankingHead } from './heads';

export interface QgsConfig {
  variant: SequenceVariant;
  encoder: EncoderKind;
  head: HeadKind;
  dim: number;
  layers: number;
  heads: number;
  dk: number;
  dv: number;
  dropout: number;
  decayInit: number;
  itemVocab: number;
  termVocab: number;
  maxTerms: number;
  layout: FeatureLayout;
  /** Weight α of the InfoNCE retrieval loss in BCE + α·InfoNCE. */
  nceWeight: number;
  temperature: number;
  seed: number;
}

export const DEFAULT_MODEL: Omit<QgsConfig, 'itemVocab' | 'termVocab' | 'maxTerms' | 'layout'> = {
  variant: 'qgs',
  encoder: 'linear',
  head: 'hfg',
  dim: 32,
  layers: 2,
  heads: 2,
  dk: 16,
  dv: 16,
  dropout: 0.1,
  decayInit: 0.95,
  nceWeight: 0.5,
  temperature: 0.1,
  seed: 1,
};

/** Mean-pooling weights for padded term ids: 1/count on real terms, 0 on padding. */
export function termPoolWeights(terms: Int32Array, maxTerms: number): Float32Array {
  const n = terms.length / maxTerms;
  const w = new Float32Array(terms.length);
  for (let i = 0; i < n; i++) {
    let c = 0;
    for (let j = 0; j < maxTerms; j++) if (terms[i * maxTerms + j] !== PAD_TERM) c++;
    for (let j = 0; j < maxTerms; j++) if (terms[i * maxTerms + j] !== PAD_TERM) w[i * maxTerms + j] = 1 / c;
  }
  return w;
}

export class QgsModel extends Module {
  readonly itemEmb: Embedding;
  readonly termEmb: Embedding;
  readonly encoder: SequenceEncoder;
  readonly head: RankingHead;

  constructor(readonly cfg: QgsConfig) {
    super();
    const s = cfg.seed;
    this.itemEmb = this.registerModule('itemEmb', new Embedding(cfg.itemVocab, cfg.dim, { sparse: true, std: 0.1, seed: s + 1 }));
    this.termEmb = this.registerModule('termEmb', new Embedding(cfg.termVocab, cfg.dim, { sparse: true, std: 0.1, seed: s + 2 }));
    this.encoder = this.registerModule(
      'encoder',
      new SequenceEncoder({ kind: cfg.encoder, dim: cfg.dim, layers: cfg.layers, heads: cfg.heads, dk: cfg.dk, dv: cfg.dv, dropout: cfg.dropout, decayInit: cfg.decayInit, seed: s + 3 }),
    );
    this.head = this.registerModule('head', createHead(cfg.head, cfg.dim, cfg.layout, s + 4));
  }

  /** Pair-token embeddings [T, D] for packed term ids [T × maxTerms] and item ids [T]. */
  embedTokens(terms: Int32Array, items: Int32Array): Tensor {
    const T = items.length;
    const m = this.cfg.maxTerms;
    const te = this.termEmb.forward(tensor(terms, [T, m], { dtype: 'i32' }));
    const w = tensor(termPoolWeights(terms, m), [T, m, 1]);
    const q = ops.sum(ops.mul(te, w), 1);
    const it = this.itemEmb.forward(tensor(items, [T], { dtype: 'i32' }));
    return ops.add(q, it);
  }

  /** Read-out states [R, D], one per request of the batch (query-conditioned for variant 'qgs'). */
  encode(batch: TokenBatch): Tensor {
    const x = this.embedTokens(batch.terms, batch.items);
    const packed = packBatch(batch.offsets, batch.write);
    const h = this.encoder.forward(x, packed);
    return ops.gather(h, tensor(batch.readout, [batch.readout.length], { dtype: 'i32' }), 0);
  }

  /** Click logits [N] for impressions: context rows [N, D], candidate item ids, feature rows [N, F]. */
  rankLogits(ctx: Tensor, items: Int32Array, features: Tensor): Tensor {
    const it = this.itemEmb.forward(tensor(items, [items.length], { dtype: 'i32' }));
    return this.head.forward(ctx, it, features);
  }

  /** InfoNCE of context rows against positive items with per-row negatives [N, K]. */
  retrievalLoss(ctx: Tensor, positives: Int32Array, negatives: Int32Array, K: number): Tensor {
    const N = positives.length;
    const q = ops.l2Normalize(ctx, -1);
    const p = ops.l2Normalize(this.itemEmb.forward(tensor(positives, [N], { dtype: 'i32' })), -1);
    const n = ops.l2Normalize(this.itemEmb.forward(tensor(negatives, [N, K], { dtype: 'i32' })), -1);
    return ops.infoNCE(q, p, n, { temperature: this.cfg.temperature });
  }
}
