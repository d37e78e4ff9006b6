// Session-log data: schema, streaming readers, public-dataset adapters, the synthetic generator,
// vocabularies, splits and packed batches (DESIGN.md §7).
export * from './schema';
export { RecordStream, ReadReport, DataError, type BadRecord, type ReadOptions } from './report';
export { readLines, readJsonl, readCsv, readParquet, CsvParser, type CsvOptions, type CsvRecord, type ParquetOptions, type Located } from './readers';
export { readSessions, inferFormat, parseList, type ReadSessionsOptions, type SessionFormat, type FlatField } from './sessions';
export { readKuaisarSearch, readKuaisarRec, readJdsearch, parseJdsearchLine, parseKeyword, KUAISAR_FEATURE_SPEC, JD_ACTION_LABEL, type JdsearchOptions } from './adapters';
export {
  generateSessions,
  GENERATOR_DEFAULTS,
  GENERATOR_TINY,
  SYNTHETIC_FEATURE_SPEC,
  type GeneratorOptions,
  type ResolvedGeneratorOptions,
  type SyntheticDataset,
  type SyntheticTruth,
  type SyntheticCatalogue,
  type GeneratorStats,
} from './synthetic';
export { referenceScores, referenceTable, logisticRegressionScores, evaluateOnRel, relLabels, type ReferenceScorer, type ReferenceRow, type LrFeatureSet } from './reference';
export { Vocab, hashTerm, queryKey, queryTermIds, tokenize } from './vocab';
export { splitByUserTime, splitIndices, TRAIN, VALID, TEST, type SplitCode, type SplitOptions } from './split';
export {
  SessionIndex,
  rankingBatches,
  sequenceBatches,
  batchIndices,
  shuffledOrder,
  packJagged,
  timeBucket,
  type IndexOptions,
  type RankingBatch,
  type SequenceBatch,
  type SequenceWindow,
  type HistoryEvent,
  type BatchOptions,
} from './batching';
export { writeSessionsJsonl } from './write';
export { prepareData, type PreparedData } from './prepare';
