// Messages between the Ranker (main thread) and its serving worker. Types only.
import type { Interaction, Query } from './backend';
import type { FeatureColumn, PackedCandidates, PackedHistory } from './packed';
import type { StateCacheStats, UserKey } from './state-cache';

export type Op =
  | { kind: 'score'; user?: UserKey; history?: PackedHistory; query: Query; candidates: PackedCandidates }
  | { kind: 'observe'; user: UserKey; events: Interaction[] }
  | { kind: 'export'; user: UserKey }
  | { kind: 'import'; user: UserKey; state: Float32Array }
  | { kind: 'forget'; user: UserKey }
  | { kind: 'stats' };

export type OpResult = { ok: true; value?: unknown } | { ok: false; message: string };

export type MissingStatePolicy = 'empty' | 'reject';

export interface WorkerInit {
  marker: 'qgs-serving-worker';
  backendModule: string;
  checkpointDir: string;
  backendOptions: Record<string, unknown>;
  cacheBytes: number;
  onMissingState: MissingStatePolicy;
  /** Call backend.warmup() (if it has one) before reporting ready. */
  warmup: boolean;
}

/** What the worker reports once its backend is loaded. */
export type WorkerReady = Extract<FromWorker, { type: 'ready' }>;

export type ToWorker = { type: 'batch'; id: number; ops: Op[] } | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; stateSize: number; stateTag?: string; exactFeatures: FeatureColumn[] }
  | { type: 'initError'; message: string }
  | { type: 'result'; id: number; results: OpResult[] }
  | { type: 'closed'; disposeError?: string };

/** Counters kept by the worker. */
export interface WorkerStats {
  cache: StateCacheStats;
  /** Batches processed. */
  batches: number;
  /** Score requests answered (successfully or not). */
  scoreRequests: number;
  candidatesScored: number;
  /** backend.scoreBatch calls and the largest number of requests in one. */
  scoreBatchCalls: number;
  maxScoreBatch: number;
  /** Batches whose scoreBatch threw and were re-scored one request at a time. */
  batchFallbacks: number;
  encodes: number;
  steps: number;
  /** Milliseconds the worker spent processing batches. */
  busyMs: number;
}
