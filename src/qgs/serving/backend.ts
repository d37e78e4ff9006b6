// The scoring backend interface the serving layer is generic over (DESIGN.md §6).
//
// A backend module is a CommonJS (or ESM) file that exports `createBackend: BackendFactory`. The
// Ranker `require`s it inside its worker thread, so everything a backend does (native kernels
// included) runs off the host service's event loop, one call at a time.
//
// Contract (what the serving layer relies on):
// - A user's state is a Float32Array of exactly `stateSize` floats. The serving layer owns the arrays
//   it is given: `encode`, `step` and `emptyState` must return arrays the backend does not keep or
//   modify afterwards, and `step` must not modify its `state` argument (return a new array). The
//   cache, export/import and batching rely on states being immutable values.
// - `encode(h)` must equal folding `step` over `h` from `emptyState()` (the cached and cold paths
//   score the same; bit-exact for the toy backend, within float rounding for chunked kernels).
// - `scoreBatch(reqs)` returns one Float32Array per request, `reqs[i].candidates.length` long, scores
//   in candidate order. Returned arrays may be views into one shared or reused buffer (the serving
//   layer copies them before they leave the worker). If it throws, the
//   Ranker re-scores the batch's requests one by one so that only the failing request rejects.
// - Errors are thrown as `Error`s whose message is passed to the caller's rejected promise.
// - `dispose()` releases native memory; it is called once when the Ranker closes.
// - Candidates are packed (CandidateBatch) rather than an array of objects: structured-cloning 1,000
//   candidates with feature objects to the worker cost more than scoring them (bench/suites/serving.js).
//
// A minimal backend module (CommonJS; what `dist/qgs/backend.js` provides for QGS checkpoints):
//
//   exports.createBackend = async (checkpointDir, opts) => {
//     const model = await loadModel(checkpointDir);          // validate, never half-load
//     return {
//       stateSize: model.stateSize,                           // layers * H * dk * dv
//       stateTag: model.configHash,                           // exported states carry it
//       emptyState: () => new Float32Array(model.stateSize),
//       encode: (history) => model.encodeHistory(history),    // chunked recurrence, final state out
//       step: (state, ev) => model.stepState(state, ev),       // one O(layers*H*dk*dv) update
//       scoreBatch: (reqs) => model.rank(reqs.map((r) => ({ state: r.state, query: r.query,
//         items: r.candidates.items, feats: r.candidates.featureMatrix(model.featureColumns) }))),
//       dispose: () => model.dispose(),
//     };
//   };
//
// All inputs reaching a backend have been validated (see validate.ts): term, query and action ids
// are non-negative integers below 2^31; item ids are too, except where the caller sent strings or
// larger integers (then `candidates.item(i)` / `rawItems` hold them and `items[i]` is -1); numbers are
// finite; histories and candidate lists are within the limits.

import type { CandidateBatch, FeatureColumn, PackedHistory } from './packed';

export type { CandidateBatch } from './packed';

/** A search query: hashed term ids and/or raw text and/or a query id (at least one is present). */
export interface Query {
  terms?: number[];
  text?: string;
  id?: number;
}

/**
 * An item id: a non-negative integer (up to 2^53 − 1) or a non-empty string. Models trained on a
 * log map them through their vocabulary; the synthetic data's models take integers below their
 * catalogue size and refuse others with an error naming the id.
 */
export type ItemId = number | string;

/** One past interaction of a user: the query issued and the item acted on. */
export interface Interaction {
  query: Query;
  item: ItemId;
  /** Timestamp (seconds or ms; the backend decides how it buckets Δt). */
  ts?: number;
  /** Action type id (click, purchase, ...). */
  action?: number;
}

export type FeatureValue = number | string | number[] | string[] | null;

/** A candidate item with its hand-crafted features: group name -> feature name -> value. */
export interface Candidate {
  item: ItemId;
  features?: Record<string, Record<string, FeatureValue>>;
}

/**
 * One request as the backend sees it in a batch. Candidates arrive packed (see packed.ts): item ids
 * as an Int32Array (and `rawItems` when some are strings or past int32), numeric features as one
 * dense [N, columns] Float32Array (NaN = absent), string and array features as `extras`;
 * `candidates.toArray()` rebuilds `Candidate` objects if wanted.
 */
export interface BackendScoreRequest {
  state: Float32Array;
  query: Query;
  candidates: CandidateBatch;
}

export interface ScoringBackend {
  /** Floats per user state. */
  readonly stateSize: number;
  /**
   * Optional identity of the model the states belong to (e.g. a hash of the checkpoint config).
   * Exported states carry a 32-bit hash of it, and importing a state made by a backend with a
   * different tag is rejected. Backends with interchangeable states share a tag.
   */
  readonly stateTag?: string;
  /**
   * Optional: numeric features the backend needs exactly, not rounded to float32 — categorical
   * features whose values may arrive as numbers (ids past 2^24, fractional categories). The Ranker
   * then adds each such value that float32 would change to the candidates' `extras`, exact.
   */
  readonly exactFeatures?: readonly FeatureColumn[];
  /** The state of a user with no history. */
  emptyState(): Float32Array;
  /** Full re-encode of a history, oldest first (the cold path). */
  encode(history: readonly Interaction[]): Float32Array;
  /**
   * Optional: `encode` of a history in the packed (columnar) form it crosses the thread boundary in;
   * must equal `encode(unpackHistory(h))`. Used when present: rebuilding 1,000 event objects per cold
   * request cost ~0.15 ms and most of the serving worker's young-generation garbage.
   */
  encodePacked?(history: PackedHistory): Float32Array;
  /** One incremental update (the cached path). Must not modify `state`. */
  step(state: Float32Array, event: Interaction): Float32Array;
  /** Scores every request's candidates; one Float32Array per request, in candidate order. */
  scoreBatch(reqs: readonly BackendScoreRequest[]): Float32Array[];
  /**
   * Optional: runs a few representative calls after loading (Ranker.load awaits it unless
   * `warmup: false`), so the first real requests do not pay for JIT compilation and first-touch
   * allocations — without it the first ~15 requests of a fresh Ranker were 2-15× slower.
   */
  warmup?(): void;
  /** Releases the backend's resources. */
  dispose(): void;
}

/**
 * What a backend module exports as `createBackend`. `checkpointDir` is the path given to
 * `Ranker.load`; `opts` is `RankerOptions.backendOptions` (structured-cloneable values).
 */
export type BackendFactory = (checkpointDir: string, opts: Record<string, unknown>) => Promise<ScoringBackend> | ScoringBackend;
