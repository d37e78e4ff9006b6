// Float64 references of nn.FeatureGroups and nn.HFGAttention (naive loops over the modules'
// parameters, written independently of the ops), used by feature-groups.test.ts and
// hfg-attention.test.ts for forward checks and finite-difference gradient checks.
import type { Tensor } from '../src';

export type Params = Map<string, Float64Array>;

/** The module's parameters as float64 arrays (what the float32 kernels actually see). */
export function paramsOf(named: [string, Tensor][]): Params {
  return new Map(named.map(([n, t]) => [n, Float64Array.from(t.toFloat32Array())]));
}

function get(P: Params, name: string): Float64Array {
  const v = P.get(name);
  if (v === undefined) throw new Error(`reference: no parameter ${name}`);
  return v;
}

/** y = LayerNorm over rows of width D (eps 1e-5, population variance). */
export function layerNorm(x: Float64Array, rows: number, D: number, w: Float64Array, b: Float64Array): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let c = 0; c < D; c++) mean += x[r * D + c];
    mean /= D;
    let v = 0;
    for (let c = 0; c < D; c++) v += (x[r * D + c] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / D + 1e-5);
    for (let c = 0; c < D; c++) y[r * D + c] = (x[r * D + c] - mean) * rstd * w[c] + b[c];
  }
  return y;
}

/** y = x Wᵀ + b: x [rows, I], W [O, I], b [O]. */
export function linear(x: Float64Array, rows: number, I: number, W: Float64Array, b: Float64Array | null, O: number): Float64Array {
  const y = new Float64Array(rows * O);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < O; o++) {
      let acc = b === null ? 0 : b[o];
      for (let i = 0; i < I; i++) acc += x[r * I + i] * W[o * I + i];
      y[r * O + o] = acc;
    }
  }
  return y;
}

export interface DenseGroupRef {
  name: string;
  features: { name: string; mean: number; std: number }[];
}

/**
 * FeatureGroups with dense-only groups (layerNorm on): columns [z, missing] per feature, z clipped
 * to ±clip, projection, LayerNorm, zeroed for missing groups. values[n][g][f]: number | undefined
 * (undefined = missing value); groupPresent[n][g]. Returns tokens [N, G, D].
 */
export function denseGroupsRef(
  P: Params, prefix: string, groups: DenseGroupRef[], values: (number | undefined)[][][], present: boolean[][], D: number, clip: number,
): Float64Array {
  const N = values.length;
  const G = groups.length;
  const out = new Float64Array(N * G * D);
  groups.forEach((g, gi) => {
    const F = g.features.length;
    const x = new Float64Array(N * 2 * F);
    for (let n = 0; n < N; n++) {
      if (!present[n][gi]) continue;
      g.features.forEach((f, fi) => {
        const v = values[n][gi][fi];
        if (v === undefined || !Number.isFinite(v)) x[n * 2 * F + 2 * fi + 1] = 1;
        else x[n * 2 * F + 2 * fi] = Math.max(-clip, Math.min(clip, (v - f.mean) / f.std));
      });
    }
    const h = linear(x, N, 2 * F, get(P, `${prefix}${g.name}.proj.weight`), get(P, `${prefix}${g.name}.proj.bias`), D);
    const t = layerNorm(h, N, D, get(P, `${prefix}${g.name}.norm.weight`), get(P, `${prefix}${g.name}.norm.bias`));
    for (let n = 0; n < N; n++) {
      if (!present[n][gi]) continue;
      for (let c = 0; c < D; c++) out[(n * G + gi) * D + c] = t[n * D + c];
    }
  });
  return out;
}

export interface HFGRefConfig {
  D: number;
  G: number;
  H: number;
  layers: number;
  hidden: number;
  pooling: 'context' | 'mean' | 'attention';
  /** FFN activation; tests use tanh (exact in float64). */
  act: (x: number) => number;
}

/** HFGAttention forward: context [N, D], item [N, D], tokens [N, G, D], mask [N, G] → [N, D]. */
export function hfgRef(P: Params, prefix: string, cfg: HFGRefConfig, ctx: Float64Array, item: Float64Array, tok: Float64Array, mask: Float64Array, N: number): Float64Array {
  const { D, G, H, hidden } = cfg;
  const T = G + 2;
  const dh = D / H;
  const p = (n: string): Float64Array => get(P, prefix + n);
  const keyOn = (n: number, t: number): boolean => t < 2 || mask[n * G + (t - 2)] !== 0;
  const typeE = p('typeEmbedding');
  let X = new Float64Array(N * T * D);
  for (let n = 0; n < N; n++) {
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < D; c++) {
        const src = t === 0 ? ctx[n * D + c] : t === 1 ? item[n * D + c] : tok[(n * G + t - 2) * D + c];
        X[(n * T + t) * D + c] = src + typeE[t * D + c];
      }
    }
  }
  // Softmax attention of one query vector over the row's present keys (k, v given by accessors).
  const attend = (n: number, q: (c: number) => number, k: (t: number, c: number) => number, v: (t: number, c: number) => number, o: (c: number, val: number) => void): void => {
    const s = new Float64Array(T);
    let mx = -Infinity;
    for (let t = 0; t < T; t++) {
      if (!keyOn(n, t)) continue;
      let acc = 0;
      for (let c = 0; c < dh; c++) acc += q(c) * k(t, c);
      s[t] = acc / Math.sqrt(dh);
      mx = Math.max(mx, s[t]);
    }
    let z = 0;
    const w = new Float64Array(T);
    for (let t = 0; t < T; t++) if (keyOn(n, t)) z += w[t] = Math.exp(s[t] - mx);
    for (let c = 0; c < dh; c++) {
      let acc = 0;
      for (let t = 0; t < T; t++) acc += (w[t] / z) * v(t, c);
      o(c, acc);
    }
  };
  for (let l = 0; l < cfg.layers; l++) {
    const pre = `layer${l}.`;
    const h = layerNorm(X, N * T, D, p(pre + 'norm1.weight'), p(pre + 'norm1.bias'));
    const qkv = linear(h, N * T, D, p(pre + 'qkv.weight'), p(pre + 'qkv.bias'), 3 * D);
    const merged = new Float64Array(N * T * D);
    for (let n = 0; n < N; n++) {
      for (let hh = 0; hh < H; hh++) {
        const at = (t: number, part: number, c: number): number => qkv[(n * T + t) * 3 * D + part * D + hh * dh + c];
        for (let i = 0; i < T; i++) {
          attend(n, (c) => at(i, 0, c), (t, c) => at(t, 1, c), (t, c) => at(t, 2, c), (c, val) => {
            merged[(n * T + i) * D + hh * dh + c] = val;
          });
        }
      }
    }
    const ao = linear(merged, N * T, D, p(pre + 'out.weight'), p(pre + 'out.bias'), D);
    X = X.map((x, i) => x + ao[i]);
    const h2 = layerNorm(X, N * T, D, p(pre + 'norm2.weight'), p(pre + 'norm2.bias'));
    const f0 = linear(h2, N * T, D, p(pre + 'ffn.fc0.weight'), p(pre + 'ffn.fc0.bias'), hidden).map(cfg.act);
    const f1 = linear(f0, N * T, hidden, p(pre + 'ffn.fc1.weight'), p(pre + 'ffn.fc1.bias'), D);
    X = X.map((x, i) => x + f1[i]);
  }
  const Y = layerNorm(X, N * T, D, p('outNorm.weight'), p('outNorm.bias'));
  const out = new Float64Array(N * D);
  for (let n = 0; n < N; n++) {
    if (cfg.pooling === 'context') {
      for (let c = 0; c < D; c++) out[n * D + c] = Y[n * T * D + c];
    } else if (cfg.pooling === 'mean') {
      let cnt = 0;
      for (let t = 0; t < T; t++) {
        if (!keyOn(n, t)) continue;
        cnt++;
        for (let c = 0; c < D; c++) out[n * D + c] += Y[(n * T + t) * D + c];
      }
      for (let c = 0; c < D; c++) out[n * D + c] /= cnt;
    } else {
      const pq = p('poolQuery');
      for (let hh = 0; hh < H; hh++) {
        const yv = (t: number, c: number): number => Y[(n * T + t) * D + hh * dh + c];
        attend(n, (c) => pq[hh * dh + c], yv, yv, (c, val) => {
          out[n * D + hh * dh + c] = val;
        });
      }
    }
  }
  return out;
}
