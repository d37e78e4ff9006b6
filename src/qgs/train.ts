// Training and evaluation of QGS models: AdamW for dense weights + SparseAdam for the embedding
// tables, warm-up + cosine LR, global-norm clipping, evaluation each epoch, early stopping on
// validation GAUC, best-epoch weights restored; seeded and reproducible (DESIGN.md §5, issue 6).
import { Tensor, tensor, scope, Random } from '../tensor';
import { noGrad } from '../autograd';
import * as ops from '../ops';
import { AdamW } from '../optim/adamw';
import { SparseAdam } from '../optim/sparse';
import { clipGradNorm } from '../optim/clip';
import { warmupCosine } from '../optim/schedule';
import { rankingMetrics, type RankingMetrics } from '../metrics';
import { QgsModel, DEFAULT_MODEL, type QgsConfig } from './model';
import { buildTokens, userBatches, type PreparedData, type UserTimeline, type TokenBatch } from './dataset';
import { fitScaler, scaleFeatures, type ScalerState } from './features';

export interface TrainOptions {
  epochs?: number;
  lr?: number;
  sparseLr?: number;
  weightDecay?: number;
  /** History events per batch (users are packed until this budget). */
  batchTokens?: number;
  /** Sampled negatives per positive for the retrieval loss (impressed-unclicked first). */
  negatives?: number;
  /**
   * Fraction of unclicked impressions the ranking loss trains on per step (clicked ones are always
   * kept; kept negatives are weighted 1/rate so the loss stays unbiased). Default 0.3: ~92% of
   * logged impressions are unclicked and the head's cost is per impression.
   */
  negativeRate?: number;
  clip?: number;
  warmupSteps?: number;
  /** Stop after this many epochs without a validation-GAUC gain. */
  patience?: number;
  seed?: number;
  /** Called once per batch and epoch (progress bars, logs). */
  onProgress?: (p: TrainProgress) => void;
}

export interface TrainProgress {
  epoch: number;
  batch: number;
  batches: number;
  loss: number;
  eventsPerSec: number;
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  valid: RankingMetrics;
  seconds: number;
}

export interface TrainResult {
  model: QgsModel;
  scaler: ScalerState;
  history: EpochRecord[];
  bestEpoch: number;
  trainSeconds: number;
}

/** Impressions of one batch's requests of a split, aligned for the ranking head. */
interface Impressions {
  reqIndex: Int32Array;
  items: Int32Array;
  features: Float32Array;
  labels: Float32Array;
  /** Loss weight per row (1/keep-rate for subsampled negatives). */
  weights: Float32Array;
  /** List offsets (one list per request) for per-query metrics. */
  offsets: number[];
}

function collectImpressions(tb: TokenBatch, split: number, scaler: ScalerState, evalMode: boolean, sample?: { rate: number; rng: Random }): Impressions {
  const reqIndex: number[] = [];
  const items: number[] = [];
  const labels: number[] = [];
  const weights: number[] = [];
  const F = scaler.mean.length;
  const rows: number[] = [];
  const scaled: Float32Array[] = [];
  const offsets = [0];
  tb.requests.forEach((r, k) => {
    if (r.split !== split) return;
    const lab = evalMode ? r.rel ?? r.clicks : r.clicks;
    const f = scaleFeatures(scaler, r.features, evalMode);
    for (let i = 0; i < r.items.length; i++) {
      const pos = lab[i] > 0;
      if (sample !== undefined && !pos && sample.rng.uniform() >= sample.rate) continue;
      reqIndex.push(k);
      items.push(r.items[i]);
      labels.push(pos ? 1 : 0);
      weights.push(sample !== undefined && !pos ? 1 / sample.rate : 1);
      rows.push(scaled.length, i);
    }
    scaled.push(f);
    offsets.push(items.length);
  });
  const features = new Float32Array(items.length * F);
  for (let j = 0; j < items.length; j++) {
    const src = scaled[rows[2 * j]];
    const i = rows[2 * j + 1];
    features.set(src.subarray(i * F, (i + 1) * F), j * F);
  }
  return { reqIndex: Int32Array.from(reqIndex), items: Int32Array.from(items), features, labels: Float32Array.from(labels), weights: Float32Array.from(weights), offsets };
}

/** Positives (clicked items of training requests) with K negatives each: impressed-unclicked, then random. */
function retrievalRows(tb: TokenBatch, K: number, itemVocab: number, rng: Random): { req: Int32Array; pos: Int32Array; neg: Int32Array } {
  const req: number[] = [];
  const pos: number[] = [];
  const neg: number[] = [];
  tb.requests.forEach((r, k) => {
    if (r.split !== 0) return;
    const unclicked: number[] = [];
    for (let i = 0; i < r.items.length; i++) if (r.clicks[i] <= 0) unclicked.push(r.items[i]);
    for (let i = 0; i < r.items.length; i++) {
      if (r.clicks[i] <= 0) continue;
      req.push(k);
      pos.push(r.items[i]);
      const hard = Math.min(K >> 1, unclicked.length);
      for (let j = 0; j < hard; j++) neg.push(unclicked[rng.int(unclicked.length)]);
      for (let j = hard; j < K; j++) {
        let x = 1 + rng.int(itemVocab - 1);
        if (x === r.items[i]) x = 1 + ((x + 1) % (itemVocab - 1));
        neg.push(x);
      }
    }
  });
  return { req: Int32Array.from(req), pos: Int32Array.from(pos), neg: Int32Array.from(neg) };
}

function i32(a: Int32Array): Tensor {
  return tensor(a, [a.length], { dtype: 'i32' });
}

/** Scores the impressions of `split` requests (position pinned to rank 1) and computes list metrics. */
export function evaluate(model: QgsModel, data: PreparedData, scaler: ScalerState, split: number, batchTokens = 6000): RankingMetrics & { scores: Float32Array; labels: Float32Array } {
  const wasTraining = model.training;
  model.eval();
  const scores: number[] = [];
  const labels: number[] = [];
  const offsets = [0];
  const users = data.users.filter((u) => u.requests.some((r) => r.split === split));
  for (const group of userBatches(users, batchTokens, 0)) {
    scope(() =>
      noGrad(() => {
        const tb = buildTokens(group, model.cfg.variant, data.maxTerms);
        const imp = collectImpressions(tb, split, scaler, true);
        if (imp.items.length === 0) return;
        const h = model.encode(tb);
        const ctx = ops.gather(h, i32(imp.reqIndex), 0);
        const logits = model.rankLogits(ctx, imp.items, tensor(imp.features, [imp.items.length, scaler.mean.length]));
        const s = logits.toFloat32Array();
        const base = scores.length;
        for (let i = 0; i < s.length; i++) {
          scores.push(s[i]);
          labels.push(imp.labels[i]);
        }
        for (let l = 1; l < imp.offsets.length; l++) offsets.push(base + imp.offsets[l]);
      }),
    );
  }
  model.train(wasTraining);
  const sc = Float32Array.from(scores);
  const lb = Float32Array.from(labels);
  return { ...rankingMetrics(sc, lb, offsets, { k: 10 }), scores: sc, labels: lb };
}

/** Full model config for a dataset from partial overrides. */
export function modelConfig(data: PreparedData, overrides: Partial<QgsConfig> = {}): QgsConfig {
  return { ...DEFAULT_MODEL, itemVocab: data.itemVocab, termVocab: data.termVocab, maxTerms: data.maxTerms, layout: data.layout, side: data.side, ...overrides };
}

function snapshot(model: QgsModel): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  for (const [name, p] of model.namedParameters()) m.set(name, p.toFloat32Array());
  return m;
}

function restore(model: QgsModel, snap: Map<string, Float32Array>): void {
  for (const [name, p] of model.namedParameters()) {
    const v = snap.get(name);
    if (v !== undefined) p.storage.copyFromHost(v);
  }
}

export function trainModel(data: PreparedData, cfg: QgsConfig, opts: TrainOptions = {}): TrainResult {
  const epochs = opts.epochs ?? 6;
  const seed = opts.seed ?? cfg.seed;
  const batchTokens = opts.batchTokens ?? 3000;
  const K = opts.negatives ?? 16;
  const trainUsers = data.users.filter((u) => u.requests.some((r) => r.split === 0));
  const scaler = fitScaler(
    trainUsers.flatMap((u) => u.requests.filter((r) => r.split === 0)),
    data.layout,
  );
  const model = new QgsModel(cfg);
  model.train();
  const sparseParams = [model.itemEmb.weight, model.termEmb.weight];
  const denseParams = model.parameters().filter((p) => !sparseParams.includes(p));
  const lr = opts.lr ?? 6e-3;
  const dense = new AdamW(denseParams, { lr, weightDecay: opts.weightDecay ?? 1e-4 });
  const sparse = new SparseAdam(sparseParams, { lr: opts.sparseLr ?? lr });
  const batchesPerEpoch = userBatches(trainUsers, batchTokens, seed).length;
  const totalSteps = Math.max(1, epochs * batchesPerEpoch);
  const sched = warmupCosine({ lr, warmup: Math.min(opts.warmupSteps ?? Math.ceil(totalSteps * 0.05), totalSteps), total: totalSteps, minLr: lr * 0.05 });
  const sparseRatio = (opts.sparseLr ?? lr) / lr;
  const rng = new Random(seed ^ 0x51ed);
  const negRate = opts.negativeRate ?? 0.3;
  if (!(negRate > 0 && negRate <= 1)) throw new RangeError(`trainModel: negativeRate: expected a number in (0, 1], got ${negRate}`);
  const history: EpochRecord[] = [];
  let best = -Infinity;
  let bestEpoch = -1;
  let bestSnap: Map<string, Float32Array> | null = null;
  let step = 0;
  const t0 = Date.now();
  for (let epoch = 0; epoch < epochs; epoch++) {
    const te = Date.now();
    const batches = userBatches(trainUsers, batchTokens, seed + 7919 * epoch);
    let lossSum = 0;
    let events = 0;
    batches.forEach((group: UserTimeline[], bi: number) => {
      const loss = scope(() => {
        const tb = buildTokens(group, cfg.variant, data.maxTerms);
        const imp = collectImpressions(tb, 0, scaler, false, { rate: negRate, rng });
        if (imp.items.length === 0) return 0;
        const h = model.encode(tb);
        const ctx = ops.gather(h, i32(imp.reqIndex), 0);
        const logits = model.rankLogits(ctx, imp.items, tensor(imp.features, [imp.items.length, scaler.mean.length]));
        let objective = ops.bceWithLogits(logits, tensor(imp.labels, [imp.labels.length]), { weight: tensor(imp.weights, [imp.weights.length]) });
        const rr = retrievalRows(tb, K, cfg.itemVocab, rng);
        if (rr.pos.length > 0 && cfg.nceWeight > 0) {
          const nce = model.retrievalLoss(ops.gather(h, i32(rr.req), 0), rr.pos, rr.neg, K);
          objective = ops.add(objective, ops.mulScalar(nce, cfg.nceWeight));
        }
        objective.backward();
        clipGradNorm(model.parameters(), opts.clip ?? 5);
        dense.lr = sched(Math.min(step, totalSteps - 1));
        sparse.lr = dense.lr * sparseRatio;
        dense.step();
        sparse.step();
        dense.zeroGrad();
        sparse.zeroGrad();
        events += tb.tokens;
        return objective.item();
      });
      step++;
      lossSum += loss;
      opts.onProgress?.({ epoch, batch: bi + 1, batches: batches.length, loss, eventsPerSec: events / Math.max((Date.now() - te) / 1000, 1e-3) });
    });
    const valid = evaluate(model, data, scaler, 1);
    history.push({ epoch, loss: lossSum / Math.max(batches.length, 1), valid, seconds: (Date.now() - te) / 1000 });
    if (valid.gauc > best + 1e-4) {
      best = valid.gauc;
      bestEpoch = epoch;
      bestSnap = snapshot(model);
    } else if (epoch - bestEpoch >= (opts.patience ?? 2)) {
      break;
    }
  }
  dense.dispose();
  sparse.dispose();
  if (bestSnap !== null) restore(model, bestSnap);
  // Returned ready for inference: dropout off.
  model.eval();
  return { model, scaler, history, bestEpoch, trainSeconds: (Date.now() - t0) / 1000 };
}
