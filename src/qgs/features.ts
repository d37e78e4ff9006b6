// Standardisation of the dense hand-crafted feature rows: statistics fitted on training impressions
// only; missing values (NaN) become 0 after scaling (the column mean), so no NaN reaches a model.
// The logged position is an exposure confounder: at evaluation/serving it is pinned to its rank-1
// value (data.md §4.4).
import type { FeatureLayout, PreparedRequest } from './dataset';

export interface ScalerState {
  mean: number[];
  std: number[];
  positionColumn: number;
  /** Raw value of the position feature at rank 1 (log rank → 0). */
  positionRank1: number;
}

export function fitScaler(requests: Iterable<PreparedRequest>, layout: FeatureLayout): ScalerState {
  const F = layout.dim;
  const sum = new Float64Array(F);
  const sq = new Float64Array(F);
  const cnt = new Float64Array(F);
  for (const r of requests) {
    const f = r.features;
    for (let i = 0; i < f.length; i++) {
      const v = f[i];
      if (Number.isNaN(v)) continue;
      const c = i % F;
      sum[c] += v;
      sq[c] += v * v;
      cnt[c]++;
    }
  }
  const mean: number[] = [];
  const std: number[] = [];
  for (let c = 0; c < F; c++) {
    const m = cnt[c] > 0 ? sum[c] / cnt[c] : 0;
    const v = cnt[c] > 1 ? sq[c] / cnt[c] - m * m : 1;
    mean.push(m);
    std.push(Math.sqrt(Math.max(v, 1e-12)) || 1);
  }
  return { mean, std, positionColumn: layout.positionColumn, positionRank1: 0 };
}

/** Scaled copy of feature rows [n × F]; `pinPosition` sets the position column to rank 1. */
export function scaleFeatures(s: ScalerState, rows: Float32Array, pinPosition: boolean): Float32Array {
  const F = s.mean.length;
  const out = new Float32Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const c = i % F;
    let v = rows[i];
    if (pinPosition && c === s.positionColumn) v = s.positionRank1;
    out[i] = Number.isNaN(v) ? 0 : (v - s.mean[c]) / s.std[c];
  }
  return out;
}
