// A whole Linear HSTU encoder's serving work as one native call each, its weights prepared once
// (contract: native/include/qgs/linear_hstu_step.h, LinearHstuEncoderPlan). step: per row, a pair
// token (mean of its non-padding term embeddings + its item's row) goes through every layer's step
// against that row's state, then the final LayerNorm. encode: the tokens of packed sequences through
// every layer's sequence kernel, for the final states (a cold encode). Why a plan: composed from JS,
// a one-event step (QgsBackend.step) spent ~75% of its time in per-layer op dispatch, validation and
// temporaries, and most of the serving worker's garbage came from there. Inputs and results are plain
// typed arrays (states are what the serving cache holds), so a call allocates nothing on the JS heap.
import { native } from '../native';
import type { NativeStorage } from '../native';
import { Tensor, formatShape } from '../tensor';
import { checkDisjoint, checkNumber, checkTensor, checkTypedArray } from './validate';
import { livePlan, requireCpuInference, storageOf } from './fused-inference';
import { checkOffsets } from './jagged';
import { checkBlockParams, type BlockWeightStorages, type LinearHstuStepParams } from './linear-hstu-step';

declare const encoderPlanBrand: unique symbol;
type EncoderPlanHandle = { readonly [encoderPlanBrand]: true };

declare module '../native' {
  interface NativeBinding {
    encoderPlanCreate(
      sizes: number[], epsIn: number[], epsOut: number[], finalW: NativeStorage | null, finalB: NativeStorage | null, finalEps: number,
      ...layers: BlockWeightStorages[number][]
    ): EncoderPlanHandle;
    encoderPlanStep(
      plan: EncoderPlanHandle, hOut: Float32Array | null, statesOut: Float32Array | null, statesIn: Float32Array, terms: Int32Array,
      items: Int32Array, termTable: NativeStorage, itemTable: NativeStorage, sizes: number[], write: boolean,
    ): void;
    encoderPlanEncode(
      plan: EncoderPlanHandle, statesOut: Float32Array, statesIn: Float32Array | null, terms: Int32Array, items: Int32Array,
      termTable: NativeStorage, itemTable: NativeStorage, offsets: Int32Array, write: Float32Array | null, sizes: number[],
    ): void;
    encoderPlanRelease(plan: EncoderPlanHandle): void;
  }
}

export interface LinearHstuEncoderPlanParams {
  /** Every block's parameters, first to last; decays are required (the plan both writes and reads). */
  layers: readonly LinearHstuStepParams[];
  /** The LayerNorm over the last block's output (absent weight / bias: identity; eps default 1e-5). */
  finalNorm?: { weight?: Tensor | null; bias?: Tensor | null; eps?: number };
}

/** The pair tokens of one step call, one per row. */
export interface PairTokens {
  /** [R × termsPerToken] term ids; padTerm marks unused slots (a row of padding embeds to zero). */
  terms: Int32Array;
  termsPerToken: number;
  /** [R] item table rows. */
  items: Int32Array;
  /** [termRows, D] term embeddings. */
  termTable: Tensor;
  /** [itemRows, D] item representations. */
  itemTable: Tensor;
  padTerm: number;
}

export interface EncoderPlanEncodeOptions {
  /** [B + 1] token offsets of the B packed sequences: offsets[0] = 0, non-decreasing, offsets[B] = T. */
  offsets: Int32Array;
  /** [T] write weights in [0, 1] (0: a read-out token that adds nothing to the state); absent: every token writes. */
  write?: Float32Array | null;
  /** [B × stateSize] each sequence's starting state (absent: zeros). */
  statesIn?: Float32Array | null;
  /** [B × stateSize]: each sequence's final state, layer-major. */
  statesOut: Float32Array;
  /**
   * Skip what the final states cannot resolve: a token enters a layer's final state scaled by the
   * product of the decays of the tokens after it, so the tokens (and the starting state) whose
   * product, taken at the plan's largest decay (maxDecay), is below minWeight are left out and each
   * sequence is encoded from the first token above it (its starting state then counts as zero).
   * The lower layers' outputs at the first kept tokens lack that far history too, weighted as little
   * in the final state. 0 (default): every token. Serving uses 2^-40: at a largest decay of 0.9516 a 1,000-event
   * history then encodes its last 560 events, and the states differed from the full encode's by at
   * most 1.7e-8 of their largest entry (float32 resolution is 6e-8).
   */
  minWeight?: number;
}

export interface EncoderPlanStepOptions {
  /** true: every row's token updates its state (statesOut required); false: a read-out (hOut required). */
  write: boolean;
  /** [R × stateSize]: the updated states; may be statesIn itself (updated in place). */
  statesOut?: Float32Array | null;
  /** [R × D]: the final LayerNorm of the last block's output per row. */
  hOut?: Float32Array | null;
}

const OP = 'LinearHstuEncoderPlan';

/**
 * The encoder's serving step with its weights copied when the plan is made: later changes to the
 * weight tensors do not reach it (a frozen model's case; make a new plan after training). CPU,
 * inference only. `step` computes what the composed blocks' step() and the final LayerNorm compute
 * (the fused per-layer step, ops.linearHstuStep, for every layer in turn). dispose() frees the copies
 * early (otherwise the garbage collector does).
 */
export class LinearHstuEncoderPlan {
  readonly layers: number;
  readonly dim: number;
  readonly heads: number;
  readonly dk: number;
  readonly dv: number;
  /** Floats of one row's state: layers × heads × dk × dv, layer-major. */
  readonly stateSize: number;
  /** The largest decay of any head in any layer (what encode's minWeight is measured against). */
  readonly maxDecay: number;
  private handle: EncoderPlanHandle | null;

  constructor(p: LinearHstuEncoderPlanParams) {
    if (typeof p !== 'object' || p === null) throw new TypeError(`${OP}: params: expected an object, got ${p === null ? 'null' : typeof p}`);
    if (!Array.isArray(p.layers) || p.layers.length === 0) throw new TypeError(`${OP}: layers: expected a non-empty array of block parameters, got ${Array.isArray(p.layers) ? 'an empty array' : typeof p.layers}`);
    const first = p.layers[0];
    if (typeof first !== 'object' || first === null) throw new TypeError(`${OP}: layers[0]: expected an object, got ${first === null ? 'null' : typeof first}`);
    checkTensor(`${OP}: layers[0]`, 'outWeight', first.outWeight, { dtype: 'f32', rank: 2 });
    const dk = checkNumber(`${OP}: layers[0]`, 'dk', first.dk, { integer: true, min: 1 });
    const [D, Hv] = first.outWeight.shape;
    checkTensor(`${OP}: layers[0]`, 'decay', first.decay ?? null, { dtype: 'f32', rank: 1 });
    const H = (first.decay as Tensor).shape[0];
    if (Hv % H !== 0) throw new RangeError(`${OP}: layers[0]: outWeight: expected [D, H·dv] with H = ${H} heads, got shape ${formatShape(first.outWeight.shape)}`);
    const dv = Hv / H;
    const storages: (NativeStorage | null)[] = [];
    const epsIn: number[] = [];
    const epsOut: number[] = [];
    const named: Record<string, Tensor | null | undefined> = {};
    p.layers.forEach((l, i) => {
      const op = `${OP}: layers[${i}]`;
      if (typeof l !== 'object' || l === null) throw new TypeError(`${op}: expected an object, got ${l === null ? 'null' : typeof l}`);
      if (l.dk !== dk) throw new RangeError(`${op}: dk: expected ${dk} (every layer the same shape), got ${String(l.dk)}`);
      const c = checkBlockParams(op, l, D, H, dk, dv, true);
      storages.push(...c.storages);
      epsIn.push(c.epsIn);
      epsOut.push(c.epsOut);
      for (const [k, t] of Object.entries(c.named)) named[`layers[${i}].${k}`] = t;
    });
    const fn = p.finalNorm ?? {};
    if (fn.weight != null) checkTensor(OP, 'finalNorm.weight', fn.weight, { dtype: 'f32', shape: [D] });
    if (fn.bias != null) checkTensor(OP, 'finalNorm.bias', fn.bias, { dtype: 'f32', shape: [D] });
    const eps = checkNumber(OP, 'finalNorm.eps', fn.eps ?? 1e-5);
    if (!(eps > 0) || !Number.isFinite(eps)) throw new RangeError(`${OP}: finalNorm.eps: expected a positive finite number, got ${eps}`);
    requireCpuInference(OP, { ...named, 'finalNorm.weight': fn.weight, 'finalNorm.bias': fn.bias }, first.outWeight.device);
    this.layers = p.layers.length;
    this.dim = D;
    this.heads = H;
    this.dk = dk;
    this.dv = dv;
    this.stateSize = this.layers * H * dk * dv;
    this.maxDecay = Math.max(...p.layers.flatMap((l) => Array.from((l.decay as Tensor).toFloat32Array())));
    this.handle = native().encoderPlanCreate([this.layers, D, H, dk, dv], epsIn, epsOut, storageOf(fn.weight), storageOf(fn.bias), eps, ...storages);
  }

  /**
   * One pair token per row through every layer against the rows' states statesIn [R × stateSize]
   * (R = tokens.items.length): writes the updated states to opts.statesOut (write) and the encoder
   * output to opts.hOut (required for a read-out, optional when writing).
   */
  step(statesIn: Float32Array, tokens: PairTokens, opts: EncoderPlanStepOptions): void {
    const op = `${OP}.step`;
    const handle = livePlan(op, this.handle);
    if (typeof opts !== 'object' || opts === null || typeof opts.write !== 'boolean') {
      throw new TypeError(`${op}: options.write: expected a boolean, got ${opts === null || typeof opts !== 'object' ? String(opts) : typeof opts.write}`);
    }
    const { T: R, m, padTerm } = this.checkTokens(op, tokens);
    const rows = `${R} row${R === 1 ? '' : 's'}`;
    checkTypedArray(op, 'statesIn', statesIn, R * this.stateSize, 'Float32Array', rows);
    if (opts.write || opts.statesOut != null) checkTypedArray(op, 'options.statesOut', opts.statesOut, R * this.stateSize, 'Float32Array', rows);
    if (!opts.write || opts.hOut != null) checkTypedArray(op, 'options.hOut', opts.hOut, R * this.dim, 'Float32Array', rows);
    // Outputs are written while inputs are still read: only statesOut may be statesIn itself.
    checkDisjoint(op, { statesIn, 'tokens.terms': tokens.terms, 'tokens.items': tokens.items }, { 'options.statesOut': opts.write ? opts.statesOut : null, 'options.hOut': opts.hOut }, { input: 'statesIn', output: 'options.statesOut' });
    native().encoderPlanStep(
      handle, opts.hOut ?? null, opts.write ? (opts.statesOut as Float32Array) : null, statesIn, tokens.terms, tokens.items,
      tokens.termTable.storage, tokens.itemTable.storage,
      [R, m, tokens.termTable.shape[0], tokens.itemTable.shape[0], padTerm], opts.write,
    );
  }

  /**
   * A cold encode: the T pair tokens of B packed sequences (tokens.items.length = T) through every
   * layer, each sequence from its starting state → the final states in opts.statesOut. The same
   * function as T writing steps (read-out tokens: step with write false), computed per layer over the
   * whole sequence (ops.linearHstuBlock's kernel), the last layer for its state only.
   */
  encode(tokens: PairTokens, opts: EncoderPlanEncodeOptions): void {
    const op = `${OP}.encode`;
    const handle = livePlan(op, this.handle);
    if (typeof opts !== 'object' || opts === null) throw new TypeError(`${op}: options: expected an object, got ${opts === null ? 'null' : typeof opts}`);
    const { T, m, padTerm } = this.checkTokens(op, tokens);
    const { offsets } = opts;
    if (!(offsets instanceof Int32Array) || offsets.length < 2) {
      throw new TypeError(`${op}: options.offsets: expected an Int32Array of B + 1 >= 2 token offsets, got ${offsets instanceof Int32Array ? `length ${offsets.length}` : typeof offsets}`);
    }
    const B = offsets.length - 1;
    checkOffsets(op, offsets, T, 'options.offsets');
    const rows = `${B} sequence${B === 1 ? '' : 's'}`;
    checkTypedArray(op, 'options.statesOut', opts.statesOut, B * this.stateSize, 'Float32Array', rows);
    if (opts.statesIn != null) checkTypedArray(op, 'options.statesIn', opts.statesIn, B * this.stateSize, 'Float32Array', rows);
    if (opts.write != null) {
      checkTypedArray(op, 'options.write', opts.write, T, 'Float32Array', `${T} tokens`);
      for (let t = 0; t < T; t++) {
        const w = opts.write[t];
        if (!(w >= 0 && w <= 1)) throw new RangeError(`${op}: options.write[${t}]: expected a weight in [0, 1], got ${w}`);
      }
    }
    checkDisjoint(op, { 'options.statesIn': opts.statesIn, 'options.write': opts.write, 'options.offsets': offsets, 'tokens.terms': tokens.terms, 'tokens.items': tokens.items }, { 'options.statesOut': opts.statesOut }, { input: 'options.statesIn', output: 'options.statesOut' });
    const minWeight = checkNumber(op, 'options.minWeight', opts.minWeight ?? 0);
    if (!(minWeight >= 0 && minWeight < 1)) throw new RangeError(`${op}: options.minWeight: expected a weight in [0, 1), got ${minWeight}`);
    const k = minWeight > 0 ? this.keptTokens(offsets, opts.write ?? null, opts.statesIn ?? null, minWeight, tokens.terms, tokens.items, m) : null;
    const x = k ?? { terms: tokens.terms, items: tokens.items, offsets, write: opts.write ?? null, statesIn: opts.statesIn ?? null };
    native().encoderPlanEncode(
      handle, opts.statesOut, x.statesIn, x.terms, x.items, tokens.termTable.storage, tokens.itemTable.storage,
      x.offsets, x.write, [x.items.length, B, m, tokens.termTable.shape[0], tokens.itemTable.shape[0], padTerm],
    );
  }

  /**
   * encode's inputs without what minWeight drops (see EncoderPlanEncodeOptions.minWeight), or null
   * when nothing is dropped. One sequence keeps views of the caller's arrays; several are copied.
   */
  private keptTokens(
    offsets: Int32Array, write: Float32Array | null, statesIn: Float32Array | null, minWeight: number, terms: Int32Array, items: Int32Array, m: number,
  ): { terms: Int32Array; items: Int32Array; offsets: Int32Array; write: Float32Array | null; statesIn: Float32Array | null } | null {
    const g = this.maxDecay;
    if (!(g < 1)) return null;
    const logG = Math.log(g); // -Infinity at 0: only the last token counts
    const target = Math.log(minWeight);
    // Whole tokens at decay g after which the weight is below minWeight (no write weights).
    const horizon = Math.floor(target / logG) + 1;
    const B = offsets.length - 1;
    const start = new Int32Array(B);
    const dropsState = new Uint8Array(B);
    let any = false;
    for (let b = 0; b < B; b++) {
      const s0 = offsets[b];
      const e = offsets[b + 1];
      start[b] = s0;
      if (write === null) {
        if (e - s0 >= horizon) {
          start[b] = e - horizon;
          dropsState[b] = 1;
        }
      } else {
        // Π of the decays of tokens t .. e-1, each w·g + (1 − w): a token that does not write keeps S.
        let acc = 0;
        for (let t = e - 1; t >= s0; t--) {
          const w = write[t];
          acc += Math.log(w * g + (1 - w));
          if (acc < target) {
            start[b] = t;
            dropsState[b] = 1;
            break;
          }
        }
      }
      any ||= start[b] > s0 || (dropsState[b] === 1 && statesIn !== null);
    }
    if (!any) return null;
    const S = this.stateSize;
    if (B === 1) {
      const s = start[0];
      const e = offsets[1];
      return {
        terms: terms.subarray(s * m, e * m),
        items: items.subarray(s, e),
        offsets: Int32Array.of(0, e - s),
        write: write === null ? null : write.subarray(s, e),
        statesIn: dropsState[0] === 1 ? null : statesIn,
      };
    }
    const kept = new Int32Array(B + 1);
    for (let b = 0; b < B; b++) kept[b + 1] = kept[b] + offsets[b + 1] - start[b];
    const T = kept[B];
    const out = { terms: new Int32Array(T * m), items: new Int32Array(T), offsets: kept, write: write === null ? null : new Float32Array(T), statesIn: statesIn === null ? null : statesIn.slice() };
    for (let b = 0; b < B; b++) {
      const s = start[b];
      const e = offsets[b + 1];
      out.terms.set(terms.subarray(s * m, e * m), kept[b] * m);
      out.items.set(items.subarray(s, e), kept[b]);
      if (out.write !== null) out.write.set((write as Float32Array).subarray(s, e), kept[b]);
      if (out.statesIn !== null && dropsState[b] === 1) out.statesIn.fill(0, b * S, (b + 1) * S);
    }
    return out;
  }

  /** The tokens' arrays and tables, checked: T tokens of m terms each. */
  private checkTokens(op: string, tokens: PairTokens): { T: number; m: number; padTerm: number } {
    if (typeof tokens !== 'object' || tokens === null) throw new TypeError(`${op}: tokens: expected an object, got ${tokens === null ? 'null' : typeof tokens}`);
    const { items, terms } = tokens;
    if (!(items instanceof Int32Array)) throw new TypeError(`${op}: tokens.items: expected an Int32Array, got ${typeof items}`);
    const T = items.length;
    const m = checkNumber(op, 'tokens.termsPerToken', tokens.termsPerToken, { integer: true, min: 1 });
    const padTerm = checkNumber(op, 'tokens.padTerm', tokens.padTerm, { integer: true });
    checkTypedArray(op, 'tokens.terms', terms, T * m, 'Int32Array', `${T} row${T === 1 ? '' : 's'}`);
    checkTensor(op, 'tokens.termTable', tokens.termTable, { dtype: 'f32', shape: [-1, this.dim] });
    checkTensor(op, 'tokens.itemTable', tokens.itemTable, { dtype: 'f32', shape: [-1, this.dim] });
    requireCpuInference(op, { termTable: tokens.termTable, itemTable: tokens.itemTable }, tokens.termTable.device);
    return { T, m, padTerm };
  }

  /** Frees the prepared weights now; step() and encode() then throw. Idempotent. */
  dispose(): void {
    if (this.handle !== null) native().encoderPlanRelease(this.handle);
    this.handle = null;
  }
}
