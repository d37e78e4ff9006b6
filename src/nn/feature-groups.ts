// nn.FeatureGroups (DESIGN.md §4.2, §5): hand-crafted ranking features declared in named semantic
// groups (text match, item statistics, user–item behaviour, query side, context, ...). A batch of raw
// feature records (one per candidate) becomes one D-dim token per group plus a group mask, the input
// of nn.HFGAttention (or of the nn.ConcatFeatureMLP baseline).
//
// Feature kinds and the rules for odd values (documented here because they are part of the model):
//  * dense     numeric x → (x − mean) / std, clipped to ±clip, plus a 0/1 "missing" indicator column.
//              A missing value (undefined, null, NaN, ±Infinity, or a non-number) is imputed as the
//              mean (0 after normalisation) with indicator 1; the projection's weight on the
//              indicator is the learned missing embedding. Never NaN downstream.
//              mean/std come from the spec, or from fit(records) (float64, finite values only;
//              std = 0 or no data → std 1).
//  * categorical  a string or number looked up in the feature's vocab → an embedding row.
//              Two reserved rows: OOV (a value not in the vocab) and MISSING (undefined / null).
//  * bag       a list of categorical values → the mean of their embeddings (unseen values use the
//              OOV row). An empty list, or a missing one, uses a learned EMPTY row.
// Each group concatenates its features' columns and projects them to D (Linear, then LayerNorm
// unless layerNorm: false). A group whose entry is missing from a record (undefined / null) is
// masked: mask 0 and an all-zero token; downstream attention ignores it as a key.
import { Tensor, tensor, type Device } from '../tensor';
import { concat, reshape } from '../ops/movement';
import { mul } from '../ops/elementwise';
import { embedding } from '../ops/nn';
import { sum } from '../ops/reduce';
import { checkNumber } from '../ops/validate';
import { Module } from './module';
import { Linear } from './linear';
import { LayerNorm } from './layernorm';
import { Embedding } from './embedding';

export type CategoryValue = string | number;

export interface DenseFeatureSpec {
  name: string;
  kind: 'dense';
  /** Normalisation mean (default: 0 until fit()). */
  mean?: number;
  /** Normalisation standard deviation (default: 1 until fit()); must be > 0. */
  std?: number;
}

export interface CategoricalFeatureSpec {
  name: string;
  kind: 'categorical' | 'bag';
  /** Known values; anything else maps to the OOV row. */
  vocab: readonly CategoryValue[];
  /** Embedding width (default FeatureGroupsOptions.embeddingDim). */
  embeddingDim?: number;
}

export type FeatureSpec = DenseFeatureSpec | CategoricalFeatureSpec;

export interface FeatureGroupSpec {
  name: string;
  features: readonly FeatureSpec[];
}

/** A raw feature value: a number (dense), a category, or a list of categories (bag). */
export type RawFeatureValue = number | string | null | undefined | readonly CategoryValue[];
/** One candidate's features: group name → (feature name → value); a missing group is absent or null. */
export type FeatureRecord = Readonly<Record<string, Readonly<Record<string, RawFeatureValue>> | null | undefined>>;

export interface FeatureGroupsOptions {
  /** Token width D. */
  dim: number;
  /** Default embedding width of categorical / bag features (default 16). */
  embeddingDim?: number;
  /** Normalised dense values are clipped to ±clip (default 10) so outliers cannot blow up tokens. */
  clip?: number;
  /** LayerNorm after each group projection (default true). */
  layerNorm?: boolean;
  seed?: number;
  device?: Device;
}

export interface FeatureGroupsOutput {
  /** f32 [N, G, D]: one token per group, zeros for missing groups. */
  tokens: Tensor;
  /** f32 [N, G]: 1 = group present, 0 = missing. */
  mask: Tensor;
}

/** Normalisation statistics of the dense features: group → feature → {mean, std}. */
export type DenseStats = Record<string, Record<string, { mean: number; std: number }>>;

interface DenseState {
  name: string;
  mean: number;
  std: number;
}

interface CatState {
  spec: CategoricalFeatureSpec;
  index: Map<CategoryValue, number>;
  table: Embedding;
}

interface GroupState {
  name: string;
  dense: DenseState[];
  cats: CatState[];
  width: number;
  proj: Linear;
  norm: LayerNorm | null;
}

const OP = 'FeatureGroups';
/** Reserved embedding rows of categorical / bag features; vocab values start at FIRST_VALUE_ROW. */
export const OOV_ROW = 0;
export const MISSING_ROW = 1;
export const FIRST_VALUE_ROW = 2;

function isMissingNumber(v: unknown): boolean {
  return typeof v !== 'number' || !Number.isFinite(v);
}

export class FeatureGroups extends Module {
  readonly dim: number;
  readonly clip: number;
  private readonly groups: GroupState[] = [];

  constructor(groups: readonly FeatureGroupSpec[], opts: FeatureGroupsOptions) {
    super();
    if (!Array.isArray(groups) || groups.length === 0) {
      throw new TypeError(`${OP}: groups: expected a non-empty array of {name, features}, got ${Array.isArray(groups) ? 'an empty array' : typeof groups}`);
    }
    if (typeof opts !== 'object' || opts === null) throw new TypeError(`${OP}: opts: expected an object with dim, got ${opts === null ? 'null' : typeof opts}`);
    this.dim = checkNumber(OP, 'dim', opts.dim, { integer: true, min: 1 });
    const embDefault = checkNumber(OP, 'embeddingDim', opts.embeddingDim ?? 16, { integer: true, min: 1 });
    this.clip = checkNumber(OP, 'clip', opts.clip ?? 10, { min: Number.MIN_VALUE });
    const useNorm = opts.layerNorm ?? true;
    const seedOf = (i: number): number | undefined => (opts.seed === undefined ? undefined : opts.seed + 101 * i);
    const groupNames = new Set<string>();
    let seedIdx = 0;
    for (const [gi, g] of groups.entries()) {
      if (typeof g !== 'object' || g === null || typeof g.name !== 'string' || g.name === '' || g.name.includes('.')) {
        throw new TypeError(`${OP}: groups[${gi}].name: expected a non-empty string without '.', got ${JSON.stringify(g?.name)}`);
      }
      if (groupNames.has(g.name)) throw new Error(`${OP}: groups[${gi}].name: duplicate group '${g.name}'`);
      groupNames.add(g.name);
      if (!Array.isArray(g.features) || g.features.length === 0) {
        throw new TypeError(`${OP}: group '${g.name}': features: expected a non-empty array, got ${Array.isArray(g.features) ? 'an empty array' : typeof g.features}`);
      }
      // Parameters: <group>.emb.<feature>.weight, <group>.proj.{weight,bias}, <group>.norm.{weight,bias}.
      const gm = new Module();
      this.registerModule(g.name, gm);
      const emb = new Module();
      const dense: DenseState[] = [];
      const cats: CatState[] = [];
      const featNames = new Set<string>();
      for (const [fi, f] of g.features.entries()) {
        const where = `${OP}: group '${g.name}' features[${fi}]`;
        if (typeof f !== 'object' || f === null || typeof f.name !== 'string' || f.name === '' || f.name.includes('.')) {
          throw new TypeError(`${where}.name: expected a non-empty string without '.', got ${JSON.stringify(f?.name)}`);
        }
        if (featNames.has(f.name)) throw new Error(`${where}: duplicate feature '${f.name}'`);
        featNames.add(f.name);
        if (f.kind === 'dense') {
          const mean = checkNumber(where, 'mean', f.mean ?? 0);
          const std = checkNumber(where, 'std', f.std ?? 1, { min: Number.MIN_VALUE });
          if (!Number.isFinite(mean) || !Number.isFinite(std)) throw new RangeError(`${where}: mean and std must be finite, got ${mean}, ${std}`);
          dense.push({ name: f.name, mean, std });
        } else if (f.kind === 'categorical' || f.kind === 'bag') {
          if (!Array.isArray(f.vocab)) throw new TypeError(`${where}.vocab: expected an array of strings or numbers, got ${typeof f.vocab}`);
          const index = new Map<CategoryValue, number>();
          for (const [vi, v] of f.vocab.entries()) {
            if (typeof v !== 'string' && typeof v !== 'number') throw new TypeError(`${where}.vocab[${vi}]: expected a string or number, got ${typeof v}`);
            if (!index.has(v)) index.set(v, FIRST_VALUE_ROW + index.size);
          }
          const e = checkNumber(where, 'embeddingDim', f.embeddingDim ?? embDefault, { integer: true, min: 1 });
          const table = emb.registerModule(f.name, new Embedding(FIRST_VALUE_ROW + index.size, e, { std: 0.1, seed: seedOf(seedIdx++), device: opts.device }));
          cats.push({ spec: { ...f, embeddingDim: e }, index, table });
        } else {
          throw new TypeError(`${where}.kind: expected 'dense', 'categorical' or 'bag', got ${JSON.stringify((f as { kind?: unknown }).kind)}`);
        }
      }
      if (cats.length > 0) gm.registerModule('emb', emb);
      const width = 2 * dense.length + cats.reduce((s, c) => s + (c.spec.embeddingDim ?? embDefault), 0);
      const proj = gm.registerModule('proj', new Linear(width, this.dim, { seed: seedOf(seedIdx++), device: opts.device }));
      const norm = useNorm ? gm.registerModule('norm', new LayerNorm(this.dim, { device: opts.device })) : null;
      this.groups.push({ name: g.name, dense, cats, width, proj, norm });
    }
  }

  /** Group names, in token order. */
  get groupNames(): string[] {
    return this.groups.map((g) => g.name);
  }

  get numGroups(): number {
    return this.groups.length;
  }

  /** Current dense normalisation statistics (serialise with the checkpoint config). */
  denseStats(): DenseStats {
    const out: DenseStats = {};
    for (const g of this.groups) {
      out[g.name] = {};
      for (const d of g.dense) out[g.name][d.name] = { mean: d.mean, std: d.std };
    }
    return out;
  }

  /** Sets dense statistics (e.g. from a checkpoint); unknown names are an error, omitted ones are kept. */
  setDenseStats(stats: DenseStats): void {
    for (const [gname, feats] of Object.entries(stats)) {
      const g = this.groups.find((x) => x.name === gname);
      if (g === undefined) throw new Error(`${OP}.setDenseStats: unknown group '${gname}'`);
      for (const [fname, st] of Object.entries(feats)) {
        const d = g.dense.find((x) => x.name === fname);
        if (d === undefined) throw new Error(`${OP}.setDenseStats: group '${gname}' has no dense feature '${fname}'`);
        const w = `${OP}.setDenseStats: ${gname}.${fname}`;
        const mean = checkNumber(w, 'mean', st.mean);
        const std = checkNumber(w, 'std', st.std, { min: Number.MIN_VALUE });
        if (!Number.isFinite(mean) || !Number.isFinite(std)) throw new RangeError(`${w}: mean and std must be finite, got ${mean}, ${std}`);
        d.mean = mean;
        d.std = std;
      }
    }
  }

  /**
   * Fits the dense statistics from records (float64 mean and population std over finite values;
   * missing groups and missing values are skipped; a feature with no data or zero spread gets std 1).
   */
  fit(records: readonly FeatureRecord[]): this {
    if (!Array.isArray(records)) throw new TypeError(`${OP}.fit: records: expected an array, got ${typeof records}`);
    for (const g of this.groups) {
      for (const d of g.dense) {
        let n = 0;
        let mean = 0;
        let m2 = 0;
        for (const r of records) {
          const v = r?.[g.name]?.[d.name];
          if (isMissingNumber(v)) continue;
          const x = v as number;
          n++;
          const delta = x - mean; // Welford: stable for large offsets
          mean += delta / n;
          m2 += delta * (x - mean);
        }
        const std = n > 0 ? Math.sqrt(m2 / n) : 0;
        d.mean = n > 0 ? mean : 0;
        d.std = std > 1e-12 && Number.isFinite(std) ? std : 1;
      }
    }
    return this;
  }

  /** Tokens [N, G, D] and mask [N, G] for a batch of records (one per candidate). */
  forward(records: readonly FeatureRecord[]): FeatureGroupsOutput {
    if (!Array.isArray(records)) throw new TypeError(`${OP}.forward: records: expected an array of feature records, got ${typeof records}`);
    const N = records.length;
    const G = this.groups.length;
    const device = this.device;
    const maskHost = new Float32Array(N * G);
    const tokens: Tensor[] = [];
    for (const [gi, g] of this.groups.entries()) {
      const present = new Float32Array(N);
      for (let n = 0; n < N; n++) {
        const r = records[n];
        if (typeof r !== 'object' || r === null) throw new TypeError(`${OP}.forward: records[${n}]: expected an object (group → features), got ${r === null ? 'null' : typeof r}`);
        const entry = r[g.name];
        if (entry !== undefined && entry !== null && typeof entry !== 'object') {
          throw new TypeError(`${OP}.forward: records[${n}].${g.name}: expected an object of features, null or undefined, got ${typeof entry}`);
        }
        present[n] = entry == null ? 0 : 1;
        maskHost[n * G + gi] = present[n];
      }
      const parts: Tensor[] = [];
      if (g.dense.length > 0) parts.push(tensor(this.denseColumns(records, g), [N, 2 * g.dense.length], { device }));
      for (const c of g.cats) parts.push(c.spec.kind === 'bag' ? this.bagColumns(records, g.name, c, device) : this.catColumns(records, g.name, c, device));
      const x = parts.length === 1 ? parts[0] : concat(parts, 1);
      let t = g.proj.forward(x);
      if (g.norm !== null) t = g.norm.forward(t);
      // Missing groups: all-zero token (the mask also removes them as attention keys).
      t = mul(t, tensor(present, [N, 1], { device }));
      tokens.push(reshape(t, [N, 1, this.dim]));
    }
    const out = tokens.length === 1 ? tokens[0] : concat(tokens, 1);
    return { tokens: out, mask: tensor(maskHost, [N, G], { device }) };
  }

  private denseColumns(records: readonly FeatureRecord[], g: GroupState): Float32Array {
    const F = g.dense.length;
    const host = new Float32Array(records.length * 2 * F);
    for (let n = 0; n < records.length; n++) {
      const entry = records[n][g.name];
      for (let f = 0; f < F; f++) {
        const d = g.dense[f];
        const v = entry == null ? undefined : entry[d.name];
        if (entry != null && v !== undefined && v !== null && typeof v !== 'number') {
          throw new TypeError(`${OP}.forward: records[${n}].${g.name}.${d.name}: dense feature expects a number, null or undefined, got ${Array.isArray(v) ? 'an array' : typeof v}`);
        }
        if (isMissingNumber(v)) {
          host[n * 2 * F + 2 * f] = 0;
          host[n * 2 * F + 2 * f + 1] = entry == null ? 0 : 1; // a missing group is not a missing value
        } else {
          const z = ((v as number) - d.mean) / d.std;
          host[n * 2 * F + 2 * f] = Math.max(-this.clip, Math.min(this.clip, z));
        }
      }
    }
    return host;
  }

  private lookup(c: CatState, v: unknown, where: string): number {
    if (v === undefined || v === null) return MISSING_ROW;
    if (typeof v !== 'string' && typeof v !== 'number') {
      throw new TypeError(`${where}: expected a string or number category, got ${Array.isArray(v) ? 'an array' : typeof v}`);
    }
    return c.index.get(v) ?? OOV_ROW;
  }

  private catColumns(records: readonly FeatureRecord[], group: string, c: CatState, device: Device): Tensor {
    const idx = new Int32Array(records.length);
    for (let n = 0; n < records.length; n++) {
      const entry = records[n][group];
      idx[n] = entry == null ? MISSING_ROW : this.lookup(c, entry[c.spec.name], `${OP}.forward: records[${n}].${group}.${c.spec.name}`);
    }
    const ids = tensor(idx, [records.length], { dtype: 'i32', device });
    return c.table.forward(ids);
  }

  // Mean of the bag's embeddings as a weighted sum over a padded [N, L] index matrix: real entries
  // weigh 1/len, padding 0; an empty or missing bag puts weight 1 on the MISSING row, which serves
  // as the learned EMPTY embedding.
  private bagColumns(records: readonly FeatureRecord[], group: string, c: CatState, device: Device): Tensor {
    const N = records.length;
    const bags: (readonly unknown[])[] = [];
    let L = 1;
    for (let n = 0; n < N; n++) {
      const entry = records[n][group];
      const v = entry == null ? undefined : entry[c.spec.name];
      if (v !== undefined && v !== null && !Array.isArray(v)) {
        throw new TypeError(`${OP}.forward: records[${n}].${group}.${c.spec.name}: bag feature expects an array, null or undefined, got ${typeof v}`);
      }
      const bag = (v ?? []) as readonly unknown[];
      bags.push(bag);
      L = Math.max(L, bag.length);
    }
    const idx = new Int32Array(N * L).fill(MISSING_ROW);
    const w = new Float32Array(N * L);
    for (let n = 0; n < N; n++) {
      const bag = bags[n];
      if (bag.length === 0) {
        w[n * L] = 1;
        continue;
      }
      for (let j = 0; j < bag.length; j++) {
        idx[n * L + j] = this.lookup(c, bag[j], `${OP}.forward: records[${n}].${group}.${c.spec.name}[${j}]`);
        w[n * L + j] = 1 / bag.length;
      }
    }
    const ids = tensor(idx, [N, L], { dtype: 'i32', device });
    const e = embedding(c.table.weight, ids); // [N, L, E]
    return sum(mul(e, tensor(w, [N, L, 1], { device })), 1);
  }
}
