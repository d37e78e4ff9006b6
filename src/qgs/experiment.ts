// The QGS comparison (issue 6, DESIGN.md §5): QGS and the paper's ablation baselines trained on the
// same seeded data and evaluated on the same test split with position-free relevance labels.
import { generateSessions, type GeneratorOptions, type SyntheticDataset } from '../data/synthetic';
import { splitByUserTime } from '../data/split';
import { prepareTimelines, type PreparedData } from './dataset';
import { modelConfig, trainModel, evaluate, type TrainOptions, type TrainResult } from './train';
import type { QgsConfig } from './model';

export interface Variant {
  name: string;
  description: string;
  config: Partial<QgsConfig>;
}

/** QGS first, then the baselines built from the same parts. */
export const VARIANTS: readonly Variant[] = [
  { name: 'qgs', description: 'pair tokens + next-query read-out, Linear HSTU, HFG-Attention', config: { variant: 'qgs', encoder: 'linear', head: 'hfg' } },
  { name: 'qgs-quadratic', description: 'same with quadratic HSTU attention', config: { variant: 'qgs', encoder: 'quadratic', head: 'hfg' } },
  { name: 'flattened', description: 'query and item tokens in one stream, marginal next-item read-out', config: { variant: 'flattened', encoder: 'linear', head: 'hfg' } },
  { name: 'item-only', description: 'item-only history, query-blind read-out', config: { variant: 'item-only', encoder: 'linear', head: 'hfg' } },
  { name: 'concat-mlp', description: 'QGS encoder, features concatenated into an MLP instead of HFG', config: { variant: 'qgs', encoder: 'linear', head: 'concat-mlp' } },
];

/** The variant called `name`, or an error naming `where` (a CLI option or an API argument) and the choices. */
export function variantByName(name: string, where: string): Variant {
  const v = VARIANTS.find((x) => x.name === name);
  if (v === undefined) throw new Error(`${where}: expected one of ${VARIANTS.map((x) => x.name).join(', ')}, got '${name}'`);
  return v;
}

export interface PreparedExperiment {
  dataset: SyntheticDataset;
  data: PreparedData;
}

/** Generates the seeded synthetic log and prepares it for training (per-user time split). */
export function prepareSynthetic(gen: GeneratorOptions = {}): PreparedExperiment {
  const dataset = generateSessions(gen);
  const split = splitByUserTime(dataset.records);
  const data = prepareTimelines(dataset.records, dataset.spec, { split, catalogue: dataset.catalogue });
  return { dataset, data };
}

export interface ComparisonRow {
  model: string;
  gauc: number;
  auc: number;
  ndcg10: number;
  mrr: number;
  valid_gauc: number;
  epochs: number;
  train_s: number;
  [key: string]: string | number;
}

export interface RunVariantResult {
  row: ComparisonRow;
  result: TrainResult;
}

export function runVariant(data: PreparedData, v: Variant, train: TrainOptions = {}, overrides: Partial<QgsConfig> = {}): RunVariantResult {
  const cfg = modelConfig(data, { ...v.config, ...overrides });
  const result = trainModel(data, cfg, train);
  const test = evaluate(result.model, data, result.scaler, 2);
  const best = result.history[result.bestEpoch];
  return {
    row: {
      model: v.name,
      gauc: test.gauc,
      auc: test.auc,
      ndcg10: test.ndcg,
      mrr: test.mrr,
      valid_gauc: best ? best.valid.gauc : NaN,
      epochs: result.history.length,
      train_s: result.trainSeconds,
    },
    result,
  };
}
