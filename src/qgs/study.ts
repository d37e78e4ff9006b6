// The quality study behind issue 6's bars: every model variant trained on several seeded datasets
// and with several model seeds, and each bar ("QGS beats flattened by ≥ 0.02 GAUC", ...) evaluated
// on every (data seed, model seed) run. One run per seed pair says little when two models are within
// training noise of each other (model seeds alone move test GAUC by up to ~0.01 here), so the summary
// reports the mean, the range and on how many runs each bar held.
import { VARIANTS, prepareSynthetic, runVariant, variantByName, type ComparisonRow } from './experiment';
import type { ModelOverrides } from './model-overrides';

export interface QualityBar {
  name: string;
  /** The model that must lead (a variant name). */
  model: string;
  /** The variant it is compared with. */
  baseline: string;
  /** Least GAUC(model) − GAUC(baseline) that meets the bar (negative: "within"). */
  minGap: number;
}

/** Issue 6's quality bars on test GAUC. */
export const QUALITY_BARS: readonly QualityBar[] = [
  { name: 'QGS vs flattened', model: 'qgs', baseline: 'flattened', minGap: 0.02 },
  { name: 'QGS vs item-only', model: 'qgs', baseline: 'item-only', minGap: 0.04 },
  { name: 'linear vs quadratic HSTU', model: 'qgs', baseline: 'qgs-quadratic', minGap: -0.005 },
  { name: 'HFG vs concat-MLP', model: 'qgs', baseline: 'concat-mlp', minGap: 0 },
];

export interface StudyRow extends ComparisonRow {
  data_seed: number;
  model_seed: number;
}

export interface BarGap {
  dataSeed: number;
  modelSeed: number;
  gap: number;
}

/** One data seed's gaps averaged over its model seeds (initialisation noise averaged out). */
export interface DataSeedGap {
  dataSeed: number;
  runs: number;
  mean: number;
  /** mean ≥ minGap. */
  held: boolean;
}

export interface BarSummary {
  bar: QualityBar;
  /** One gap per (data seed, model seed) run that trained both models. */
  gaps: BarGap[];
  mean: number;
  min: number;
  max: number;
  /** Sample standard deviation of the gaps (NaN below two runs). */
  sd: number;
  /**
   * 95% confidence interval of the mean gap, Student t with runs − 1 degrees of freedom (runs are
   * treated as independent draws; NaN below two runs). An interval that contains both the bar and
   * the other side of it says the study cannot tell: the models differ by less than run-to-run noise.
   */
  ci95: [number, number];
  /** Runs on which gap ≥ minGap. */
  held: number;
  /** Per data seed, in order of first appearance. */
  perDataSeed: DataSeedGap[];
}

// Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom.
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101,
  2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/** The 0.975 quantile of Student's t with `df` ≥ 1 degrees of freedom (table, then Cornish–Fisher: < 1e-3 off). */
export function studentT975(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new RangeError(`studentT975: df: expected an integer >= 1, got ${df}`);
  if (df <= T975.length) return T975[df - 1];
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df * df);
}

function meanOf(x: readonly number[]): number {
  return x.length > 0 ? x.reduce((s, v) => s + v, 0) / x.length : Number.NaN;
}

/** Each bar's gap on every run that has both of its models (NaN statistics when none does). */
export function summarizeBars(rows: readonly StudyRow[], bars: readonly QualityBar[] = QUALITY_BARS): BarSummary[] {
  const key = (r: StudyRow): string => `${r.data_seed}/${r.model_seed}`;
  const runs = new Map<string, Map<string, StudyRow>>();
  for (const r of rows) {
    let m = runs.get(key(r));
    if (m === undefined) runs.set(key(r), (m = new Map()));
    if (m.has(r.model)) throw new Error(`summarizeBars: rows: model '${r.model}' appears twice for data seed ${r.data_seed}, model seed ${r.model_seed}`);
    m.set(r.model, r);
  }
  return bars.map((bar) => {
    const gaps: BarGap[] = [];
    for (const m of runs.values()) {
      const a = m.get(bar.model);
      const b = m.get(bar.baseline);
      if (a !== undefined && b !== undefined) gaps.push({ dataSeed: a.data_seed, modelSeed: a.model_seed, gap: a.gauc - b.gauc });
    }
    const g = gaps.map((x) => x.gap);
    const n = g.length;
    const mean = meanOf(g);
    const sd = n > 1 ? Math.sqrt(g.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1)) : Number.NaN;
    const half = n > 1 ? (studentT975(n - 1) * sd) / Math.sqrt(n) : Number.NaN;
    const bySeed = new Map<number, number[]>();
    for (const x of gaps) {
      const list = bySeed.get(x.dataSeed);
      if (list === undefined) bySeed.set(x.dataSeed, [x.gap]);
      else list.push(x.gap);
    }
    return {
      bar,
      gaps,
      mean,
      min: n > 0 ? Math.min(...g) : Number.NaN,
      max: n > 0 ? Math.max(...g) : Number.NaN,
      sd,
      ci95: [mean - half, mean + half],
      held: g.filter((x) => x >= bar.minGap).length,
      perDataSeed: [...bySeed].map(([dataSeed, list]) => {
        const m = meanOf(list);
        return { dataSeed, runs: list.length, mean: m, held: m >= bar.minGap };
      }),
    };
  });
}

export interface StudyOptions {
  /** Data seeds (one generated dataset each). */
  seeds: readonly number[];
  /** Model seeds (parameter initialisation; the demo's is 1). */
  modelSeeds: readonly number[];
  /** Variant names (default all). */
  models?: readonly string[];
  epochs: number;
  users?: number;
  items?: number;
  /** Model settings applied to every variant (an ablation of the defaults; see parseModelOverrides). */
  overrides?: ModelOverrides;
}

/** Trains every model on every (data seed, model seed); `onRow` sees each result as it arrives. */
export function runStudy(o: StudyOptions, onRow?: (row: StudyRow) => void): StudyRow[] {
  const names = o.models ?? VARIANTS.map((v) => v.name);
  const variants = names.map((n) => variantByName(n, 'runStudy: models'));
  for (const [what, list] of [['seeds', o.seeds], ['modelSeeds', o.modelSeeds]] as const) {
    if (list.length === 0) throw new Error(`runStudy: ${what}: expected at least one seed, got none`);
    if (new Set(list).size !== list.length) throw new Error(`runStudy: ${what}: expected distinct seeds, got ${list.join(', ')}`);
  }
  const rows: StudyRow[] = [];
  for (const seed of o.seeds) {
    const { data } = prepareSynthetic({ seed, users: o.users, items: o.items });
    for (const modelSeed of o.modelSeeds) {
      for (const v of variants) {
        // The training seed (batch order, dropout, negatives) stays the data seed, as in the demo.
        const { row, result } = runVariant(data, v, { epochs: o.epochs, seed }, { ...o.overrides, seed: modelSeed });
        result.model.dispose();
        const r: StudyRow = { ...row, data_seed: seed, model_seed: modelSeed };
        rows.push(r);
        onRow?.(r);
      }
    }
  }
  return rows;
}
