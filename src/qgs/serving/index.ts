// Serving: Ranker (worker-thread scoring with batching and a per-user state cache) over a
// ScoringBackend (DESIGN.md §6).
//
//   const ranker = await Ranker.load(checkpointDir, { cacheBytes: 256 << 20 });
//   const scores = await ranker.score({ user: 'u1', history, query: { text: 'red shoes' }, candidates });
//   await ranker.observe('u1', { query: { text: 'red shoes' }, item: 42 });   // one step
//   const next = await ranker.score({ user: 'u1', query, candidates });        // cached state
//   // candidates may also come columnar: { items: Int32Array, columns: [{ group, feature }], values: Float32Array }
//   const bytes = await ranker.exportState('u1');  // to Redis; importState('u1', bytes) elsewhere
//   await ranker.close();
//
// Backends: backend.ts (interface), packed.ts (CandidateBatch); errors carry `code`
// (ERR_QGS_INVALID_REQUEST, ERR_QGS_BACKEND, ERR_QGS_RANKER_CLOSED, ERR_QGS_WORKER_CRASHED,
// ERR_QGS_OVERLOADED, ERR_QGS_LOAD).
export { Ranker, rankerError, resolveBackendModule, defaultBackendCandidates } from './ranker';
export type { RankerOptions, RankerStats, RankerErrorCode } from './ranker';
export type { ScoringBackend, BackendFactory, BackendScoreRequest, Query, Interaction, Candidate, FeatureValue, ItemId } from './backend';
export { StateCache, ENTRY_OVERHEAD_BYTES } from './state-cache';
export type { StateCacheStats, UserKey } from './state-cache';
export { encodeState, decodeState, tagHash, STATE_MAGIC, STATE_FORMAT_VERSION, STATE_HEADER_BYTES } from './state-codec';
export {
  validateScoreRequest,
  validateQuery,
  validateInteraction,
  validateHistory,
  validateCandidate,
  validateCandidates,
  validateUser,
  validateFeatureValue,
  packScoreRequest,
  packCandidates,
  packCandidateColumns,
  isCandidateColumns,
  packHistory,
  resolveLimits,
  ValidationError,
  DEFAULT_LIMITS,
  MAX_ID,
} from './validate';
export type { ScoreRequest, ServingLimits, PackedScoreRequest, CandidateColumns } from './validate';
export { CandidateBatch, unpackHistory, exactFeatureSet } from './packed';
export type { PackedCandidates, PackedHistory, FeatureColumn, FeatureExtra, ExactFeatures } from './packed';
export type { WorkerStats, MissingStatePolicy } from './protocol';
