// Argument checks shared by every op: errors name the op, the argument, the expected and the actual
// value, so bad input never reaches a kernel.
import { Tensor, formatShape, type DType, type Device } from '../tensor';

export interface TensorCheck {
  dtype?: DType;
  rank?: number;
  /** Exact shape; -1 matches any size in that dimension. */
  shape?: readonly number[];
  device?: Device;
  /** Reject tensors whose values contain NaN (reads the data: use on small/host inputs only). */
  finite?: boolean;
}

export function checkTensor(op: string, name: string, x: unknown, spec: TensorCheck = {}): Tensor {
  if (!(x instanceof Tensor)) {
    throw new TypeError(`${op}: ${name}: expected a Tensor, got ${x === null ? 'null' : typeof x}`);
  }
  if (x.disposed) throw new Error(`${op}: ${name}: tensor ${formatShape(x.shape)} has been disposed`);
  if (spec.dtype !== undefined && x.dtype !== spec.dtype) {
    throw new TypeError(`${op}: ${name}: expected dtype ${spec.dtype}, got ${x.dtype}`);
  }
  if (spec.rank !== undefined && x.rank !== spec.rank) {
    throw new Error(`${op}: ${name}: expected rank ${spec.rank}, got rank ${x.rank} (shape ${formatShape(x.shape)})`);
  }
  if (spec.shape !== undefined) {
    const s = spec.shape;
    const ok = s.length === x.rank && s.every((d, i) => d === -1 || d === x.shape[i]);
    if (!ok) {
      const want = `[${s.map((d) => (d === -1 ? '*' : String(d))).join(', ')}]`;
      throw new Error(`${op}: ${name}: expected shape ${want}, got ${formatShape(x.shape)}`);
    }
  }
  if (spec.device !== undefined && x.device !== spec.device) {
    throw new Error(`${op}: ${name}: expected device ${spec.device}, got ${x.device}`);
  }
  if (spec.finite) {
    const d = x.toFloat32Array();
    for (let i = 0; i < d.length; i++) {
      if (!Number.isFinite(d[i])) throw new Error(`${op}: ${name}: expected finite values, got ${d[i]} at flat index ${i}`);
    }
  }
  return x;
}

/** All tensors on one device; returns it. */
export function sameDevice(op: string, named: Record<string, Tensor | null | undefined>): Device {
  let dev: Device | null = null;
  let first = '';
  for (const [name, t] of Object.entries(named)) {
    if (t == null) continue;
    if (dev === null) {
      dev = t.device;
      first = name;
    } else if (t.device !== dev) {
      throw new Error(`${op}: ${name} is on ${t.device} but ${first} is on ${dev}; move them to one device`);
    }
  }
  return dev ?? 'cpu';
}

export function checkNumber(op: string, name: string, v: unknown, opts: { min?: number; max?: number; integer?: boolean } = {}): number {
  if (typeof v !== 'number' || Number.isNaN(v)) throw new TypeError(`${op}: ${name}: expected a number, got ${String(v)}`);
  if (opts.integer && !Number.isInteger(v)) throw new TypeError(`${op}: ${name}: expected an integer, got ${v}`);
  if (opts.min !== undefined && v < opts.min) throw new RangeError(`${op}: ${name}: expected >= ${opts.min}, got ${v}`);
  if (opts.max !== undefined && v > opts.max) throw new RangeError(`${op}: ${name}: expected <= ${opts.max}, got ${v}`);
  return v;
}

/** Normalises a possibly negative axis against a rank. */
export function normAxis(op: string, axis: number, rank: number, name = 'axis'): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= Math.max(rank, 1)) {
    throw new RangeError(`${op}: ${name}: expected an integer in [${-rank}, ${rank - 1}], got ${axis}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** a is a Float32Array / Int32Array of exactly n elements (`what`: what n counts, for the message). */
export function checkTypedArray(op: string, name: string, a: unknown, n: number, type: 'Float32Array' | 'Int32Array', what: string): void {
  const ok = type === 'Float32Array' ? a instanceof Float32Array : a instanceof Int32Array;
  if (!ok || (a as Float32Array | Int32Array).length !== n) {
    const got = ok ? `length ${(a as Float32Array).length}` : a === null ? 'null' : typeof a;
    throw new TypeError(`${op}: ${name}: expected ${type === 'Int32Array' ? 'an' : 'a'} ${type} of ${n} (${what}), got ${got}`);
  }
}

type HostArray = Float32Array | Int32Array;

/**
 * No output array overlaps another output or an input (the kernels write outputs while they still read
 * inputs: an overlap would give wrong numbers, silently) — except that the `inPlace` output may be its
 * input itself (an in-place update), though not partly overlapping it.
 */
export function checkDisjoint(
  op: string,
  inputs: Record<string, HostArray | null | undefined>,
  outputs: Record<string, HostArray | null | undefined>,
  inPlace?: { input: string; output: string },
): void {
  const all = [...Object.entries(inputs), ...Object.entries(outputs)].filter((e): e is [string, HostArray] => e[1] != null);
  for (const [outName, o] of Object.entries(outputs)) {
    if (o == null) continue;
    for (const [name, a] of all) {
      if (name === outName || a.buffer !== o.buffer) continue;
      const exact = a.byteOffset === o.byteOffset && a.byteLength === o.byteLength;
      const allowed = inPlace !== undefined && name === inPlace.input && outName === inPlace.output;
      if (exact && allowed) continue;
      const overlap = a.byteOffset < o.byteOffset + o.byteLength && o.byteOffset < a.byteOffset + a.byteLength;
      if (overlap) throw new RangeError(`${op}: ${outName}: overlaps ${name} (${outName} may only be ${allowed ? `${name} itself, not part of it` : 'an array of its own'})`);
    }
  }
}
