// Reference scorers on synthetic data (research/data.md §4.6–4.7): oracles that use the hidden
// truth with pieces removed (they bound what a model can reach), simple heuristics, and logistic
// regressions on the hand-crafted features. They pin the generator (CI properties of §4.7) and give
// trainers a yardstick; none of them is a model input.
import { Random } from '../tensor';
import { rankingMetrics, type RankingMetrics } from '../metrics/ranking';
import type { SyntheticDataset } from './synthetic';
import { TEST, TRAIN, splitByUserTime } from './split';

export type ReferenceScorer = 'random' | 'production' | 'bm25' | 'item_ctr' | 'oracle_full' | 'oracle_no_query' | 'oracle_no_history';

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Scores of every shown item of the records `recordIdx` (flattened in order). */
export function referenceScores(ds: SyntheticDataset, recordIdx: readonly number[], scorer: ReferenceScorer, seed = 1): Float64Array {
  const o = ds.options;
  const { itemTopic, itemFacet, itemQuality, userTheta, userPhi } = ds.truth;
  const T = o.topics;
  const F = o.facets;
  let n = 0;
  for (const i of recordIdx) n += ds.records[i].shown.length;
  const out = new Float64Array(n);
  const rng = new Random(seed);
  let k = 0;
  for (const i of recordIdx) {
    const r = ds.records[i];
    const tr = ds.truth.requests[i];
    const u = r.user as number;
    const phi = (t: number, f: number): number => userPhi[(u * T + t) * F + f];
    const taste = (t: number, f: number): number => 3.0 + (o.wF * (phi(t, f) - 1 / F) * F) / 2;
    const col = (g: string, w: number, j: number, f: number): number => (r.features?.[g]?.[j * w + f] as number) ?? 0;
    r.shown.forEach((id, j) => {
      const it = id as number;
      const ti = itemTopic[it];
      const fi = itemFacet[it];
      const q = 0.8 * itemQuality[it];
      const rep = 0.7 * tr.repeat[j];
      switch (scorer) {
        case 'random':
          out[k] = rng.uniform();
          break;
        case 'production':
          out[k] = -j; // the logged order
          break;
        case 'bm25':
          out[k] = col('text_match', 1, j, 0);
          break;
        case 'item_ctr':
          out[k] = col('item_stats', 2, j, 0);
          break;
        case 'oracle_full':
          out[k] = q + (ti === tr.topic ? taste(ti, fi) + (tr.namedFacet === fi ? 1.5 : 0) : 0) + rep;
          break;
        case 'oracle_no_query': {
          // The marginal next-item model: topic integrated over θ_u, explicit facet unknown.
          let s = 0;
          for (let t = 0; t < T; t++) s += userTheta[u * T + t] * sigmoid(o.bias + q + (ti === t ? taste(t, fi) : 0) + rep);
          out[k] = s;
          break;
        }
        case 'oracle_no_history':
          // Knows the query's topic and named facet, not the user's taste or repeats.
          out[k] = q + (ti === tr.topic ? 3.0 + (tr.namedFacet === fi ? 1.5 : 0) : 0);
          break;
      }
      k++;
    });
  }
  return out;
}

/** Flattened relevance labels and per-request offsets of `recordIdx`. */
export function relLabels(ds: SyntheticDataset, recordIdx: readonly number[]): { labels: Float64Array; offsets: Int32Array } {
  const offsets = new Int32Array(recordIdx.length + 1);
  recordIdx.forEach((i, b) => (offsets[b + 1] = offsets[b] + ds.records[i].shown.length));
  const labels = new Float64Array(offsets[recordIdx.length]);
  recordIdx.forEach((i, b) => labels.set(ds.records[i].rel ?? [], offsets[b]));
  return { labels, offsets };
}

/** Metrics of flattened `scores` against position-free relevance on `recordIdx`. */
export function evaluateOnRel(ds: SyntheticDataset, recordIdx: readonly number[], scores: ArrayLike<number>, k = 10): RankingMetrics {
  const { labels, offsets } = relLabels(ds, recordIdx);
  return rankingMetrics(scores, labels, offsets, { k });
}

export type LrFeatureSet = 'features' | 'pooled' | 'query_conditioned';

/**
 * History style-affinity features of data.md §4.6 (per shown item, from the user's earlier
 * sessions): pooled = smoothed share of the user's clicks with the item's style; query-conditioned
 * = the same share among the user's clicks in the item's category.
 */
function styleAffinity(ds: SyntheticDataset): { pooled: Float64Array[]; conditioned: Float64Array[] } {
  const { category, style } = ds.catalogue;
  const T = ds.options.topics;
  const F = ds.options.facets;
  const pooled: Float64Array[] = [];
  const conditioned: Float64Array[] = [];
  const state = new Map<number, { session: unknown; styleN: Float64Array; catStyleN: Float64Array; pending: number[] }>();
  ds.records.forEach((r) => {
    const u = r.user as number;
    let s = state.get(u);
    if (!s) state.set(u, (s = { session: r.session, styleN: new Float64Array(F), catStyleN: new Float64Array(T * F), pending: [] }));
    if (s.session !== r.session) {
      // Commit the previous session's clicks (features only see earlier sessions).
      for (const it of s.pending) {
        s.styleN[style[it]]++;
        s.catStyleN[category[it] * F + style[it]]++;
      }
      s.pending = [];
      s.session = r.session;
    }
    let tot = 0;
    for (let f = 0; f < F; f++) tot += s.styleN[f];
    const p = new Float64Array(r.shown.length);
    const c = new Float64Array(r.shown.length);
    r.shown.forEach((id, j) => {
      const it = id as number;
      p[j] = (s!.styleN[style[it]] + 1) / (tot + F);
      let catTot = 0;
      for (let f = 0; f < F; f++) catTot += s!.catStyleN[category[it] * F + f];
      c[j] = (s!.catStyleN[category[it] * F + style[it]] + 1) / (catTot + F);
      if (r.clicks[j] > 0) s!.pending.push(it);
    });
    pooled.push(p);
    conditioned.push(c);
  });
  return { pooled, conditioned };
}

/**
 * Logistic regression (SGD on standardised features, seeded) trained on the training split's
 * logged clicks and scored on `evalIdx` with the position feature at rank 1, as in data.md §4.6:
 * LR(bm25, ctr, user-item, user-cat, pos) [+ pooled | + query-conditioned style affinity].
 */
export function logisticRegressionScores(ds: SyntheticDataset, set: LrFeatureSet, evalIdx: readonly number[], opts: { epochs?: number; lr?: number; seed?: number; split?: Uint8Array } = {}): Float64Array {
  const split = opts.split ?? splitByUserTime(ds.records);
  const aff = set === 'features' ? null : styleAffinity(ds);
  const extra = aff ? (set === 'pooled' ? aff.pooled : aff.conditioned) : null;
  const dim = 5 + (extra ? 1 : 0);
  const row = (i: number, j: number, atTop: boolean, out: Float64Array): void => {
    const f = ds.records[i].features!;
    out[0] = f.text_match[j] as number;
    out[1] = f.item_stats[j * 2] as number;
    out[2] = f.user_item[j * 2] as number;
    out[3] = f.user_item[j * 2 + 1] as number;
    out[4] = atTop ? 0 : (f.context[j] as number);
    if (extra) out[5] = extra[i][j];
  };
  // Training rows packed once into a standardised matrix (fast SGD passes).
  let nTrain = 0;
  ds.records.forEach((r, i) => {
    if (split[i] === TRAIN) nTrain += r.shown.length;
  });
  const X = new Float64Array(nTrain * dim);
  const y = new Uint8Array(nTrain);
  const x = new Float64Array(dim);
  let t = 0;
  ds.records.forEach((r, i) => {
    if (split[i] !== TRAIN) return;
    for (let j = 0; j < r.shown.length; j++, t++) {
      row(i, j, false, x);
      X.set(x, t * dim);
      y[t] = r.clicks[j] > 0 ? 1 : 0;
    }
  });
  const mean = new Float64Array(dim);
  const std = new Float64Array(dim);
  for (let d = 0; d < dim; d++) {
    let s1 = 0;
    let s2 = 0;
    for (let k = 0; k < nTrain; k++) {
      const v = X[k * dim + d];
      s1 += v;
      s2 += v * v;
    }
    mean[d] = s1 / Math.max(1, nTrain);
    std[d] = Math.sqrt(Math.max(1e-12, s2 / Math.max(1, nTrain) - mean[d] * mean[d]));
    for (let k = 0; k < nTrain; k++) X[k * dim + d] = (X[k * dim + d] - mean[d]) / std[d];
  }
  const w = new Float64Array(dim);
  let bias = 0;
  const rng = new Random(opts.seed ?? 3);
  const epochs = opts.epochs ?? 3;
  const lr = opts.lr ?? 0.02;
  const order = new Int32Array(nTrain);
  for (let k = 0; k < nTrain; k++) order[k] = k;
  for (let e = 0; e < epochs; e++) {
    for (let k = nTrain - 1; k > 0; k--) {
      const m = rng.int(k + 1);
      const tmp = order[k];
      order[k] = order[m];
      order[m] = tmp;
    }
    for (let k = 0; k < nTrain; k++) {
      const o = order[k] * dim;
      let z = bias;
      for (let d = 0; d < dim; d++) z += w[d] * X[o + d];
      const g = sigmoid(z) - y[order[k]];
      bias -= lr * g;
      for (let d = 0; d < dim; d++) w[d] -= lr * (g * X[o + d] + 1e-6 * w[d]);
    }
  }
  let total = 0;
  for (const i of evalIdx) total += ds.records[i].shown.length;
  const out = new Float64Array(total);
  let k = 0;
  for (const i of evalIdx) {
    for (let j = 0; j < ds.records[i].shown.length; j++) {
      row(i, j, true, x);
      let z = bias;
      for (let d = 0; d < dim; d++) z += w[d] * ((x[d] - mean[d]) / std[d]);
      out[k++] = z;
    }
  }
  return out;
}

export interface ReferenceRow {
  scorer: string;
  auc: number;
  gauc: number;
  ndcg10: number;
  mrr: number;
}

/**
 * The data.md §4.6 table on the test split (each user's last session), position-free labels.
 * `include` limits the scorers (the LR rows cost a few seconds on the default size).
 */
export function referenceTable(ds: SyntheticDataset, include: readonly (ReferenceScorer | `lr_${LrFeatureSet}`)[] = ['random', 'production', 'bm25', 'item_ctr', 'lr_features', 'lr_pooled', 'lr_query_conditioned', 'oracle_no_history', 'oracle_no_query', 'oracle_full']): ReferenceRow[] {
  const split = splitByUserTime(ds.records);
  const test: number[] = [];
  split.forEach((c, i) => {
    if (c === TEST) test.push(i);
  });
  return include.map((name) => {
    const scores = name.startsWith('lr_') ? logisticRegressionScores(ds, name.slice(3) as LrFeatureSet, test, { split }) : referenceScores(ds, test, name as ReferenceScorer);
    const m = evaluateOnRel(ds, test, scores, 10);
    return { scorer: name, auc: m.auc, gauc: m.gauc, ndcg10: m.ndcg, mrr: m.mrr };
  });
}
