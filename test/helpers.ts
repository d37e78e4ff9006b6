// Shared test utilities: fresh random inputs (seed printed on failure), float64 references,
// relative-error checks and gradient checks against central finite differences.
import { Tensor, tensor, Random } from '../src';
import type { Module } from '../src/nn/module';
import type { CliIO } from '../src/cli/io';

/** A fresh seed per call (override with QGS_TEST_SEED to reproduce a failure). */
export function freshSeed(): number {
  const env = process.env.QGS_TEST_SEED;
  return env !== undefined ? Number(env) : (Math.random() * 2 ** 31) | 0;
}

export function randomArray(rng: Random, n: number, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

/** A float32 tensor holding (rounded) values of a float64 array. */
export function tensorFrom(values: ArrayLike<number>, shape: readonly number[], requiresGrad = false): Tensor {
  return tensor(Float32Array.from(values), shape, { requiresGrad });
}

/** The float32-rounded values as float64 (what the kernel actually sees). */
export function asF64(t: Tensor): Float64Array {
  return Float64Array.from(t.toFloat32Array());
}

/** Root mean square of x (0 for an empty array). */
export function rms(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return x.length > 0 ? Math.sqrt(s / x.length) : 0;
}

/** ||out − ref|| / max(||ref||, floor · sqrt(n)); floor 0 gives the plain relative error. */
export function relError(out: ArrayLike<number>, ref: ArrayLike<number>, floor = 0): number {
  if (out.length !== ref.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(out[i])) return Infinity;
    const d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (num === 0) return 0;
  return Math.sqrt(num) / Math.max(Math.sqrt(den), floor * Math.sqrt(ref.length), 1e-30);
}

/** Fails with the relative error, the tolerance and the seed. */
export function expectClose(out: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what = '', seed?: number): void {
  const e = relError(out, ref);
  if (!(e < tol)) {
    throw new Error(`${what}: relative error ${e.toExponential(3)} >= ${tol} (n=${ref.length}${seed !== undefined ? `, seed ${seed}` : ''})`);
  }
}

/**
 * Like expectClose, but the error is relative to max(||ref||, floor · sqrt(n)): for values whose
 * natural scale is known (parameters ~1, Adam moments ~0.1) and that can land near 0 by chance — a
 * single parameter at 0.003 after five steps failed a 1e-5 relative check with a 1e-7 error.
 */
export function expectCloseFloor(out: ArrayLike<number>, ref: ArrayLike<number>, tol: number, floor: number, what = '', seed?: number): void {
  const e = relError(out, ref, floor);
  if (!(e < tol)) {
    throw new Error(`${what}: error ${e.toExponential(3)} (relative to max(||ref||, ${floor}·sqrt(n))) >= ${tol} (n=${ref.length}${seed !== undefined ? `, seed ${seed}` : ''})`);
  }
}

/**
 * A scalar that is a sum of O(1) terms which can cancel (a policy loss with mean-zero advantages):
 * |got − ref| < tol · (1 + |ref|). A relative error is meaningless when the sum is near 0 (seed
 * 277152606 of the no-grad policy-loss test: loss 3.2e-4, error 3.9e-8, relative 1.2e-4).
 */
export function expectScalarClose(got: number, ref: number, tol: number, what = '', seed?: number): void {
  if (!(Math.abs(got - ref) < tol * (1 + Math.abs(ref)))) {
    throw new Error(`${what}: ${got} vs reference ${ref}: |difference| ${Math.abs(got - ref).toExponential(3)} >= ${tol} x (1 + |reference|)${seed !== undefined ? ` (seed ${seed})` : ''}`);
  }
}

export interface GradCheckOptions {
  /** Float64 reference of the op: inputs (as float64) -> flat output. */
  ref: (inputs: Float64Array[]) => ArrayLike<number>;
  /** The op under test on tensors (inputs require grad). */
  op: (inputs: Tensor[]) => Tensor;
  /** Input values (float64; rounded to float32 for the op). */
  inputs: Float64Array[];
  shapes: (readonly number[])[];
  /** Which inputs to check (default all). */
  check?: number[];
  /** Finite-difference step on the float64 reference. */
  h?: number;
  tol?: number;
  /**
   * Absolute floor for the gradient check: a gradient also passes when its largest absolute error is
   * below atol. Only for ops whose true gradient can be exactly zero (relative error is undefined) or
   * far below the finite differences' precision (saturated softmax rows).
   */
  atol?: number;
  /**
   * Natural scale of the outputs for the forward check: the error is taken relative to
   * max(||ref||, floor·sqrt(n)) (expectCloseFloor) instead of ||ref||, for outputs that are
   * differences of larger terms and can cancel to ~0 (a single-element loss).
   */
  floor?: number;
  /** Check at most this many coordinates per input (random subset). */
  maxCoords?: number;
  seed?: number;
  what?: string;
}

/**
 * Checks the op's forward against the float64 reference and its backward against central finite
 * differences of the reference, contracted with a random cotangent G: d<ref(x), G>/dx_i.
 */
export function gradCheck(o: GradCheckOptions): void {
  const seed = o.seed ?? freshSeed();
  const rng = new Random(seed ^ 0x1234);
  const what = o.what ?? 'gradCheck';
  const x32 = o.inputs.map((v) => Float64Array.from(Float32Array.from(v)));
  const ts = x32.map((v, i) => tensorFrom(v, o.shapes[i], true));
  const y = o.op(ts);
  const yRef = o.ref(x32);
  if (o.floor !== undefined) expectCloseFloor(y.toFloat32Array(), yRef, o.tol ?? 1e-4, o.floor, `${what} forward`, seed);
  else expectClose(y.toFloat32Array(), yRef, o.tol ?? 1e-4, `${what} forward`, seed);
  const G = randomArray(rng, y.size);
  const cotangent = tensorFrom(G, y.shape);
  y.backward(cotangent);
  cotangent.dispose();
  const h = o.h ?? 1e-5;
  const which = o.check ?? ts.map((_, i) => i);
  for (const k of which) {
    const g = ts[k].grad;
    if (g === null) throw new Error(`${what}: input ${k} got no gradient (seed ${seed})`);
    const got = g.toFloat32Array();
    const n = x32[k].length;
    const coords: number[] = [];
    const max = o.maxCoords ?? 64;
    if (n <= max) for (let i = 0; i < n; i++) coords.push(i);
    else for (let i = 0; i < max; i++) coords.push(rng.int(n));
    const num = new Float64Array(coords.length);
    const ana = new Float64Array(coords.length);
    coords.forEach((i, j) => {
      const xp = x32.map((v) => Float64Array.from(v));
      const xm = x32.map((v) => Float64Array.from(v));
      xp[k][i] += h;
      xm[k][i] -= h;
      const fp = o.ref(xp);
      const fm = o.ref(xm);
      let d = 0;
      for (let t = 0; t < G.length; t++) d += (fp[t] - fm[t]) * G[t];
      num[j] = d / (2 * h);
      ana[j] = got[i];
    });
    let maxAbs = 0;
    for (let j = 0; j < ana.length; j++) maxAbs = Math.max(maxAbs, Math.abs(ana[j] - num[j]));
    if (!(o.atol !== undefined && maxAbs < o.atol)) expectClose(ana, num, o.tol ?? 1e-3, `${what} grad of input ${k}`, seed);
  }
  for (const t of ts) t.dispose();
  y.dispose();
}

/** Runs fn and returns the error message it throws (fails if it does not throw). */
export function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error, none was thrown');
}

/** erf in float64 (series; |x| > 6 saturates). */
export function erf(x: number): number {
  if (Math.abs(x) > 6) return Math.sign(x);
  let sum = 0;
  let term = x;
  for (let n = 0; n < 200; n++) {
    const t = term / (2 * n + 1);
    sum += t;
    if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
/** erfc(z) for z >= 0: 1 − erf below 3, else the continued fraction (1 − erf cancels in the tail). */
export function erfc(z: number): number {
  if (z < 3) return 1 - erf(z);
  let k = z;
  for (let n = 60; n >= 1; n--) k = z + n / 2 / k;
  return Math.exp(-z * z) / (Math.sqrt(Math.PI) * k);
}
/** Exact GELU, accurate in the negative tail (where 0.5·v·(1 + erf) would cancel). */
export const gelu = (v: number): number => (v >= 0 ? 0.5 * v * (1 + erf(v / Math.SQRT2)) : 0.5 * v * erfc(-v / Math.SQRT2));

/**
 * Fresh random parameters for a module: N(0, 0.4²) everywhere, LayerNorm weights around 1 and
 * decay logits in [1, ∞) (γ = sigmoid > 0.73), so biases and affine parameters are non-trivial and a
 * swapped argument shows in a comparison.
 */
export function randomizeParameters(m: Module, rng: Random): void {
  const state = new Map<string, Tensor>();
  for (const [name, p] of m.namedParameters()) {
    const v = Float32Array.from(randomArray(rng, p.size, 0.4));
    if (/Norm\.weight$/.test(name)) for (let i = 0; i < v.length; i++) v[i] += 1;
    if (name.endsWith('decayLogit')) for (let i = 0; i < v.length; i++) v[i] = 1 + 2 * Math.abs(v[i]);
    state.set(name, tensor(v, p.shape));
  }
  m.loadStateDict(state);
  for (const t of state.values()) t.dispose();
}

/** A CLI output sink that keeps what a command printed (for runCli in tests). */
export function captureIO(): CliIO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => void stdout.push(t), err: (t) => void stderr.push(t) };
}
