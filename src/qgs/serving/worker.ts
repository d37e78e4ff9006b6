// The serving worker: owns the backend and the user-state cache; processes batches of operations
// from the Ranker in order, scoring all of a batch's score requests with one backend.scoreBatch call.
// Runs only inside a worker_thread started by Ranker (guarded by workerData.marker).
import { parentPort, workerData } from 'worker_threads';
import { pathToFileURL } from 'url';
import type { BackendScoreRequest, ScoringBackend } from './backend';
import type { FromWorker, Op, OpResult, ToWorker, WorkerInit, WorkerStats } from './protocol';
import { StateCache, type UserKey } from './state-cache';
import { CandidateBatch, unpackHistory, type FeatureColumn, type PackedHistory } from './packed';

function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string') return (e as { message: string }).message;
  return String(e);
}

async function loadModule(file: string): Promise<Record<string, unknown>> {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as Record<string, unknown>;
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_REQUIRE_ESM') return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    throw e;
  }
}

const REQUIRED_METHODS = ['emptyState', 'encode', 'step', 'scoreBatch', 'dispose'] as const;

export async function createBackendFrom(init: WorkerInit): Promise<ScoringBackend> {
  let mod: Record<string, unknown>;
  try {
    mod = await loadModule(init.backendModule);
  } catch (e) {
    throw new Error(`cannot load backend module ${init.backendModule}: ${messageOf(e)}`);
  }
  const def = mod.default as Record<string, unknown> | undefined;
  const factory = mod.createBackend ?? def?.createBackend;
  if (typeof factory !== 'function') {
    throw new Error(`backend module ${init.backendModule} does not export createBackend(checkpointDir, opts) (exports: ${Object.keys(mod).join(', ') || 'none'})`);
  }
  let b: ScoringBackend;
  try {
    b = (await (factory as (d: string, o: Record<string, unknown>) => unknown)(init.checkpointDir, init.backendOptions)) as ScoringBackend;
  } catch (e) {
    throw new Error(`createBackend(${JSON.stringify(init.checkpointDir)}) failed: ${messageOf(e)}`);
  }
  if (typeof b !== 'object' || b === null) throw new Error(`createBackend returned ${b === null ? 'null' : typeof b}, expected a ScoringBackend object`);
  for (const m of REQUIRED_METHODS) {
    if (typeof (b as unknown as Record<string, unknown>)[m] !== 'function') throw new Error(`createBackend returned a backend without ${m}()`);
  }
  if (!(Number.isSafeInteger(b.stateSize) && b.stateSize > 0)) throw new Error(`backend.stateSize: expected a positive integer, got ${String(b.stateSize)}`);
  if (b.stateTag !== undefined && typeof b.stateTag !== 'string') throw new Error(`backend.stateTag: expected a string or undefined, got ${typeof b.stateTag}`);
  exactFeaturesOf(b);
  return b;
}

/** backend.exactFeatures as plain columns ([] when absent); throws naming it when malformed. */
export function exactFeaturesOf(b: ScoringBackend): FeatureColumn[] {
  const e: unknown = b.exactFeatures;
  if (e === undefined) return [];
  const ok = (c: unknown): c is FeatureColumn =>
    typeof c === 'object' && c !== null && typeof (c as FeatureColumn).group === 'string' && typeof (c as FeatureColumn).feature === 'string';
  if (!Array.isArray(e) || !e.every(ok)) throw new Error('backend.exactFeatures: expected an array of { group, feature } string pairs or undefined');
  return e.map((c: FeatureColumn) => ({ group: c.group, feature: c.feature }));
}

/** Processes batches against a backend and a cache (the worker's logic, testable without a thread). */
export class ServingCore {
  readonly cache: StateCache;
  /** Result arrays created by the serving layer itself (safe to transfer without a copy). */
  private owned = new Set<Float32Array>();
  private readonly counters = {
    batches: 0,
    scoreRequests: 0,
    candidatesScored: 0,
    scoreBatchCalls: 0,
    maxScoreBatch: 0,
    batchFallbacks: 0,
    encodes: 0,
    steps: 0,
    busyMs: 0,
  };

  constructor(
    readonly backend: ScoringBackend,
    cacheBytes: number,
    readonly onMissingState: 'empty' | 'reject',
  ) {
    this.cache = new StateCache(cacheBytes);
  }

  /** The arrays of the last run() that the serving layer created (and may transfer as they are). */
  ownedOutputs(): Set<Float32Array> {
    const o = this.owned;
    this.owned = new Set();
    return o;
  }

  stats(): WorkerStats {
    return { cache: this.cache.stats(), ...this.counters };
  }

  private checkState(s: unknown, what: string): Float32Array {
    const n = this.backend.stateSize;
    if (!(s instanceof Float32Array) || s.length !== n) {
      const got = s instanceof Float32Array ? `a Float32Array of ${s.length}` : s === null ? 'null' : typeof s;
      throw new Error(`${what} returned ${got}, expected a Float32Array of stateSize = ${n} floats`);
    }
    return s;
  }

  private encode(history: PackedHistory): Float32Array {
    this.counters.encodes++;
    const b = this.backend;
    if (typeof b.encodePacked === 'function') return this.checkState(b.encodePacked(history), 'backend.encodePacked');
    return this.checkState(b.encode(unpackHistory(history)), 'backend.encode');
  }

  private stateOf(user: UserKey | undefined, what: string): Float32Array {
    if (user !== undefined) {
      const s = this.cache.get(user);
      if (s !== undefined) return s;
      if (this.onMissingState === 'reject') {
        throw new Error(`${what}: no cached state for user ${JSON.stringify(user)} (never seen, evicted or forgotten); pass its history or importState first`);
      }
    }
    return this.checkState(this.backend.emptyState(), 'backend.emptyState');
  }

  private checkScores(out: unknown, reqs: readonly BackendScoreRequest[]): Float32Array[] {
    if (!Array.isArray(out) || out.length !== reqs.length) {
      throw new Error(`backend.scoreBatch returned ${Array.isArray(out) ? `${out.length} results` : typeof out} for ${reqs.length} requests`);
    }
    out.forEach((s, i) => {
      const n = reqs[i].candidates.length;
      if (!(s instanceof Float32Array) || s.length !== n) {
        throw new Error(`backend.scoreBatch result ${i}: expected a Float32Array of ${n} scores, got ${s instanceof Float32Array ? `length ${s.length}` : typeof s}`);
      }
    });
    return out as Float32Array[];
  }

  private scoreAll(reqs: BackendScoreRequest[]): (Float32Array | Error)[] {
    if (reqs.length === 0) return [];
    this.counters.scoreBatchCalls++;
    this.counters.maxScoreBatch = Math.max(this.counters.maxScoreBatch, reqs.length);
    try {
      return this.checkScores(this.backend.scoreBatch(reqs), reqs);
    } catch (e) {
      if (reqs.length === 1) return [new Error(messageOf(e))];
      // Isolate the failing request(s): the others still get their scores.
      this.counters.batchFallbacks++;
      return reqs.map((r) => {
        try {
          this.counters.scoreBatchCalls++;
          return this.checkScores(this.backend.scoreBatch([r]), [r])[0];
        } catch (e1) {
          return new Error(messageOf(e1));
        }
      });
    }
  }

  /** Runs a batch of ops in order; score ops see the states as of their position in the batch. */
  run(ops: readonly Op[]): OpResult[] {
    const t0 = performance.now();
    this.counters.batches++;
    const results: OpResult[] = new Array(ops.length);
    const scoreIdx: number[] = [];
    const scoreReqs: BackendScoreRequest[] = [];
    const statsIdx: number[] = [];
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      try {
        switch (op.kind) {
          case 'score': {
            this.counters.scoreRequests++;
            let state: Float32Array;
            if (op.history !== undefined) {
              state = this.encode(op.history);
              if (op.user !== undefined) this.cache.put(op.user, state);
            } else {
              state = this.stateOf(op.user, 'score');
            }
            scoreIdx.push(i);
            scoreReqs.push({ state, query: op.query, candidates: new CandidateBatch(op.candidates) });
            break;
          }
          case 'observe': {
            let s = this.stateOf(op.user, 'observe');
            for (const ev of op.events) {
              this.counters.steps++;
              s = this.checkState(this.backend.step(s, ev), 'backend.step');
            }
            this.cache.put(op.user, s);
            results[i] = { ok: true };
            break;
          }
          case 'export': {
            const s = this.cache.peek(op.user);
            const copy = s === undefined ? null : s.slice();
            if (copy !== null) this.owned.add(copy);
            results[i] = { ok: true, value: copy };
            break;
          }
          case 'import':
            this.cache.put(op.user, this.checkState(op.state, 'importState'));
            results[i] = { ok: true };
            break;
          case 'forget':
            results[i] = { ok: true, value: this.cache.delete(op.user) };
            break;
          case 'stats':
            statsIdx.push(i);
            break;
          default:
            results[i] = { ok: false, message: `unknown operation ${(op as { kind: string }).kind}` };
        }
      } catch (e) {
        results[i] = { ok: false, message: messageOf(e) };
      }
    }
    const scores = this.scoreAll(scoreReqs);
    for (let j = 0; j < scoreIdx.length; j++) {
      const s = scores[j];
      if (s instanceof Error) {
        results[scoreIdx[j]] = { ok: false, message: s.message };
      } else {
        this.counters.candidatesScored += s.length;
        results[scoreIdx[j]] = { ok: true, value: s };
      }
    }
    this.counters.busyMs += performance.now() - t0;
    for (const i of statsIdx) results[i] = { ok: true, value: this.stats() };
    return results;
  }
}

/**
 * Float32Arrays in the results, made transferable. Score arrays are copied first: a backend may
 * return views into one batch buffer or reuse its own output buffer, and transferring those would
 * detach memory the backend still holds (4 bytes per candidate; negligible next to scoring).
 */
function transferables(results: OpResult[], fresh: Set<Float32Array>): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const r of results) {
    if (!r.ok || !(r.value instanceof Float32Array)) continue;
    let v = r.value;
    if (!fresh.has(v) || !(v.buffer instanceof ArrayBuffer) || v.byteOffset !== 0 || v.byteLength !== v.buffer.byteLength) {
      v = v.slice();
      r.value = v;
    }
    out.push(v.buffer as ArrayBuffer);
  }
  return out;
}

async function main(port: NonNullable<typeof parentPort>, init: WorkerInit): Promise<void> {
  const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  let core: ServingCore;
  try {
    const backend = await createBackendFrom(init);
    if (init.warmup && typeof backend.warmup === 'function') backend.warmup();
    core = new ServingCore(backend, init.cacheBytes, init.onMissingState);
  } catch (e) {
    post({ type: 'initError', message: messageOf(e) });
    return;
  }
  port.on('message', (m: ToWorker) => {
    if (m.type === 'batch') {
      // An exception escaping here is a worker crash: the Ranker rejects everything pending.
      const results = core.run(m.ops);
      post({ type: 'result', id: m.id, results }, transferables(results, core.ownedOutputs()));
    } else if (m.type === 'close') {
      let disposeError: string | undefined;
      try {
        core.backend.dispose();
      } catch (e) {
        disposeError = messageOf(e);
      }
      core.cache.clear();
      post({ type: 'closed', disposeError });
      port.close();
    }
  });
  post({ type: 'ready', stateSize: core.backend.stateSize, stateTag: core.backend.stateTag, exactFeatures: exactFeaturesOf(core.backend) });
}

const wd = workerData as WorkerInit | undefined;
if (parentPort !== null && wd !== undefined && wd !== null && wd.marker === 'qgs-serving-worker') {
  void main(parentPort, wd);
}
