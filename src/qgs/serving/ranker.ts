// Ranker: serves a scoring backend from one worker thread (DESIGN.md §6; threads: §2).
//
// - Every backend call (encode, step, scoreBatch) runs in the worker, off the host's event loop, and
//   only one at a time, so serving never puts more than one caller on the native thread pool.
// - Calls queue on the main thread. Whenever the worker is idle the queue is flushed to it as one
//   batch (at most maxBatch operations / maxBatchCandidates candidates; a flush is scheduled on a
//   microtask, so calls made in the same tick share a batch and an idle Ranker adds no latency).
//   While a batch runs, new calls accumulate and form the next batch. Answers come back in order.
// - The worker keeps a per-user state cache (LRU bounded by bytes). `observe` costs one `step`.
// - Validation happens here, before anything is queued: malformed requests never reach the worker.
// - close() rejects what is pending and stops the worker; a worker crash rejects everything pending,
//   marks the Ranker failed (`ranker.error`, `onError`) and later calls reject at once.
import * as fs from 'fs';
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { Interaction } from './backend';
import { exactFeatureSet, packedBuffers, type ExactFeatures } from './packed';
import type { FromWorker, MissingStatePolicy, Op, OpResult, WorkerInit, WorkerReady, WorkerStats } from './protocol';
import type { UserKey } from './state-cache';
import { decodeState, encodeState } from './state-codec';
import {
  resolveLimits,
  validateHistory,
  validateInteraction,
  packScoreRequest,
  validateUser,
  type PackedScoreRequest,
  type ScoreRequest,
  type ServingLimits,
} from './validate';

export interface RankerOptions {
  /**
   * Module exporting `createBackend: BackendFactory` (a file path, absolute or relative to the
   * working directory, or a package name). Default: the QGS backend, `dist/qgs/backend.js`.
   */
  backendModule?: string;
  /** Passed to createBackend as `opts` (must be structured-cloneable). */
  backendOptions?: Record<string, unknown>;
  /** Bound of the user-state cache in bytes (default 256 MiB). */
  cacheBytes?: number;
  /** Most operations sent to the worker in one batch (default 64). */
  maxBatch?: number;
  /** Most candidates in one batch's scoreBatch call (default 65536; a larger single request still goes alone). */
  maxBatchCandidates?: number;
  /** Most operations waiting on the main thread; beyond it calls reject with ERR_QGS_OVERLOADED (default 10000). */
  maxQueue?: number;
  /** Request size limits (defaults: DEFAULT_LIMITS). */
  limits?: Partial<ServingLimits>;
  /**
   * What `score({ user })` without history and `observe(user)` do when the user has no cached state:
   * 'empty' (default) starts from the backend's empty state (counted as a cache miss); 'reject'
   * fails the call, so a service can fall back to fetching the history or an exported state.
   */
  onMissingState?: MissingStatePolicy;
  /**
   * If a batch takes longer than this (ms), the worker is treated as hung: it is terminated and the
   * Ranker fails like on a crash (ERR_QGS_WORKER_CRASHED). Default 0 = no limit.
   */
  batchTimeoutMs?: number;
  /** Let the backend warm up (JIT, first-touch allocations) before load resolves (default true). */
  warmup?: boolean;
  /** Called once if the worker dies unexpectedly (the Ranker is then unusable). */
  onError?: (err: Error) => void;
}

export type RankerErrorCode =
  | 'ERR_QGS_INVALID_REQUEST'
  | 'ERR_QGS_BACKEND'
  | 'ERR_QGS_RANKER_CLOSED'
  | 'ERR_QGS_WORKER_CRASHED'
  | 'ERR_QGS_OVERLOADED'
  | 'ERR_QGS_LOAD';

/** Errors from the Ranker carry a `code`; validation errors are ValidationErrors with a `path`. */
export function rankerError(message: string, code: RankerErrorCode): Error & { code: RankerErrorCode } {
  const e = new Error(message) as Error & { code: RankerErrorCode };
  e.code = code;
  return e;
}

export interface RankerStats extends WorkerStats {
  /** Operations waiting on the main thread now. */
  queued: number;
  /** Operations in the batch the worker is processing now (excluding this stats call). */
  inFlight: number;
  /** Batches and operations sent to the worker so far, and the largest batch. */
  batchesSent: number;
  opsSent: number;
  maxBatchSent: number;
}

const DEFAULTS = { cacheBytes: 256 * 1024 * 1024, maxBatch: 64, maxBatchCandidates: 65536, maxQueue: 10_000 };

interface Pending {
  op: Op;
  what: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  transfer?: ArrayBuffer[];
}

function positiveInt(v: unknown, name: string, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw rankerError(`Ranker.load: ${name}: expected an integer >= ${min}, got ${String(v)}`, 'ERR_QGS_LOAD');
  }
  return v;
}

/** Where the default (QGS) backend module is looked for, first existing wins. */
export function defaultBackendCandidates(): string[] {
  const here = __dirname; // dist/qgs/serving (compiled) or src/qgs/serving (sources)
  const out = [path.resolve(here, '..', 'backend.js')];
  if (__filename.endsWith('.ts')) {
    out.push(path.resolve(here, '..', 'backend.ts'));
    out.push(path.resolve(here, '..', '..', '..', 'dist', 'qgs', 'backend.js'));
  }
  return out;
}

/** Resolves the backend module option to a file path, with a clear error when it is missing. */
export function resolveBackendModule(spec: string | undefined): string {
  if (spec === undefined) {
    const c = defaultBackendCandidates();
    const found = c.find((f) => fs.existsSync(f));
    if (found === undefined) {
      throw rankerError(
        `Ranker.load: no backendModule given and the default QGS backend is missing (looked for ${c.join(', ')}). ` +
          `Build it (npm run build:ts) or pass { backendModule: '/path/to/module.js' } exporting createBackend(checkpointDir, opts).`,
        'ERR_QGS_LOAD',
      );
    }
    return found;
  }
  if (typeof spec !== 'string' || spec.length === 0) {
    throw rankerError(`Ranker.load: backendModule: expected a module path or package name, got ${String(spec)}`, 'ERR_QGS_LOAD');
  }
  const pathLike = spec.startsWith('.') || path.isAbsolute(spec) || spec.includes(path.sep) || /\.[cm]?[jt]s$/.test(spec);
  if (pathLike) {
    const f = path.resolve(spec);
    if (!fs.existsSync(f)) throw rankerError(`Ranker.load: backendModule: file not found: ${f}`, 'ERR_QGS_LOAD');
    return f;
  }
  try {
    return require.resolve(spec, { paths: [process.cwd(), __dirname] });
  } catch {
    throw rankerError(`Ranker.load: backendModule: cannot resolve module ${JSON.stringify(spec)} from ${process.cwd()}`, 'ERR_QGS_LOAD');
  }
}

/**
 * How to start the worker: the compiled worker.js next to this file, or (when running from the
 * TypeScript sources, e.g. under jest) worker.ts through a small @swc/core require hook.
 */
function startWorker(init: WorkerInit): Worker {
  const js = path.join(__dirname, 'worker.js');
  if (fs.existsSync(js) && !__filename.endsWith('.ts')) return new Worker(js, { workerData: init });
  const ts = path.join(__dirname, 'worker.ts');
  if (!fs.existsSync(ts)) throw rankerError(`Ranker.load: serving worker script not found next to ${__filename}`, 'ERR_QGS_LOAD');
  let swc: string;
  try {
    swc = require.resolve('@swc/core', { paths: [__dirname] });
  } catch {
    throw rankerError('Ranker.load: running from TypeScript sources needs @swc/core to start the worker; build with `npm run build:ts`', 'ERR_QGS_LOAD');
  }
  const boot = `
const fs = require('fs');
const swc = require(${JSON.stringify(swc)});
require.extensions['.ts'] = function (m, filename) {
  const out = swc.transformSync(fs.readFileSync(filename, 'utf8'), {
    filename, sourceMaps: 'inline',
    jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
    module: { type: 'commonjs' },
  });
  m._compile(out.code, filename);
};
require(${JSON.stringify(ts)});
`;
  return new Worker(boot, { eval: true, workerData: init });
}

/**
 * Starts the native CPU pool's idle threads spinning as a batch goes to the worker, so that their
 * futex wake-up overlaps the worker's own (the message hop) instead of delaying the backend's first
 * parallel region: between sequential requests the threads have gone to sleep. The pool is one per
 * process, shared with the worker. Best effort: without the addon (a pure-JS backend) it does nothing.
 */
function wakeCpuPool(): void {
  if (poolWake === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const binding = (require('../../native') as typeof import('../../native')).native();
      poolWake = () => binding.poolWake();
    } catch {
      poolWake = null;
    }
  }
  poolWake?.();
}
let poolWake: (() => void) | null | undefined;

export class Ranker {
  /** Floats per user state (from the backend). */
  readonly stateSize: number;
  /** The backend's state tag (model identity for exported states), if it has one. */
  readonly stateTag: string | undefined;
  /** The backend module file in use. */
  readonly backendModule: string;
  readonly limits: Readonly<ServingLimits>;

  private readonly worker: Worker;
  /** The backend's exact features (packed exactly beside float32), or null. */
  private readonly exact: ExactFeatures | null;
  private readonly maxBatch: number;
  private readonly maxBatchCandidates: number;
  private readonly maxQueue: number;
  private readonly onError: ((err: Error) => void) | undefined;
  private readonly batchTimeoutMs: number;
  private batchTimer: NodeJS.Timeout | null = null;
  private queue: Pending[] = [];
  private inflight: { id: number; items: Pending[] } | null = null;
  private flushScheduled = false;
  private nextId = 1;
  private failure: Error | null = null;
  private closing: Promise<void> | null = null;
  private readonly counters = { batchesSent: 0, opsSent: 0, maxBatchSent: 0 };

  private constructor(
    worker: Worker,
    ready: WorkerReady,
    backendModule: string,
    limits: ServingLimits,
    o: { maxBatch: number; maxBatchCandidates: number; maxQueue: number; batchTimeoutMs: number; onError?: (err: Error) => void },
  ) {
    this.worker = worker;
    this.stateSize = ready.stateSize;
    this.stateTag = ready.stateTag;
    this.exact = exactFeatureSet(ready.exactFeatures);
    this.backendModule = backendModule;
    this.limits = Object.freeze({ ...limits });
    this.maxBatch = o.maxBatch;
    this.maxBatchCandidates = o.maxBatchCandidates;
    this.maxQueue = o.maxQueue;
    this.onError = o.onError;
    this.batchTimeoutMs = o.batchTimeoutMs;
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (e: Error) => this.fail(rankerError(`Ranker: the serving worker crashed: ${e.message}`, 'ERR_QGS_WORKER_CRASHED')));
    worker.on('exit', (code: number) => {
      if (this.closing === null) this.fail(rankerError(`Ranker: the serving worker exited unexpectedly (exit code ${code})`, 'ERR_QGS_WORKER_CRASHED'));
    });
    worker.on('messageerror', (e: Error) => this.fail(rankerError(`Ranker: a message from the serving worker could not be read: ${e.message}`, 'ERR_QGS_WORKER_CRASHED')));
    worker.unref(); // an idle Ranker does not keep the process alive; pending work does (see flush)
  }

  /**
   * Starts the serving worker, loads the backend module in it and builds the backend from
   * `checkpointDir`. Rejects with the backend's error if it cannot be built.
   */
  static async load(checkpointDir: string, opts: RankerOptions = {}): Promise<Ranker> {
    if (typeof checkpointDir !== 'string' || checkpointDir.length === 0) {
      throw rankerError(`Ranker.load: checkpointDir: expected a non-empty string, got ${String(checkpointDir)}`, 'ERR_QGS_LOAD');
    }
    if (typeof opts !== 'object' || opts === null) throw rankerError('Ranker.load: options: expected an object', 'ERR_QGS_LOAD');
    const cacheBytes = positiveInt(opts.cacheBytes, 'cacheBytes', DEFAULTS.cacheBytes, 0);
    const maxBatch = positiveInt(opts.maxBatch, 'maxBatch', DEFAULTS.maxBatch);
    const maxBatchCandidates = positiveInt(opts.maxBatchCandidates, 'maxBatchCandidates', DEFAULTS.maxBatchCandidates);
    const maxQueue = positiveInt(opts.maxQueue, 'maxQueue', DEFAULTS.maxQueue);
    const batchTimeoutMs = positiveInt(opts.batchTimeoutMs, 'batchTimeoutMs', 0, 0);
    const onMissingState = opts.onMissingState ?? 'empty';
    if (onMissingState !== 'empty' && onMissingState !== 'reject') {
      throw rankerError(`Ranker.load: onMissingState: expected 'empty' or 'reject', got ${String(onMissingState)}`, 'ERR_QGS_LOAD');
    }
    if (opts.onError !== undefined && typeof opts.onError !== 'function') throw rankerError('Ranker.load: onError: expected a function', 'ERR_QGS_LOAD');
    if (opts.warmup !== undefined && typeof opts.warmup !== 'boolean') throw rankerError(`Ranker.load: warmup: expected a boolean, got ${typeof opts.warmup}`, 'ERR_QGS_LOAD');
    let limits: ServingLimits;
    try {
      limits = resolveLimits(opts.limits, 'limits');
    } catch (e) {
      throw rankerError(`Ranker.load: ${(e as Error).message}`, 'ERR_QGS_LOAD');
    }
    const backendModule = resolveBackendModule(opts.backendModule);
    const backendOptions = opts.backendOptions ?? {};
    if (typeof backendOptions !== 'object' || backendOptions === null) throw rankerError('Ranker.load: backendOptions: expected an object', 'ERR_QGS_LOAD');
    const init: WorkerInit = {
      marker: 'qgs-serving-worker',
      backendModule,
      checkpointDir: path.resolve(checkpointDir),
      backendOptions,
      cacheBytes,
      onMissingState,
      warmup: opts.warmup ?? true,
    };
    let worker: Worker;
    try {
      worker = startWorker(init);
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_QGS_LOAD') throw e;
      throw rankerError(`Ranker.load: cannot start the serving worker (backendOptions must be structured-cloneable): ${(e as Error).message}`, 'ERR_QGS_LOAD');
    }
    const ready = await new Promise<WorkerReady>((resolve, reject) => {
      const cleanup = () => {
        worker.off('message', onMsg);
        worker.off('error', onErr);
        worker.off('exit', onExit);
      };
      const ignoreLateErrors = () => worker.on('error', () => undefined); // an 'error' without a listener would throw
      const onMsg = (m: FromWorker) => {
        if (m.type === 'ready') {
          cleanup();
          resolve(m);
        } else if (m.type === 'initError') {
          cleanup();
          ignoreLateErrors();
          void worker.terminate();
          reject(rankerError(`Ranker.load: ${m.message}`, 'ERR_QGS_LOAD'));
        }
      };
      const onErr = (e: Error) => {
        cleanup();
        ignoreLateErrors();
        void worker.terminate();
        reject(rankerError(`Ranker.load: the serving worker failed while loading the backend: ${e.message}`, 'ERR_QGS_LOAD'));
      };
      const onExit = (code: number) => {
        cleanup();
        ignoreLateErrors();
        reject(rankerError(`Ranker.load: the serving worker exited while loading the backend (exit code ${code})`, 'ERR_QGS_LOAD'));
      };
      worker.on('message', onMsg);
      worker.on('error', onErr);
      worker.on('exit', onExit);
    });
    return new Ranker(worker, ready, backendModule, limits, { maxBatch, maxBatchCandidates, maxQueue, batchTimeoutMs, onError: opts.onError });
  }

  /** The error that made this Ranker unusable (worker crash), or null. */
  get error(): Error | null {
    return this.failure;
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.closing !== null;
  }

  /**
   * Scores `candidates` for `query` given the user's state; resolves to their scores in candidate
   * order. The state: `history` given → encoded from it (and cached under `user` if given);
   * else `user` given → the cached state (see onMissingState); else the empty state.
   */
  score(req: ScoreRequest): Promise<Float32Array> {
    let r: PackedScoreRequest;
    try {
      r = packScoreRequest(req, this.limits, this.exact);
    } catch (e) {
      return Promise.reject(this.invalid('Ranker.score', e));
    }
    const transfer = packedBuffers(r.candidates);
    if (r.history !== undefined) transfer.push(...packedBuffers(r.history));
    return this.enqueue<Float32Array>({ kind: 'score', user: r.user, history: r.history, query: r.query, candidates: r.candidates }, 'Ranker.score', transfer);
  }

  /**
   * Applies one new interaction (or several, oldest first) to the user's cached state: one `step`
   * each. Ordered with the other calls: a score queued after observe sees the updated state.
   */
  observe(user: UserKey, event: Interaction | readonly Interaction[]): Promise<void> {
    let u: UserKey;
    let events: Interaction[];
    try {
      u = validateUser(user, 'user', this.limits);
      events = Array.isArray(event) ? validateHistory(event, 'events', this.limits) : [validateInteraction(event, 'event', this.limits)];
    } catch (e) {
      return Promise.reject(this.invalid('Ranker.observe', e));
    }
    return this.enqueue<void>({ kind: 'observe', user: u, events }, 'Ranker.observe');
  }

  /** The user's cached state serialised (header + float32 payload), or null when none is cached. */
  async exportState(user: UserKey): Promise<Uint8Array | null> {
    let u: UserKey;
    try {
      u = validateUser(user, 'user', this.limits);
    } catch (e) {
      throw this.invalid('Ranker.exportState', e);
    }
    const s = await this.enqueue<Float32Array | null>({ kind: 'export', user: u }, 'Ranker.exportState');
    return s === null ? null : encodeState(s, this.stateTag);
  }

  /**
   * Caches a state produced by exportState (possibly by another replica). Rejects, before reaching
   * the worker, bytes from another format version, state size or model (tag), or corrupted bytes.
   */
  importState(user: UserKey, bytes: Uint8Array): Promise<void> {
    let u: UserKey;
    let s: Float32Array;
    try {
      u = validateUser(user, 'user', this.limits);
      s = decodeState(bytes, { stateSize: this.stateSize, tag: this.stateTag }, 'bytes');
    } catch (e) {
      return Promise.reject(this.invalid('Ranker.importState', e));
    }
    return this.enqueue<void>({ kind: 'import', user: u, state: s }, 'Ranker.importState', [s.buffer as ArrayBuffer]);
  }

  /** Drops the user's cached state; resolves to whether one was cached. */
  forget(user: UserKey): Promise<boolean> {
    let u: UserKey;
    try {
      u = validateUser(user, 'user', this.limits);
    } catch (e) {
      return Promise.reject(this.invalid('Ranker.forget', e));
    }
    return this.enqueue<boolean>({ kind: 'forget', user: u }, 'Ranker.forget');
  }

  /** Cache and batching statistics, taken after every call queued before this one. */
  async stats(): Promise<RankerStats> {
    const w = await this.enqueue<WorkerStats>({ kind: 'stats' }, 'Ranker.stats');
    return {
      ...w,
      queued: this.queue.length,
      inFlight: this.inflight === null ? 0 : this.inflight.items.length,
      ...this.counters,
    };
  }

  /**
   * Stops the worker (disposing the backend). Calls still queued or in flight reject with
   * ERR_QGS_RANKER_CLOSED; later calls reject at once. Idempotent.
   */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    const err = rankerError('Ranker closed: the call was still pending when close() was called', 'ERR_QGS_RANKER_CLOSED');
    this.closing = this.shutdown(err);
    return this.closing;
  }

  private async shutdown(err: Error): Promise<void> {
    this.rejectAll(err);
    if (this.failure !== null) {
      await this.worker.terminate();
      return;
    }
    let disposeError: string | undefined;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000); // a backend stuck in a long call: terminate anyway
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.worker.on('message', (m: FromWorker) => {
        if (m.type === 'closed') {
          disposeError = m.disposeError;
          done();
        }
      });
      this.worker.once('exit', done);
      this.worker.ref();
      try {
        this.worker.postMessage({ type: 'close' });
      } catch {
        done();
      }
    });
    await this.worker.terminate();
    if (disposeError !== undefined) throw rankerError(`Ranker.close: backend.dispose() failed: ${disposeError}`, 'ERR_QGS_BACKEND');
  }

  private invalid(what: string, e: unknown): Error {
    const err = e instanceof Error ? e : new Error(String(e));
    err.message = `${what}: ${err.message}`;
    (err as Error & { code?: string }).code = 'ERR_QGS_INVALID_REQUEST';
    return err;
  }

  private enqueue<T>(op: Op, what: string, transfer?: ArrayBuffer[]): Promise<T> {
    if (this.failure !== null) return Promise.reject(rankerError(`${what}: the Ranker is unusable: ${this.failure.message}`, 'ERR_QGS_WORKER_CRASHED'));
    if (this.closing !== null) return Promise.reject(rankerError(`${what}: the Ranker is closed`, 'ERR_QGS_RANKER_CLOSED'));
    if (this.queue.length >= this.maxQueue) {
      return Promise.reject(rankerError(`${what}: overloaded: ${this.queue.length} calls already queued (maxQueue)`, 'ERR_QGS_OVERLOADED'));
    }
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, what, resolve: resolve as (v: unknown) => void, reject, transfer });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.inflight !== null || this.flushScheduled || this.queue.length === 0) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.inflight !== null || this.queue.length === 0 || this.failure !== null || this.closing !== null) return;
    let n = 0;
    let cands = 0;
    while (n < this.queue.length && n < this.maxBatch) {
      const op = this.queue[n].op;
      if (op.kind === 'score') {
        const len = op.candidates.items.length;
        if (n > 0 && cands + len > this.maxBatchCandidates) break;
        cands += len;
      }
      n++;
    }
    const items = this.queue.splice(0, n);
    const id = this.nextId++;
    const transfer: ArrayBuffer[] = [];
    for (const it of items) if (it.transfer) transfer.push(...it.transfer);
    this.inflight = { id, items };
    this.counters.batchesSent++;
    this.counters.opsSent += items.length;
    this.counters.maxBatchSent = Math.max(this.counters.maxBatchSent, items.length);
    this.worker.ref();
    if (this.batchTimeoutMs > 0) {
      const ms = this.batchTimeoutMs;
      this.batchTimer = setTimeout(() => {
        this.batchTimer = null;
        if (this.inflight !== null && this.inflight.id === id) {
          this.fail(rankerError(`Ranker: the serving worker did not answer a batch of ${items.length} calls within batchTimeoutMs = ${ms} ms; it was terminated`, 'ERR_QGS_WORKER_CRASHED'));
        }
      }, ms);
    }
    try {
      wakeCpuPool();
      this.worker.postMessage({ type: 'batch', id, ops: items.map((it) => it.op) }, transfer);
    } catch (e) {
      // Not cloneable (validation makes this unlikely): fail this batch only.
      this.inflight = null;
      this.clearBatchTimer();
      for (const it of items) it.reject(rankerError(`${it.what}: cannot send the request to the worker: ${(e as Error).message}`, 'ERR_QGS_INVALID_REQUEST'));
      this.afterBatch();
    }
  }

  private afterBatch(): void {
    if (this.queue.length > 0) this.flush();
    else if (this.inflight === null) this.worker.unref();
  }

  private onMessage(m: FromWorker): void {
    if (m.type !== 'result') return;
    const b = this.inflight;
    if (b === null || b.id !== m.id) return; // answered after close(): already rejected
    this.inflight = null;
    this.clearBatchTimer();
    const results: OpResult[] = m.results;
    b.items.forEach((it, i) => {
      const r = results[i];
      if (r === undefined) it.reject(rankerError(`${it.what}: the worker returned no result`, 'ERR_QGS_BACKEND'));
      else if (r.ok) it.resolve(r.value);
      else it.reject(rankerError(`${it.what}: ${r.message}`, 'ERR_QGS_BACKEND'));
    });
    this.afterBatch();
  }

  private clearBatchTimer(): void {
    if (this.batchTimer !== null) {
      clearTimeout(this.batchTimer);
      this.batchTimer = null;
    }
  }

  private rejectAll(err: Error): void {
    this.clearBatchTimer();
    const items = [...(this.inflight?.items ?? []), ...this.queue];
    this.inflight = null;
    this.queue = [];
    for (const it of items) {
      const e = new Error(`${it.what}: ${err.message}`) as Error & { code?: string };
      e.code = (err as Error & { code?: string }).code;
      it.reject(e);
    }
  }

  private fail(err: Error): void {
    if (this.failure !== null || this.closing !== null) return;
    this.failure = err;
    this.rejectAll(err);
    void this.worker.terminate();
    if (this.onError !== undefined) {
      try {
        this.onError(err);
      } catch {
        // a throwing onError must not turn into an unhandled exception here
      }
    }
  }
}
