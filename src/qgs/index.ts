// QGS: the query-conditioned generative search ranker (DESIGN.md §5–§6): data preparation into
// pair-token streams, the model and its baselines, training/evaluation, checkpoints, scoring and the
// serving backend.
export { prepareTimelines, buildTokens, userBatches, featureLayout, NO_ITEM, NO_QUERY, PAD_TERM, ITEM_OFFSET, TERM_OFFSET } from './dataset';
export type { PreparedData, PreparedRequest, UserTimeline, TokenBatch, FeatureLayout, ItemSideInfo, SequenceVariant, PrepareOptions } from './dataset';
export { QgsModel, DEFAULT_MODEL } from './model';
export type { QgsConfig } from './model';
export { SequenceEncoder, EncoderBlock, packBatch } from './encoder';
export type { EncoderKind, EncoderConfig, PackedBatch } from './encoder';
export { RankingHead, createHead } from './heads';
export type { HeadKind } from './heads';
export { trainModel, evaluate, modelConfig } from './train';
export type { TrainOptions, TrainProgress, TrainResult, EpochRecord } from './train';
export { VARIANTS, prepareSynthetic, runVariant } from './experiment';
export type { Variant, ComparisonRow } from './experiment';
export { saveCheckpoint, loadCheckpoint, CHECKPOINT_FILE } from './checkpoint';
export type { CheckpointConfig } from './checkpoint';
export { scoreRequest, featureRows } from './scoring';
export type { RankRequest, RankCandidate, RankHistoryEvent, RankQuery } from './scoring';
export { QgsBackend, createBackend } from './backend';
export { fitScaler, scaleFeatures } from './features';
export type { ScalerState } from './features';
