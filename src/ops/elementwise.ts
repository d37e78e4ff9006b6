// Elementwise ops with numpy broadcasting (add, sub, mul, div, maximum, minimum, comparisons,
// where), scalar ops (addScalar, mulScalar, powScalar, clamp), unary activations and dropout.
// Each op validates its arguments (errors name op, argument, expected and actual), computes the
// broadcast strides, calls one native kernel and records its backward rule. Gradients of
// broadcast inputs are summed back to the input's shape (sumTo).
import { native } from '../native';
import { Tensor, empty, zeros, type Shape } from '../tensor';
import { record } from '../autograd';
import { checkTensor, checkNumber, sameDevice } from './validate';
import { sumTo, broadcastShapes, broadcastStrides } from './ew-util';

declare module '../native' {
  interface NativeBinding {
    /** out = a op b; shape = output shape, strides = element strides of a/b over it (0 = broadcast). dtype 0 f32, 1 i32. */
    ewBinary(op: number, dtype: number, out: NativeStorage, a: NativeStorage, b: NativeStorage, shape: number[], aStrides: number[], bStrides: number[]): void;
    /** Output-shaped partial gradients of mul/div/maximum/minimum (da or db may be null). */
    ewBinaryBackward(op: number, da: NativeStorage | null, db: NativeStorage | null, dy: NativeStorage, a: NativeStorage, b: NativeStorage, shape: number[], aStrides: number[], bStrides: number[]): void;
    ewWhere(out: NativeStorage, cond: NativeStorage, a: NativeStorage, b: NativeStorage, shape: number[], condStrides: number[], aStrides: number[], bStrides: number[]): void;
    ewUnary(op: number, out: NativeStorage, x: NativeStorage, n: number, p1: number, p2: number): void;
    ewUnaryBackward(op: number, dx: NativeStorage, dy: NativeStorage, x: NativeStorage | null, y: NativeStorage | null, n: number, p1: number, p2: number): void;
    /** out = keep(seed, i) ? x * 1/(1-p) : 0 (counter-based mask, identical on CPU and CUDA). */
    ewDropout(out: NativeStorage, x: NativeStorage, n: number, p: number, seed: number): void;
  }
}

// Op codes shared with native/include/qgs/elementwise.h.
enum BinOp {
  Add = 0,
  Sub = 1,
  Mul = 2,
  Div = 3,
  Max = 4,
  Min = 5,
  Greater = 6,
  Less = 7,
  Equal = 8,
}

enum UnOp {
  Neg = 0,
  Exp = 1,
  Log = 2,
  Sqrt = 3,
  Tanh = 4,
  Sigmoid = 5,
  Silu = 6,
  Relu = 7,
  Gelu = 8,
  Abs = 9,
  Square = 10,
  Affine = 11,
  Pow = 12,
  Clamp = 13,
}

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Sums a temporary gradient back to `shape`, disposing the temporary when a new tensor was made. */
function reduceGradTo(t: Tensor, shape: Shape): Tensor {
  if (sameShape(t.shape, shape)) return t;
  const r = sumTo(t, shape);
  t.dispose();
  return r;
}

/** The incoming gradient summed to `shape`: g itself when no reduction is needed (never disposes g,
 * which autograd owns and may hand to several inputs). */
function gradTo(g: Tensor, shape: Shape): Tensor {
  return sameShape(g.shape, shape) ? g : sumTo(g, shape);
}

function dtypeCode(t: Tensor): number {
  return t.dtype === 'f32' ? 0 : 1;
}

// ---- binary ops ----

const binaryNames = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'greater', 'less', 'equal'];

function rawBinary(op: BinOp, a: Tensor, b: Tensor, shape: Shape, outDtype: 'f32' | 'i32'): Tensor {
  const out = empty(shape, { dtype: outDtype, device: a.device });
  native().ewBinary(op, dtypeCode(a), out.storage, a.storage, b.storage, [...shape], broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape));
  return out;
}

function binary(op: BinOp, a: Tensor, b: Tensor): Tensor {
  const name = binaryNames[op];
  checkTensor(name, 'a', a);
  checkTensor(name, 'b', b);
  if (a.dtype !== b.dtype) throw new TypeError(`${name}: a and b must have the same dtype, got a ${a.dtype} and b ${b.dtype}`);
  const intOk = op === BinOp.Add || op === BinOp.Sub || op === BinOp.Mul || op === BinOp.Max || op === BinOp.Min;
  if (a.dtype === 'i32' && !intOk) throw new TypeError(`${name}: expected dtype f32 (i32 is supported by add, sub, mul, maximum, minimum), got i32`);
  sameDevice(name, { a, b });
  const shape = broadcastShapes(name, a.shape, b.shape);
  const isCmp = op === BinOp.Greater || op === BinOp.Less || op === BinOp.Equal;
  const out = rawBinary(op, a, b, shape, isCmp ? 'f32' : a.dtype);
  if (isCmp || a.dtype !== 'f32') return out;
  return record(name, out, [a, b], (g) => binaryBackward(op, a, b, g));
}

function binaryBackward(op: BinOp, a: Tensor, b: Tensor, g: Tensor): (Tensor | null)[] {
  const wa = a.requiresGrad;
  const wb = b.requiresGrad;
  switch (op) {
    case BinOp.Add:
      return [wa ? gradTo(g, a.shape) : null, wb ? gradTo(g, b.shape) : null];
    case BinOp.Sub:
      return [wa ? gradTo(g, a.shape) : null, wb ? reduceGradTo(neg(g), b.shape) : null];
    case BinOp.Mul:
      return [wa ? reduceGradTo(rawBinary(BinOp.Mul, g, b, g.shape, 'f32'), a.shape) : null, wb ? reduceGradTo(rawBinary(BinOp.Mul, g, a, g.shape, 'f32'), b.shape) : null];
    default: {
      // div: da = g / b (a broadcast op), db from the kernel; maximum/minimum: both from the kernel.
      const shape = g.shape;
      const da = wa && op === BinOp.Div ? rawBinary(BinOp.Div, g, b, shape, 'f32') : null;
      const daK = wa && op !== BinOp.Div ? empty(shape, { device: g.device }) : null;
      const dbK = wb ? empty(shape, { device: g.device }) : null;
      if (daK !== null || dbK !== null) {
        native().ewBinaryBackward(op, daK?.storage ?? null, dbK?.storage ?? null, g.storage, a.storage, b.storage, [...shape], broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape));
      }
      const daFull = da ?? daK;
      return [daFull !== null ? reduceGradTo(daFull, a.shape) : null, dbK !== null ? reduceGradTo(dbK, b.shape) : null];
    }
  }
}

/** a + b with numpy broadcasting (f32, i32). */
export function add(a: Tensor, b: Tensor): Tensor {
  return binary(BinOp.Add, a, b);
}
/** a - b with numpy broadcasting (f32, i32). */
export function sub(a: Tensor, b: Tensor): Tensor {
  return binary(BinOp.Sub, a, b);
}
/** a * b with numpy broadcasting (f32, i32; i32 wraps on overflow). */
export function mul(a: Tensor, b: Tensor): Tensor {
  return binary(BinOp.Mul, a, b);
}
/** a / b with numpy broadcasting (f32). */
export function div(a: Tensor, b: Tensor): Tensor {
  return binary(BinOp.Div, a, b);
}
/** Elementwise max (NaN-propagating); on ties the gradient is split evenly (torch semantics). */
export function maximum(a: Tensor, b: Tensor): Tensor {
  return binary(BinOp.Max, a, b);
}
/** Elementwise min (NaN-propagating); on ties the gradient is split evenly. */
export function minimum(a: Tensor, b: Tensor): Tensor {
  return binary(BinOp.Min, a, b);
}
/** 1 where a > b else 0 (f32, broadcasting, not differentiable). */
export function greater(a: Tensor, b: Tensor): Tensor {
  return binary(BinOp.Greater, a, b);
}
/** 1 where a < b else 0 (f32, broadcasting, not differentiable). */
export function less(a: Tensor, b: Tensor): Tensor {
  return binary(BinOp.Less, a, b);
}
/** 1 where a == b else 0 (f32, broadcasting, not differentiable). */
export function equal(a: Tensor, b: Tensor): Tensor {
  return binary(BinOp.Equal, a, b);
}

// ---- unary and scalar ops ----

const unaryNames = ['neg', 'exp', 'log', 'sqrt', 'tanh', 'sigmoid', 'silu', 'relu', 'gelu', 'abs', 'square', 'affine', 'powScalar', 'clamp'];
// Which forward tensor the backward kernel reads (see native/include/qgs/elementwise.h).
const readsY = new Set<UnOp>([UnOp.Exp, UnOp.Sqrt, UnOp.Tanh, UnOp.Sigmoid]);
const readsNothing = new Set<UnOp>([UnOp.Neg, UnOp.Affine]);

function unary(op: UnOp, x: Tensor, p1 = 0, p2 = 0, name = unaryNames[op]): Tensor {
  checkTensor(name, 'x', x, { dtype: 'f32' });
  const out = empty(x.shape, { device: x.device });
  native().ewUnary(op, out.storage, x.storage, x.size, p1, p2);
  return record(name, out, [x], (g) => {
    const dx = empty(x.shape, { device: g.device });
    const xs = readsY.has(op) || readsNothing.has(op) ? null : x.storage;
    const ys = readsY.has(op) ? out.storage : null;
    native().ewUnaryBackward(op, dx.storage, g.storage, xs, ys, x.size, p1, p2);
    return [dx];
  });
}

export function neg(x: Tensor): Tensor {
  return unary(UnOp.Neg, x);
}
export function exp(x: Tensor): Tensor {
  return unary(UnOp.Exp, x);
}
/** Natural log (log of a negative number is NaN, of 0 is -Infinity, as in IEEE arithmetic). */
export function log(x: Tensor): Tensor {
  return unary(UnOp.Log, x);
}
export function sqrt(x: Tensor): Tensor {
  return unary(UnOp.Sqrt, x);
}
export function tanh(x: Tensor): Tensor {
  return unary(UnOp.Tanh, x);
}
export function sigmoid(x: Tensor): Tensor {
  return unary(UnOp.Sigmoid, x);
}
/** x * sigmoid(x) (SiLU / swish). */
export function silu(x: Tensor): Tensor {
  return unary(UnOp.Silu, x);
}
export function relu(x: Tensor): Tensor {
  return unary(UnOp.Relu, x);
}
/** Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2))). */
export function gelu(x: Tensor): Tensor {
  return unary(UnOp.Gelu, x);
}
/** |x|; gradient sign(x) (0 at 0). */
export function abs(x: Tensor): Tensor {
  return unary(UnOp.Abs, x);
}
export function square(x: Tensor): Tensor {
  return unary(UnOp.Square, x);
}
/** x + s. */
export function addScalar(x: Tensor, s: number): Tensor {
  checkNumber('addScalar', 's', s);
  return unary(UnOp.Affine, x, 1, s, 'addScalar');
}
/** x * s. */
export function mulScalar(x: Tensor, s: number): Tensor {
  checkNumber('mulScalar', 's', s);
  return unary(UnOp.Affine, x, s, 0, 'mulScalar');
}
/** x ^ p (IEEE pow: negative x with a non-integer p gives NaN). */
export function powScalar(x: Tensor, p: number): Tensor {
  checkNumber('powScalar', 'p', p);
  return unary(UnOp.Pow, x, p, 0, 'powScalar');
}
/** min(max(x, lo), hi); the gradient passes where lo <= x <= hi. Bounds may be +-Infinity. */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  checkNumber('clamp', 'lo', lo);
  checkNumber('clamp', 'hi', hi);
  if (lo > hi) throw new RangeError(`clamp: expected lo <= hi, got lo ${lo} and hi ${hi}`);
  return unary(UnOp.Clamp, x, lo, hi, 'clamp');
}

// ---- where ----

/** cond != 0 ? a : b, all three broadcast together (cond is an f32 mask, e.g. from greater()). */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  checkTensor('where', 'cond', cond, { dtype: 'f32' });
  checkTensor('where', 'a', a, { dtype: 'f32' });
  checkTensor('where', 'b', b, { dtype: 'f32' });
  sameDevice('where', { cond, a, b });
  const ab = broadcastShapes('where', a.shape, b.shape);
  const shape = broadcastShapes('where', cond.shape, ab, ['cond', `broadcast(a, b)`]);
  const out = rawWhere(cond, a, b, shape);
  return record('where', out, [a, b], (g) => {
    const z = zeros([], { device: g.device });
    const da = a.requiresGrad ? reduceGradTo(rawWhere(cond, g, z, g.shape), a.shape) : null;
    const db = b.requiresGrad ? reduceGradTo(rawWhere(cond, z, g, g.shape), b.shape) : null;
    z.dispose();
    return [da, db];
  });
}

function rawWhere(cond: Tensor, a: Tensor, b: Tensor, shape: Shape): Tensor {
  const out = empty(shape, { device: a.device });
  native().ewWhere(out.storage, cond.storage, a.storage, b.storage, [...shape], broadcastStrides(cond.shape, shape), broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape));
  return out;
}

// ---- dropout ----

export interface DropoutOptions {
  /**
   * Integer seed in [0, 2^53). The mask is a pure function of (seed, element index), so it is the
   * same on CPU and CUDA and for any thread count. Default: a fresh random seed per call.
   */
  seed?: number;
  /** When false, dropout is the identity (evaluation mode). Default true. */
  training?: boolean;
}

/** Zeroes each element with probability p and scales the rest by 1 / (1 - p). */
export function dropout(x: Tensor, p: number, opts: DropoutOptions = {}): Tensor {
  checkTensor('dropout', 'x', x, { dtype: 'f32' });
  checkNumber('dropout', 'p', p, { min: 0 });
  if (!(p < 1)) throw new RangeError(`dropout: p: expected a probability in [0, 1), got ${p}`);
  const training = opts.training ?? true;
  if (typeof training !== 'boolean') throw new TypeError(`dropout: training: expected a boolean, got ${typeof training}`);
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 52);
  checkNumber('dropout', 'seed', seed, { integer: true, min: 0, max: 2 ** 53 - 1 });
  if (!training || p === 0) {
    // Identity: a view sharing storage, with a pass-through gradient.
    const out = x.view(x.shape);
    return record('dropout', out, [x], (g) => [g.view(g.shape)]);
  }
  const out = empty(x.shape, { device: x.device });
  native().ewDropout(out.storage, x.storage, x.size, p, seed);
  return record('dropout', out, [x], (g) => {
    const dx = empty(g.shape, { device: g.device });
    native().ewDropout(dx.storage, g.storage, g.size, p, seed);
    return [dx];
  });
}
