// One Linear HSTU block over a packed (jagged) token batch at inference, fused into one native call
// (contract: native/include/qgs/linear_hstu_step.h, "sequence form"). It computes what the composed
// EncoderBlock.forwardWithState computes with dropout off — LayerNorm → SiLU projection split into
// U | V | Q | K → the causal recurrence with per-token decay write·γ + (1 − write) and values
// v·write → LayerNorm → ⊙ U → output projection → residual — plus each sequence's final state.
// Composed, a 1,000-token block is ~20 ops over [T, ·] intermediates (~2 ms of a cold serving
// encode); with `output: false` only the V and K projection rows feed the final states (the last
// layer of an encode). CPU and inference only (no gradient); on a GPU or in training use the modules.
import { native } from '../native';
import { Tensor, empty } from '../tensor';
import { checkTensor } from './validate';
import { requireCpuInference, storageOf } from './fused-inference';
import { callNative, checkOffsets, intArray } from './jagged';
import { checkBlockParams, checkParamsObject, type LinearHstuStepParams } from './linear-hstu-step';

export interface LinearHstuBlockOptions {
  /** [B + 1] token offsets of the packed sequences (offsets[0] = 0, non-decreasing, offsets[B] = T). */
  offsets: Int32Array | readonly number[];
  /** [T] or [T, 1] write weights in [0, 1]: 1 writes (default, every token), 0 is a pure read-out. */
  write?: Tensor | null;
  /** [B, H, dk, dv] each sequence's state before its first token (default zeros). */
  initialState?: Tensor | null;
  /** Compute the block's output [T, D] (default true); false computes only the final states. */
  output?: boolean;
  /** Return each sequence's final state [B, H, dk, dv] (default false). */
  returnState?: boolean;
}

export interface LinearHstuBlockResult {
  /** [T, D], or null with `output: false`. */
  output: Tensor | null;
  /** [B, H, dk, dv], or null unless `returnState`. */
  state: Tensor | null;
}

const OP = 'linearHstuBlock';

export function linearHstuBlock(x: Tensor, p: LinearHstuStepParams, opts: LinearHstuBlockOptions): LinearHstuBlockResult {
  checkTensor(OP, 'x', x, { dtype: 'f32', rank: 2 });
  const [T, D] = x.shape;
  const dk = checkParamsObject(OP, p);
  if (typeof opts !== 'object' || opts === null) throw new TypeError(`${OP}: options: expected an object, got ${opts === null ? 'null' : typeof opts}`);
  const offsets = intArray(OP, 'offsets', opts.offsets);
  checkOffsets(OP, offsets, T);
  const B = offsets.length - 1;
  if (B < 1) throw new RangeError(`${OP}: offsets: expected at least 2 entries (B + 1 with B >= 1), got ${offsets.length}`);
  // H from the decays, dv from the projection's height H·(2dv + 2dk).
  const decay = checkTensor(OP, 'decay', p.decay, { dtype: 'f32', rank: 1 });
  const H = decay.shape[0];
  const rows = checkTensor(OP, 'projWeight', p.projWeight, { dtype: 'f32', rank: 2 }).shape[0];
  const dv = (rows / H - 2 * dk) / 2;
  if (!(Number.isInteger(dv) && dv >= 1)) {
    throw new RangeError(`${OP}: projWeight: expected H·(2dv + 2dk) rows with H = ${H} (decay) and dk = ${dk}, got ${rows}`);
  }
  const c = checkBlockParams(OP, p, D, H, dk, dv, true);
  const wantOutput = opts.output ?? true;
  const wantState = opts.returnState ?? false;
  if (typeof wantOutput !== 'boolean') throw new TypeError(`${OP}: options.output: expected a boolean, got ${typeof wantOutput}`);
  if (typeof wantState !== 'boolean') throw new TypeError(`${OP}: options.returnState: expected a boolean, got ${typeof wantState}`);
  if (!wantOutput && !wantState) throw new Error(`${OP}: options: output: false and returnState: false leave nothing to compute`);
  const write = opts.write ?? null;
  if (write !== null) {
    checkTensor(OP, 'write', write, { dtype: 'f32' });
    const ok = (write.shape.length === 1 && write.shape[0] === T) || (write.shape.length === 2 && write.shape[0] === T && write.shape[1] === 1);
    if (!ok) throw new RangeError(`${OP}: write: expected shape [${T}] or [${T}, 1], got [${write.shape.join(', ')}]`);
  }
  const init = opts.initialState ?? null;
  if (init !== null) checkTensor(OP, 'initialState', init, { dtype: 'f32', shape: [B, H, dk, dv] });
  requireCpuInference(OP, { x, write, initialState: init, ...c.named }, x.device);
  const output = wantOutput ? empty([T, D]) : null;
  const state = wantState ? empty([B, H, dk, dv]) : null;
  callNative(OP, () =>
    native().linearHstuBlock(
      storageOf(output), storageOf(state), x.storage, storageOf(init), storageOf(write), offsets, ...c.storages, [T, B, D, H, dk, dv], c.epsIn, c.epsOut,
    ),
  );
  return { output, state };
}
