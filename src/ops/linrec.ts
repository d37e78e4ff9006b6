// Causal linear recurrence (Linear HSTU core, DESIGN.md §4.1): per sequence and head,
//   S_t = γ_t S_{t−1} + k_tᵀ v_t,   o_t = c_t · q_t S_t,
// on padded [B, L, H, d] batches (optional per-sequence lengths) or packed jagged [ΣL, H, d] batches
// with Int32Array offsets. Differentiable in q, k, v, the decay, the initial state and the returned
// final state. The native kernel is chunked (see native/cpu/linrec.cpp).
import type { NativeStorage } from '../native';
import { native } from '../native';
import { Tensor, empty, zeros, formatShape } from '../tensor';
import { record, needsGrad } from '../autograd';
import { checkTensor, sameDevice } from './validate';
import { intArray, checkOffsets, checkLengths, callNative } from './jagged';

declare module '../native' {
  interface NativeBinding {
    linrecForward(
      out: NativeStorage, stateOut: NativeStorage | null, q: NativeStorage, k: NativeStorage, v: NativeStorage,
      decay: NativeStorage | null, init: NativeStorage | null, offsets: Int32Array | null, lengths: Int32Array | null,
      batch: number, maxLen: number, heads: number, dk: number, dv: number, decayMode: number, scale: number,
      invT: boolean, chunk: number,
    ): void;
    linrecBackward(
      dq: NativeStorage | null, dkOut: NativeStorage | null, dvOut: NativeStorage | null, ddecay: NativeStorage | null,
      dinit: NativeStorage | null, q: NativeStorage, k: NativeStorage, v: NativeStorage, decay: NativeStorage | null,
      init: NativeStorage | null, dout: NativeStorage | null, dstateOut: NativeStorage | null,
      offsets: Int32Array | null, lengths: Int32Array | null, batch: number, maxLen: number, heads: number,
      dk: number, dv: number, decayMode: number, scale: number, invT: boolean, chunk: number,
    ): void;
  }
}

export interface LinearRecurrenceOptions {
  /**
   * γ: omitted/null = 1 (plain causal linear attention); a tensor [H] (per-head constant decay) or a
   * per-step tensor [B, L, H] (padded) / [ΣL, H] (packed). Values must lie in [0, 1].
   */
  decay?: Tensor | null;
  /** c_t: a constant (default 1 / L_max, as HSTU's 1/n) or '1/t' (t = 1, 2, ... within each sequence). */
  scale?: number | '1/t';
  /** Padded form: the true length of each sequence (default: all L). Padding steps output 0 and leave the state unchanged. */
  lengths?: Int32Array | readonly number[];
  /** Packed form: B+1 non-decreasing row offsets, offsets[0] = 0, offsets[B] = ΣL; empty sequences allowed. */
  offsets?: Int32Array | readonly number[];
  /** Initial state [B, H, dk, dv] (default zeros). */
  initialState?: Tensor | null;
  /** Also return the final state [B, H, dk, dv] (for serving caches or carrying state across calls). */
  returnState?: boolean;
  /** Chunk length of the chunked kernel (1..1024, default 64). Results do not depend on it beyond fp32 rounding. */
  chunkSize?: number;
}

export interface LinearRecurrenceResult {
  /** [B, L, H, dv] (padded) or [ΣL, H, dv] (packed). */
  output: Tensor;
  /** Final state [B, H, dk, dv]. */
  state: Tensor;
}

// Everything the kernel needs besides the tensors.
interface Plan {
  batch: number;
  maxLen: number;
  heads: number;
  dk: number;
  dv: number;
  rows: number;
  offsets: Int32Array | null;
  lengths: Int32Array | null;
  decayMode: 0 | 1 | 2;
  scale: number;
  invT: boolean;
  chunk: number;
}




function maxSeqLen(plan: { offsets: Int32Array | null; maxLen: number }): number {
  if (plan.offsets === null) return plan.maxLen;
  let m = 0;
  for (let b = 1; b < plan.offsets.length; b++) m = Math.max(m, plan.offsets[b] - plan.offsets[b - 1]);
  return m;
}


function planFor(op: string, q: Tensor, k: Tensor, v: Tensor, opts: LinearRecurrenceOptions): Plan {
  const packed = opts.offsets !== undefined && opts.offsets !== null;
  if (packed && opts.lengths !== undefined) throw new Error(`${op}: give either offsets (packed) or lengths (padded), not both`);
  checkTensor(op, 'q', q, { dtype: 'f32', rank: packed ? 3 : 4 });
  let batch: number;
  let maxLen: number;
  let rows: number;
  let offsets: Int32Array | null = null;
  let lengths: Int32Array | null = null;
  const lead = packed ? 1 : 2;
  if (packed) {
    offsets = intArray(op, 'offsets', opts.offsets);
    rows = q.shape[0];
    checkOffsets(op, offsets, rows);
    batch = offsets.length - 1;
    maxLen = 0;
  } else {
    batch = q.shape[0];
    maxLen = q.shape[1];
    rows = batch * maxLen;
    if (opts.lengths !== undefined) {
      lengths = intArray(op, 'lengths', opts.lengths);
      checkLengths(op, lengths, batch, maxLen);
    }
  }
  const heads = q.shape[lead];
  const dk = q.shape[lead + 1];
  const leadShape = q.shape.slice(0, lead);
  checkTensor(op, 'k', k, { dtype: 'f32', shape: q.shape });
  checkTensor(op, 'v', v, { dtype: 'f32', shape: [...leadShape, heads, -1] });
  const dv = v.shape[lead + 1];
  if (heads < 1) throw new Error(`${op}: q: expected at least 1 head, got shape ${formatShape(q.shape)}`);
  if (dk < 1 || dv < 1) throw new Error(`${op}: head dims must be >= 1, got dk = ${dk}, dv = ${dv}`);
  let decayMode: 0 | 1 | 2 = 0;
  const decay = opts.decay ?? null;
  if (decay !== null) {
    checkTensor(op, 'decay', decay, { dtype: 'f32' });
    if (decay.rank === 1 && decay.shape[0] === heads) decayMode = 1;
    else if (decay.rank === lead + 1 && decay.shape.every((d, i) => d === [...leadShape, heads][i])) decayMode = 2;
    else {
      throw new Error(`${op}: decay: expected shape [${heads}] (per head) or ${formatShape([...leadShape, heads])} (per step), got ${formatShape(decay.shape)}`);
    }
  }
  const init = opts.initialState ?? null;
  if (init !== null) checkTensor(op, 'initialState', init, { dtype: 'f32', shape: [batch, heads, dk, dv] });
  sameDevice(op, { q, k, v, decay, initialState: init });
  let scale: number;
  let invT = false;
  if (opts.scale === '1/t') {
    scale = 1;
    invT = true;
  } else if (opts.scale === undefined) {
    scale = 1 / Math.max(1, maxSeqLen({ offsets, maxLen }));
  } else if (typeof opts.scale === 'number' && Number.isFinite(opts.scale)) {
    scale = opts.scale;
  } else {
    throw new TypeError(`${op}: scale: expected a finite number or '1/t', got ${String(opts.scale)}`);
  }
  const chunk = opts.chunkSize ?? 64;
  if (!Number.isInteger(chunk) || chunk < 1 || chunk > 1024) throw new RangeError(`${op}: chunkSize: expected an integer in [1, 1024], got ${chunk}`);
  return { batch, maxLen, heads, dk, dv, rows, offsets, lengths, decayMode, scale, invT, chunk };
}

const st = (t: Tensor | null): NativeStorage | null => (t === null ? null : t.storage);

// Runs the kernel and records the autograd nodes (one for the output, one for the state: the gradient
// is linear in (dout, dstate), so two backward calls sum to the joint gradient).
function run(op: string, q: Tensor, k: Tensor, v: Tensor, decay: Tensor | null, init: Tensor | null, p: Plan,
  outShape: readonly number[], stateShape: readonly number[], wantState: boolean): { output: Tensor; state: Tensor | null } {
  const device = q.device;
  const output = empty(outShape, { device });
  const state = wantState ? empty(stateShape, { device }) : null;
  const b = native();
  callNative(op, () => b.linrecForward(output.storage, st(state), q.storage, k.storage, v.storage, st(decay), st(init),
    p.offsets, p.lengths, p.batch, p.maxLen, p.heads, p.dk, p.dv, p.decayMode, p.scale, p.invT, p.chunk));
  const inputs: Tensor[] = [q, k, v];
  if (decay !== null) inputs.push(decay);
  if (init !== null) inputs.push(init);
  if (!needsGrad(inputs)) return { output, state };
  const backward = (dout: Tensor | null, dstate: Tensor | null): (Tensor | null)[] => {
    const want = (t: Tensor): Tensor | null => (t.requiresGrad ? zerosLike(t) : null);
    const dq = want(q);
    const dk = want(k);
    const dv = want(v);
    const dd = decay !== null ? want(decay) : null;
    const di = init !== null ? want(init) : null;
    callNative(op, () => b.linrecBackward(st(dq), st(dk), st(dv), st(dd), st(di), q.storage, k.storage, v.storage, st(decay),
      st(init), st(dout), st(dstate), p.offsets, p.lengths, p.batch, p.maxLen, p.heads, p.dk, p.dv, p.decayMode,
      p.scale, p.invT, p.chunk));
    const grads: (Tensor | null)[] = [dq, dk, dv];
    if (decay !== null) grads.push(dd);
    if (init !== null) grads.push(di);
    return grads;
  };
  record(op, output, inputs, (g) => backward(g, null));
  if (state !== null) record(`${op}.state`, state, inputs, (g) => backward(null, g));
  return { output, state };
}

// Gradient buffers are fully written by the kernel; empty() is enough, zeros() only for size-0 safety.
function zerosLike(t: Tensor): Tensor {
  return t.size === 0 ? zeros(t.shape, { device: t.device }) : empty(t.shape, { device: t.device });
}

/**
 * Causal linear recurrence per sequence and head: `S_t = γ_t S_{t−1} + k_tᵀ v_t`, `o_t = c_t · q_t S_t`.
 * Padded: `q, k [B, L, H, dk]`, `v [B, L, H, dv]` → `[B, L, H, dv]`; packed (with `offsets`):
 * `[ΣL, H, d]` → `[ΣL, H, dv]`. With `returnState: true` returns `{ output, state }`.
 */
export function linearRecurrence(q: Tensor, k: Tensor, v: Tensor, opts: LinearRecurrenceOptions & { returnState: true }): LinearRecurrenceResult;
export function linearRecurrence(q: Tensor, k: Tensor, v: Tensor, opts?: LinearRecurrenceOptions & { returnState?: false }): Tensor;
export function linearRecurrence(q: Tensor, k: Tensor, v: Tensor, opts?: LinearRecurrenceOptions): Tensor | LinearRecurrenceResult;
export function linearRecurrence(q: Tensor, k: Tensor, v: Tensor, opts: LinearRecurrenceOptions = {}): Tensor | LinearRecurrenceResult {
  const op = 'linearRecurrence';
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: opts: expected an object, got ${String(opts)}`);
  const p = planFor(op, q, k, v, opts);
  const lead = p.offsets !== null ? [p.rows] : [p.batch, p.maxLen];
  const r = run(op, q, k, v, opts.decay ?? null, opts.initialState ?? null, p, [...lead, p.heads, p.dv],
    [p.batch, p.heads, p.dk, p.dv], opts.returnState === true);
  if (opts.returnState === true) return { output: r.output, state: r.state as Tensor };
  return r.output;
}

export interface LinearRecurrenceStepOptions {
  /** c for this step (default 1). For the '1/t' scale pass 1 / t, t = the new token's 1-based position. */
  scale?: number;
}

/**
 * One new token per sequence (serving): `S' = γ S + kᵀ v`, `o = c · q S'`. `state [B, H, dk, dv]`,
 * `q, k [B, H, dk]`, `v [B, H, dv]`, `decay` null (γ = 1), `[H]` or `[B, H]` → `{ output [B, H, dv], state }`.
 * Same kernel as linearRecurrence with L = 1 (so the step equals the full forward), and differentiable.
 */
export function linearRecurrenceStep(state: Tensor, q: Tensor, k: Tensor, v: Tensor, decay: Tensor | null = null,
  opts: LinearRecurrenceStepOptions = {}): LinearRecurrenceResult {
  const op = 'linearRecurrenceStep';
  checkTensor(op, 'q', q, { dtype: 'f32', rank: 3 });
  const [batch, heads, dk] = q.shape;
  checkTensor(op, 'k', k, { dtype: 'f32', shape: [batch, heads, dk] });
  checkTensor(op, 'v', v, { dtype: 'f32', shape: [batch, heads, -1] });
  const dv = v.shape[2];
  checkTensor(op, 'state', state, { dtype: 'f32', shape: [batch, heads, dk, dv] });
  let decayMode: 0 | 1 | 2 = 0;
  if (decay !== null) {
    checkTensor(op, 'decay', decay, { dtype: 'f32' });
    if (decay.rank === 1 && decay.shape[0] === heads) decayMode = 1;
    else if (decay.rank === 2 && decay.shape[0] === batch && decay.shape[1] === heads) decayMode = 2;
    else throw new Error(`${op}: decay: expected shape [${heads}] or [${batch}, ${heads}], got ${formatShape(decay.shape)}`);
  }
  sameDevice(op, { state, q, k, v, decay });
  const scale = opts.scale ?? 1;
  if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new TypeError(`${op}: scale: expected a finite number, got ${String(scale)}`);
  if (dk < 1 || dv < 1) throw new Error(`${op}: head dims must be >= 1, got dk = ${dk}, dv = ${dv}`);
  // [B, H, d] is laid out exactly as [B, 1, H, d]: the padded kernel with L = 1.
  const p: Plan = { batch, maxLen: 1, heads, dk, dv, rows: batch, offsets: null, lengths: null, decayMode, scale, invT: false, chunk: 64 };
  const r = run(op, q, k, v, decay, state, p, [batch, heads, dv], [batch, heads, dk, dv], true);
  return { output: r.output, state: r.state as Tensor };
}
