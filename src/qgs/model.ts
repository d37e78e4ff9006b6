// The QGS model (DESIGN.md §5): pair-token embeddings → sequence encoder (Linear HSTU or quadratic
// HSTU) → query-conditioned read-out states; a retrieval head (InfoNCE over sampled and
// impressed-but-unclicked negatives) and a ranking head over the candidate's feature groups (HFG
// attention, or the concat-MLP baseline). Baselines differ only by config (variant/encoder/head).
import { Tensor, tensor } from '../tensor';
import * as ops from '../ops';
import { Module } from '../nn/module';
import { Embedding } from '../nn/embedding';
import { SequenceEncoder, packBatch, type EncoderKind } from './encoder';
import { PAD_TERM, type SequenceVariant, type TokenBatch, type FeatureLayout, type ItemSideInfo } from './dataset';
import { createHead, DEFAULT_HFG_HEAD, type HeadKind, type RankingHead } from './heads';
import type { HFGPooling } from '../nn/hfg-attention';

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
  /** HFG-Attention (head 'hfg'): attention heads, layers, pooling and FFN width as a multiple of dim. */
  hfgHeads: number;
  hfgLayers: number;
  hfgPooling: HFGPooling;
  hfgFfnMult: number;
  /** Item side information (categories, styles, title terms) merged into item representations. */
  side: ItemSideInfo;
  /** Weight α of the InfoNCE retrieval loss in BCE + α·InfoNCE. */
  nceWeight: number;
  temperature: number;
  seed: number;
}

export const DEFAULT_MODEL: Omit<QgsConfig, 'itemVocab' | 'termVocab' | 'maxTerms' | 'layout' | 'side'> = {
  variant: 'qgs',
  encoder: 'linear',
  head: 'hfg',
  dim: 32,
  layers: 2,
  heads: 2,
  // Wide keys, narrow values: the recurrence's state holds dk × dv per head, and it is the key
  // width that lets a linear read-out pick the history tokens of the next query's topic (what
  // quadratic attention gets from SiLU(q·k)). At dk = dv = 16 the linear encoder trailed the
  // quadratic one by 0.008–0.012 test GAUC on seeds 7 / 1 / 2; at dk = 64, dv = 16 (both encoders)
  // by 0.003 / 0.002 / 0.004, for the same state size as dk = dv = 32 (which trailed by 0.005–0.006).
  dk: 64,
  dv: 16,
  dropout: 0.1,
  decayInit: 0.95,
  // Other HFG shapes serve through the composed ops; 4 heads, mean pooling or a 4·D FFN did not beat
  // the default on the nine-run study (README, Status).
  hfgHeads: DEFAULT_HFG_HEAD.heads,
  hfgLayers: DEFAULT_HFG_HEAD.layers,
  hfgPooling: DEFAULT_HFG_HEAD.pooling,
  hfgFfnMult: DEFAULT_HFG_HEAD.ffnMult,
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
  readonly categoryEmb: Embedding;
  readonly styleEmb: Embedding;
  readonly encoder: SequenceEncoder;
  readonly head: RankingHead;

  constructor(readonly cfg: QgsConfig) {
    super();
    const s = cfg.seed;
    this.itemEmb = this.registerModule('itemEmb', new Embedding(cfg.itemVocab, cfg.dim, { sparse: true, std: 0.1, seed: s + 1 }));
    this.termEmb = this.registerModule('termEmb', new Embedding(cfg.termVocab, cfg.dim, { sparse: true, std: 0.1, seed: s + 2 }));
    this.categoryEmb = this.registerModule('categoryEmb', new Embedding(cfg.side.categories, cfg.dim, { std: 0.1, seed: s + 5 }));
    this.styleEmb = this.registerModule('styleEmb', new Embedding(cfg.side.styles, cfg.dim, { std: 0.1, seed: s + 6 }));
    this.encoder = this.registerModule(
      'encoder',
      new SequenceEncoder({ kind: cfg.encoder, dim: cfg.dim, layers: cfg.layers, heads: cfg.heads, dk: cfg.dk, dv: cfg.dv, dropout: cfg.dropout, decayInit: cfg.decayInit, seed: s + 3 }),
    );
    this.head = this.registerModule(
      'head',
      createHead(cfg.head, cfg.dim, cfg.layout, s + 4, { heads: cfg.hfgHeads, layers: cfg.hfgLayers, pooling: cfg.hfgPooling, ffnHidden: cfg.hfgFfnMult * cfg.dim }),
    );
  }

  /** Mean of term embeddings over padded term-id rows [n × width] → [n, D] (all-padding rows → 0). */
  poolTerms(terms: Int32Array, width: number): Tensor {
    const n = terms.length / width;
    const te = this.termEmb.forward(tensor(terms, [n, width], { dtype: 'i32' }));
    return ops.sum(ops.mul(te, tensor(termPoolWeights(terms, width), [n, width, 1])), 1);
  }

  /**
   * Item representations [N, D]: id embedding + category + style + mean title-term embedding. Title
   * terms share the query-term table, so lexical query–item matching is learnable.
   */
  embedItems(items: Int32Array): Tensor {
    const N = items.length;
    const side = this.cfg.side;
    const cat = Int32Array.from(items, (i) => side.category[i]);
    const sty = Int32Array.from(items, (i) => side.style[i]);
    const mt = side.maxTitle;
    const title = new Int32Array(N * mt);
    items.forEach((it, r) => title.set(side.title.subarray(it * mt, it * mt + mt), r * mt));
    const id = this.itemEmb.forward(tensor(items, [N], { dtype: 'i32' }));
    const c = this.categoryEmb.forward(tensor(cat, [N], { dtype: 'i32' }));
    const s = this.styleEmb.forward(tensor(sty, [N], { dtype: 'i32' }));
    return ops.add(ops.add(id, c), ops.add(s, this.poolTerms(title, mt)));
  }

  /** Pair-token embeddings [T, D] for packed term ids [T × maxTerms] and item ids [T]. */
  embedTokens(terms: Int32Array, items: Int32Array): Tensor {
    return ops.add(this.poolTerms(terms, this.cfg.maxTerms), this.embedItems(items));
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
    return this.head.forward(ctx, this.embedItems(items), features);
  }

  /** InfoNCE of context rows against positive items with per-row negatives [N, K]. */
  retrievalLoss(ctx: Tensor, positives: Int32Array, negatives: Int32Array, K: number): Tensor {
    const N = positives.length;
    const q = ops.l2Normalize(ctx, -1);
    const p = ops.l2Normalize(this.embedItems(positives), -1);
    const n = ops.reshape(ops.l2Normalize(this.embedItems(negatives), -1), [N, K, this.cfg.dim]);
    return ops.infoNCE(q, p, n, { temperature: this.cfg.temperature });
  }
}
