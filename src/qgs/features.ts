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

/**
 * Scaled copy of feature rows [n × F]; `pinPosition` sets the position column to rank 1. Written
 * into `out` at `offset` when given (serving packs several requests' rows into one buffer).
 */
export function scaleFeatures(s: ScalerState, rows: Float32Array, pinPosition: boolean, out = new Float32Array(rows.length), offset = 0): Float32Array {
  const F = s.mean.length;
  const n = rows.length / F;
  for (let c = 0; c < F; c++) {
    const m = s.mean[c];
    const sd = s.std[c];
    if (pinPosition && c === s.positionColumn) {
      const v = Number.isNaN(s.positionRank1) ? 0 : (s.positionRank1 - m) / sd;
      for (let i = 0; i < n; i++) out[offset + i * F + c] = v;
      continue;
    }
    for (let i = 0; i < n; i++) {
      const v = rows[i * F + c];
      out[offset + i * F + c] = Number.isNaN(v) ? 0 : (v - m) / sd;
    }
  }
  return out;
}
