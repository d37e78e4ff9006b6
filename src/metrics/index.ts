// Offline evaluation metrics for rankers (DESIGN.md §1 `metrics/`).
export {
  auc,
  gauc,
  ndcgAtK,
  hitRateAtK,
  reciprocalRank,
  rankingMetrics,
  offsetsFromGroups,
} from './ranking';
export type { Numeric, GaucResult, GainKind, RankingMetrics, RankingMetricsOptions } from './ranking';
