// Serving: Ranker (worker-thread scoring with batching and a per-user state cache) over a
// ScoringBackend (DESIGN.md §6).
export { Ranker, rankerError, resolveBackendModule, defaultBackendCandidates } from './ranker';
export type { RankerOptions, RankerStats, RankerErrorCode } from './ranker';
export type { ScoringBackend, BackendFactory, BackendScoreRequest, Query, Interaction, Candidate, FeatureValue } from './backend';
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
  packHistory,
  resolveLimits,
  ValidationError,
  DEFAULT_LIMITS,
  MAX_ID,
} from './validate';
export type { ScoreRequest, ServingLimits, PackedScoreRequest } from './validate';
export { CandidateBatch, unpackHistory } from './packed';
export type { PackedCandidates, PackedHistory, FeatureColumn, FeatureExtra } from './packed';
export type { WorkerStats, MissingStatePolicy } from './protocol';
