// Tensor: shape, dtype, device and a reference-counted native storage. Memory is released
// deterministically: t.dispose(), scope(fn) (frees every tensor created inside except the returned
// ones), or `using t = ...` (Symbol.dispose). Views (reshape) share storage; the bytes go when the
// last tensor over them is disposed.
import { native, type Device, type DType, type NativeStorage, backendInfo } from './native';
import type { GradNode } from './autograd';
import { runBackward } from './autograd';

export type { Device, DType } from './native';
export type Shape = readonly number[];

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

/** Nested number arrays accepted by tensor(). */
/**
 * Row-sparse gradient of an embedding table: `values[r]` is the gradient of row `rows[r]`.
 * Sparse optimisers update only those rows (DESIGN.md §2, issue: sparse embedding gradients).
 */
export interface SparseRowGrad {
  /** i32 [R], unique row ids. */
  rows: Tensor;
  /** f32 [R, ...rowShape]. */
  values: Tensor;
}

export type NestedArray = number | readonly NestedArray[];
export type TensorData = Float32Array | Int32Array | readonly number[] | NestedArray;

/**
 * Reuse of small freed storages. Every native storage is an N-API wrapped object with a weak
 * handle and a finalizer, so each one V8 collects costs ~0.5 µs of a young-generation GC: a cached
 * 1,000-candidate score created ~30 of them and every ~230 requests a 3-5 ms scavenge stopped the
 * serving worker (its p99). Freed storages up to 256 KiB wait here for the next allocation of the
 * same device and size instead (training steps and requests repeat their shapes), which also skips
 * the native allocation. A storage reached by a zero-copy data() view is never reused (the view
 * would see new contents). Bounded: POOL_PER_SIZE a size, QGS_STORAGE_POOL_MB in all (default 64;
 * 0 turns reuse off, e.g. to make a use of a disposed tensor's storage fail loudly).
 */
const POOL_MAX_STORAGE_BYTES = 256 * 1024;
const POOL_PER_SIZE = 128;
class StoragePool {
  private readonly free = new Map<number, NativeStorage[]>();
  count = 0;
  bytes = 0;
  private limit: number | null = null;

  private maxBytes(): number {
    if (this.limit === null) {
      // As the native QGS_* variables: unset → the default; malformed → a warning and the default.
      const env = process.env.QGS_STORAGE_POOL_MB;
      let mb = 64;
      if (env !== undefined && env !== '') {
        const v = Number(env);
        if (Number.isInteger(v) && v >= 0 && v <= 2 ** 20) mb = v;
        else process.stderr.write(`qgs-engine: QGS_STORAGE_POOL_MB: expected a whole number in [0, 1048576], got '${env}'; using 64\n`);
      }
      this.limit = mb * 2 ** 20;
    }
    return this.limit;
  }

  private static key(bytes: number, device: Device): number {
    return bytes * 2 + (device === 'cuda' ? 1 : 0);
  }

  take(bytes: number, device: Device): NativeStorage | undefined {
    if (this.count === 0) return undefined;
    const list = this.free.get(StoragePool.key(bytes, device));
    const s = list?.pop();
    if (s !== undefined) {
      this.count--;
      this.bytes -= bytes;
    }
    return s;
  }

  /** Keeps a freed storage for reuse; false when it must be disposed instead. */
  give(s: NativeStorage, bytes: number, device: Device): boolean {
    if (bytes > POOL_MAX_STORAGE_BYTES || this.bytes + bytes > this.maxBytes()) return false;
    const k = StoragePool.key(bytes, device);
    let list = this.free.get(k);
    if (list === undefined) this.free.set(k, (list = []));
    if (list.length >= POOL_PER_SIZE) return false;
    list.push(s);
    this.count++;
    this.bytes += bytes;
    return true;
  }

  /** Disposes every pooled storage; returns the bytes released. */
  clear(): number {
    const n = this.bytes;
    for (const list of this.free.values()) for (const s of list) s.dispose();
    this.free.clear();
    this.count = 0;
    this.bytes = 0;
    return n;
  }
}
const pool = new StoragePool();

class StorageHandle {
  refs = 1;
  /** A zero-copy host view exists: the bytes must not be handed to another tensor. */
  viewed = false;
  constructor(readonly storage: NativeStorage, readonly bytes: number, readonly device: Device) {}
  release(): void {
    if (--this.refs !== 0) return;
    if (this.viewed || !pool.give(this.storage, this.bytes, this.device)) this.storage.dispose();
  }
}

const scopeStack: Set<Tensor>[] = [];
let nextId = 1;

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

function checkShape(shape: Shape, what: string): void {
  if (!Array.isArray(shape)) throw new TypeError(`${what}: expected a shape (array of integers), got ${typeof shape}`);
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      throw new RangeError(`${what}: expected non-negative integer dimensions, got ${formatShape(shape)} (dim ${i} = ${String(d)})`);
    }
  }
}

function checkDevice(device: unknown, what: string): Device {
  if (device !== 'cpu' && device !== 'cuda') throw new TypeError(`${what}: device must be 'cpu' or 'cuda', got ${String(device)}`);
  if (device === 'cuda' && !backendInfo().cuda) {
    throw new Error(`${what}: device 'cuda' is not available: ${backendInfo().cudaReason}`);
  }
  return device;
}

function checkDType(dtype: unknown, what: string): DType {
  if (dtype !== 'f32' && dtype !== 'i32') throw new TypeError(`${what}: dtype must be 'f32' or 'i32', got ${String(dtype)}`);
  return dtype;
}

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly device: Device;
  /** Number of elements. */
  readonly size: number;
  readonly id: number;
  /** Whether gradients flow to (and accumulate in) this tensor. */
  requiresGrad = false;
  /** @internal autograd node that produced this tensor (null for leaves and no-grad results). */
  gradFn: GradNode | null = null;
  /** Row-sparse gradient (embedding tables with sparse gradients); null when none. */
  sparseGrad: SparseRowGrad | null = null;
  private handle: StorageHandle | null;
  private gradValue: Tensor | null = null;

  /** @internal Use tensor(), zeros(), ... or the ops; this wraps an existing storage handle. */
  constructor(handle: StorageHandle, shape: Shape, dtype: DType, device: Device) {
    this.handle = handle;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.device = device;
    this.size = shapeSize(shape);
    this.id = nextId++;
    const top = scopeStack[scopeStack.length - 1];
    if (top !== undefined) top.add(this);
  }

  get rank(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    return this.handle === null;
  }

  /** The native storage; throws a clear error after dispose. */
  get storage(): NativeStorage {
    if (this.handle === null) throw new Error(`tensor #${this.id} ${formatShape(this.shape)} has been disposed`);
    return this.handle.storage;
  }

  /** Accumulated gradient, or null. Assigning null drops (and frees) it. */
  get grad(): Tensor | null {
    return this.gradValue;
  }
  set grad(g: Tensor | null) {
    if (g !== null) {
      if (!(g instanceof Tensor)) throw new TypeError('grad: expected a Tensor or null');
      if (g.shape.length !== this.shape.length || g.shape.some((d, i) => d !== this.shape[i])) {
        throw new Error(`grad: expected shape ${formatShape(this.shape)}, got ${formatShape(g.shape)}`);
      }
      keep(g);
    }
    if (this.gradValue !== null && this.gradValue !== g) this.gradValue.dispose();
    this.gradValue = g;
  }

  /** Frees the storage (shared views keep it until they are disposed too) and the gradient. */
  dispose(): void {
    if (this.handle === null) return;
    this.handle.release();
    this.handle = null;
    this.gradFn = null;
    if (this.gradValue !== null) {
      this.gradValue.dispose();
      this.gradValue = null;
    }
    if (this.sparseGrad !== null) {
      this.sparseGrad.rows.dispose();
      this.sparseGrad.values.dispose();
      this.sparseGrad = null;
    }
    for (const frame of scopeStack) frame.delete(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** @internal A tensor of another shape over the same storage (same element count). */
  view(shape: Shape): Tensor {
    const h = this.handle;
    if (h === null) throw new Error(`tensor #${this.id} ${formatShape(this.shape)} has been disposed`);
    h.refs++;
    return new Tensor(h, shape, this.dtype, this.device);
  }

  /** Copy of the data as a Float32Array (any device; i32 values are converted). */
  toFloat32Array(): Float32Array {
    const out = new Float32Array(this.size);
    if (this.dtype === 'f32') {
      this.storage.copyToHost(out);
    } else {
      const tmp = new Int32Array(this.size);
      this.storage.copyToHost(tmp);
      for (let i = 0; i < tmp.length; i++) out[i] = tmp[i];
    }
    return out;
  }

  /** Copy of the data as an Int32Array (i32 tensors only). */
  toInt32Array(): Int32Array {
    if (this.dtype !== 'i32') throw new TypeError(`toInt32Array: tensor dtype is ${this.dtype}, expected i32`);
    const out = new Int32Array(this.size);
    this.storage.copyToHost(out);
    return out;
  }

  /** Zero-copy view of a cpu tensor's data; it keeps the bytes alive even after dispose(). */
  data(): Float32Array | Int32Array {
    if (this.device !== 'cpu') throw new Error(`data: tensor is on ${this.device}; use toFloat32Array() or .to('cpu')`);
    const ab = this.storage.hostView();
    (this.handle as StorageHandle).viewed = true;
    return this.dtype === 'f32' ? new Float32Array(ab, 0, this.size) : new Int32Array(ab, 0, this.size);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item: tensor has ${this.size} elements ${formatShape(this.shape)}, expected 1`);
    return this.toFloat32Array()[0];
  }

  /** Nested JS arrays (for printing and tests). */
  toArray(): NestedArray {
    const flat = Array.from(this.dtype === 'f32' ? this.toFloat32Array() : this.toInt32Array());
    if (this.shape.length === 0) return flat[0];
    const build = (dim: number, offset: number): NestedArray => {
      const n = this.shape[dim];
      if (dim === this.shape.length - 1) return flat.slice(offset, offset + n);
      const stride = shapeSize(this.shape.slice(dim + 1));
      const out: NestedArray[] = [];
      for (let i = 0; i < n; i++) out.push(build(dim + 1, offset + i * stride));
      return out;
    };
    return build(0, 0);
  }

  /** A copy on another device (the same tensor when already there). Not differentiable. */
  to(device: Device): Tensor {
    checkDevice(device, 'to');
    if (device === this.device) return this;
    const out = empty(this.shape, { dtype: this.dtype, device });
    out.storage.copyFrom(this.storage);
    return out;
  }

  /** Reverse-mode autodiff from this tensor; `grad` defaults to ones for a one-element tensor. */
  backward(grad?: Tensor): void {
    runBackward(this, grad);
  }

  toString(): string {
    return `Tensor(${formatShape(this.shape)}, ${this.dtype}, ${this.device}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

/** @internal An uninitialised tensor (contents undefined). */
export function empty(shape: Shape, opts: TensorOptions = {}): Tensor {
  checkShape(shape, 'shape');
  const dtype = checkDType(opts.dtype ?? 'f32', 'dtype');
  const device = checkDevice(opts.device ?? 'cpu', 'device');
  const bytes = shapeSize(shape) * 4;
  const storage = pool.take(bytes, device) ?? new (native().Storage)(bytes, device);
  const t = new Tensor(new StorageHandle(storage, bytes, device), shape, dtype, device);
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

export function full(shape: Shape, value: number, opts: TensorOptions = {}): Tensor {
  if (typeof value !== 'number') throw new TypeError(`full: value must be a number, got ${typeof value}`);
  const t = empty(shape, opts);
  t.storage.fill(value, t.dtype);
  return t;
}

export function zeros(shape: Shape, opts: TensorOptions = {}): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: Shape, opts: TensorOptions = {}): Tensor {
  return full(shape, 1, opts);
}

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let cur: NestedArray = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = (cur as readonly NestedArray[])[0];
    if (cur === undefined) break;
  }
  return shape;
}

function flatten(data: NestedArray, shape: readonly number[], out: number[], dim: number, what: string): void {
  if (dim === shape.length) {
    if (typeof data !== 'number') throw new TypeError(`${what}: expected a number at depth ${dim}, got ${typeof data}`);
    out.push(data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[dim]) {
    throw new Error(`${what}: ragged nested array: expected length ${shape[dim]} at depth ${dim}, got ${Array.isArray(data) ? data.length : typeof data}`);
  }
  for (const x of data as readonly NestedArray[]) flatten(x, shape, out, dim + 1, what);
}

/**
 * A tensor from a typed array, a flat array with a shape, or nested arrays.
 * `tensor([1, 2, 3, 4], [2, 2])`, `tensor([[1, 2], [3, 4]])`, `tensor(new Int32Array([0, 5]), [2], { dtype: 'i32' })`.
 */
export function tensor(data: TensorData, shape?: Shape, opts: TensorOptions = {}): Tensor {
  let flat: ArrayLike<number>;
  let shp: readonly number[];
  if (data instanceof Float32Array || data instanceof Int32Array || ArrayBuffer.isView(data)) {
    const v = data as Float32Array | Int32Array;
    flat = v;
    shp = shape ?? [v.length];
  } else if (typeof data === 'number') {
    flat = [data];
    shp = shape ?? [];
  } else if (Array.isArray(data)) {
    const inferred = inferShape(data as NestedArray);
    const out: number[] = [];
    flatten(data as NestedArray, inferred, out, 0, 'tensor');
    flat = out;
    shp = shape ?? inferred;
  } else {
    throw new TypeError(`tensor: data must be a Float32Array, Int32Array, number or (nested) number array, got ${typeof data}`);
  }
  checkShape(shp, 'tensor: shape');
  if (shapeSize(shp) !== flat.length) {
    throw new Error(`tensor: shape ${formatShape(shp)} needs ${shapeSize(shp)} elements, data has ${flat.length}`);
  }
  const dtype = checkDType(opts.dtype ?? (data instanceof Int32Array ? 'i32' : 'f32'), 'tensor: dtype');
  let host: Float32Array | Int32Array;
  if (dtype === 'f32') {
    host = flat instanceof Float32Array ? flat : Float32Array.from(flat);
  } else {
    for (let i = 0; i < flat.length; i++) {
      if (!Number.isInteger(flat[i])) throw new TypeError(`tensor: i32 data must be integers, got ${flat[i]} at ${i}`);
    }
    host = flat instanceof Int32Array ? flat : Int32Array.from(flat);
  }
  const t = empty(shp, { dtype, device: opts.device ?? 'cpu' });
  t.storage.copyFromHost(host);
  if (opts.requiresGrad) {
    if (dtype !== 'f32') throw new TypeError('tensor: requiresGrad needs dtype f32');
    t.requiresGrad = true;
  }
  return t;
}

// ---- seeded random numbers (xoshiro128**): reproducible across runs and platforms ----

export class Random {
  private s = new Uint32Array(4);
  constructor(seed: number) {
    // splitmix32 to fill the state from one seed
    let x = (seed >>> 0) ^ 0x9e3779b9;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }
  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    let u = this.uniform();
    while (u <= 0) u = this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

let globalRandom = new Random(0x5eed);

/** Reseeds the generator used by randn/rand when no seed is given. */
export function manualSeed(seed: number): void {
  globalRandom = new Random(seed);
}

export interface RandomOptions extends TensorOptions {
  seed?: number;
}

/** Normal(mean, std) samples; seeded when opts.seed is given, else from the global generator. */
export function randn(shape: Shape, opts: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  checkShape(shape, 'randn: shape');
  const rng = opts.seed === undefined ? globalRandom : new Random(opts.seed);
  const mean = opts.mean ?? 0;
  const std = opts.std ?? 1;
  const host = new Float32Array(shapeSize(shape));
  for (let i = 0; i < host.length; i++) host[i] = mean + std * rng.normal();
  return tensor(host, shape, { device: opts.device, requiresGrad: opts.requiresGrad });
}

/** Uniform [low, high) samples; seeded when opts.seed is given. */
export function rand(shape: Shape, opts: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  checkShape(shape, 'rand: shape');
  const rng = opts.seed === undefined ? globalRandom : new Random(opts.seed);
  const lo = opts.low ?? 0;
  const hi = opts.high ?? 1;
  const host = new Float32Array(shapeSize(shape));
  for (let i = 0; i < host.length; i++) host[i] = lo + (hi - lo) * rng.uniform();
  return tensor(host, shape, { device: opts.device, requiresGrad: opts.requiresGrad });
}

// ---- scopes ----

function collect(value: unknown, into: Set<Tensor>, seen: Set<unknown>): void {
  if (value instanceof Tensor) {
    into.add(value);
    return;
  }
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value)) {
    for (const v of value) collect(v, into, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, into, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value as Record<string, unknown>)) collect(v, into, seen);
  }
}

/**
 * Runs fn and disposes every tensor created inside it, except the tensors it returns (found in
 * arrays, Maps and plain objects) and those passed to keep(). Returned tensors move to the
 * enclosing scope. fn must be synchronous.
 */
export function scope<T>(fn: () => T): T {
  const frame = new Set<Tensor>();
  scopeStack.push(frame);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopeStack.pop();
    for (const t of frame) t.dispose();
    throw e;
  }
  scopeStack.pop();
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    for (const t of frame) t.dispose();
    throw new TypeError('scope: fn returned a Promise; scope() only tracks synchronous work');
  }
  const kept = new Set<Tensor>();
  collect(result, kept, new Set());
  const parent = scopeStack[scopeStack.length - 1];
  for (const t of frame) {
    if (kept.has(t)) {
      if (parent !== undefined) parent.add(t);
    } else {
      t.dispose();
    }
  }
  return result;
}

/** Removes t from every enclosing scope, so it lives until disposed explicitly. */
export function keep<T extends Tensor>(t: T): T {
  for (const frame of scopeStack) frame.delete(t);
  return t;
}

/** Live native storages and their bytes (for leak checks). */
export interface MemoryStats {
  /** Storages not yet disposed (tensors' storages; not the freed ones kept for reuse). */
  count: number;
  /** Bytes they hold. */
  bytes: number;
  /** Freed small storages (≤ 256 KiB each) kept for reuse by the next tensor of the same size (QGS_STORAGE_POOL_MB, default 64). */
  pooledBytes: number;
  /**
   * Freed host buffers of 64 KiB or more (lengths rounded to size classes) kept for reuse by the next
   * allocation of the same class, so training steps and ranking requests do not pay fresh page
   * faults for their temporaries. Bounded by QGS_HOST_CACHE_MB
   * (default 1024, 0 disables); `releaseCachedMemory()` returns them to the system.
   */
  cachedBytes: number;
  /**
   * Host bytes reported to V8 as external memory: live CPU bytes beyond a 256 MiB allowance, in
   * 8 MiB steps. (Reporting every transient byte made V8 run a full GC every few training steps.)
   */
  reportedBytes: number;
}

export function memoryStats(): MemoryStats {
  const s = native().liveStorage();
  return { count: s.count - pool.count, bytes: s.bytes - pool.bytes, pooledBytes: pool.bytes, cachedBytes: s.cachedBytes, reportedBytes: s.reportedBytes };
}

/**
 * Returns the freed storages kept for reuse (MemoryStats.pooledBytes) and the cached large host
 * buffers (MemoryStats.cachedBytes) to the system; the bytes released.
 */
export function releaseCachedMemory(): number {
  const pooled = pool.clear();
  return pooled + native().releaseCachedMemory();
}

export function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}
