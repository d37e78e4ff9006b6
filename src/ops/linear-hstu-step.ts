// One token per sequence through one Linear HSTU block against its recurrent state, fused into one
// native call (contract: native/include/qgs/linear_hstu_step.h). It is exactly EncoderBlock.step at
// inference (LayerNorm → SiLU projection split into U | V | Q | K → S' = γ S + kᵀ v, or S' = S for a
// read-out → o = q S' → LayerNorm → ⊙ U → output projection → residual), for the serving path:
// composed, that step is ~17 small ops a layer whose dispatch cost ~0.14 ms per layer at one row.
// CPU and inference only (no gradient); on a GPU or in training use the composed block.
import { native } from '../native';
import type { NativeStorage } from '../native';
import { Tensor, empty } from '../tensor';
import { checkNumber, checkTensor } from './validate';
import { requireCpuInference, storageOf } from './fused-inference';

declare module '../native' {
  interface NativeBinding {
    linearHstuStep(
      out: NativeStorage, stateOut: NativeStorage | null, x: NativeStorage, state: NativeStorage,
      ...rest: [...BlockWeightStorages, sizes: number[], epsIn: number, epsOut: number, write: boolean]
    ): void;
    linearHstuBlock(
      out: NativeStorage | null, stateOut: NativeStorage | null, x: NativeStorage, stateIn: NativeStorage | null,
      write: NativeStorage | null, offsets: Int32Array,
      ...rest: [...BlockWeightStorages, sizes: number[], epsIn: number, epsOut: number]
    ): void;
  }
}

/** A block's weights as both bindings take them (null = absent). */
export type BlockWeightStorages = [
  lnInW: NativeStorage | null, lnInB: NativeStorage | null, projW: NativeStorage, projB: NativeStorage | null,
  lnOutW: NativeStorage | null, lnOutB: NativeStorage | null, outW: NativeStorage, outB: NativeStorage | null, decay: NativeStorage | null,
];

/** A Linear HSTU block's parameters (PyTorch layout: weights [out, in]). */
export interface LinearHstuStepParams {
  /** [H·(2dv + 2dk), D]: the projection whose SiLU splits into U [H·dv] | V [H·dv] | Q [H·dk] | K [H·dk]. */
  projWeight: Tensor;
  projBias?: Tensor | null;
  /** [D, H·dv] */
  outWeight: Tensor;
  outBias?: Tensor | null;
  lnInWeight?: Tensor | null;
  lnInBias?: Tensor | null;
  lnInEps?: number;
  /** LayerNorm over the H·dv recurrence outputs. */
  lnOutWeight?: Tensor | null;
  lnOutBias?: Tensor | null;
  lnOutEps?: number;
  /** [H] per-head decays γ in [0, 1] (needed when writing). */
  decay?: Tensor | null;
  /** Per-head key/query width dk (dv follows from the projection's height). */
  dk: number;
}

export interface LinearHstuStepResult {
  /** [R, D] the block's output for each row's token. */
  output: Tensor;
  /** [R, H, dk, dv] the updated states when writing; the input state itself for a read-out. */
  state: Tensor;
}

const OP = 'linearHstuStep';

/** The checked block parameters in the binding's argument order (after the op's own tensors). */
interface CheckedBlockParams {
  storages: BlockWeightStorages;
  named: Record<string, Tensor | null | undefined>;
  epsIn: number;
  epsOut: number;
}

/**
 * Validates a block's parameters against [D, H, dk, dv] (shapes, dtypes, eps) with errors naming
 * the op and the argument; the 9 weight storages come back in the order both bindings take them.
 */
export function checkBlockParams(op: string, p: LinearHstuStepParams, D: number, H: number, dk: number, dv: number, decayRequired: boolean): CheckedBlockParams {
  checkTensor(op, 'projWeight', p.projWeight, { dtype: 'f32', shape: [H * (2 * dv + 2 * dk), D] });
  checkTensor(op, 'outWeight', p.outWeight, { dtype: 'f32', shape: [D, H * dv] });
  const vectors: [string, Tensor | null | undefined, number][] = [
    ['projBias', p.projBias, H * (2 * dv + 2 * dk)], ['outBias', p.outBias, D], ['lnInWeight', p.lnInWeight, D], ['lnInBias', p.lnInBias, D],
    ['lnOutWeight', p.lnOutWeight, H * dv], ['lnOutBias', p.lnOutBias, H * dv], ['decay', p.decay, H],
  ];
  for (const [name, t, n] of vectors) if (t != null) checkTensor(op, name, t, { dtype: 'f32', shape: [n] });
  if (decayRequired && p.decay == null) throw new TypeError(`${op}: decay: expected a [${H}] tensor when writing, got ${String(p.decay)}`);
  const eps = (name: string, v: number | undefined): number => {
    const e = checkNumber(op, name, v ?? 1e-5);
    if (!(e > 0) || !Number.isFinite(e)) throw new RangeError(`${op}: ${name}: expected a positive finite number, got ${e}`);
    return e;
  };
  const named: Record<string, Tensor | null | undefined> = { projWeight: p.projWeight, outWeight: p.outWeight };
  for (const [name, t] of vectors) named[name] = t;
  const s = storageOf;
  return {
    storages: [s(p.lnInWeight), s(p.lnInBias), p.projWeight.storage, s(p.projBias), s(p.lnOutWeight), s(p.lnOutBias), p.outWeight.storage, s(p.outBias), s(p.decay)],
    named,
    epsIn: eps('lnInEps', p.lnInEps),
    epsOut: eps('lnOutEps', p.lnOutEps),
  };
}

export function checkParamsObject(op: string, p: unknown): number {
  if (typeof p !== 'object' || p === null) throw new TypeError(`${op}: params: expected an object, got ${p === null ? 'null' : typeof p}`);
  return checkNumber(op, 'dk', (p as { dk?: unknown }).dk as number, { integer: true, min: 1 });
}

/**
 * x [R, D] (one token per row) and state [R, H, dk, dv] → the block's output and, with
 * `write: true`, the states after the token's update; a read-out (`write: false`) leaves the state
 * as it is (the token adds nothing to it, as a write = 0 token in the packed encoder).
 */
export function linearHstuStep(x: Tensor, state: Tensor, p: LinearHstuStepParams, opts: { write: boolean }): LinearHstuStepResult {
  checkTensor(OP, 'x', x, { dtype: 'f32', rank: 2 });
  const [R, D] = x.shape;
  const dk = checkParamsObject(OP, p);
  checkTensor(OP, 'state', state, { dtype: 'f32', rank: 4 });
  const [Rs, H, dks, dv] = state.shape;
  if (Rs !== R || dks !== dk) throw new RangeError(`${OP}: state: expected shape [${R}, H, ${dk}, dv], got [${state.shape.join(', ')}]`);
  if (typeof opts !== 'object' || opts === null || typeof opts.write !== 'boolean') {
    throw new TypeError(`${OP}: options.write: expected a boolean, got ${opts === null || typeof opts !== 'object' ? String(opts) : typeof opts.write}`);
  }
  const { write } = opts;
  const c = checkBlockParams(OP, p, D, H, dk, dv, write);
  requireCpuInference(OP, { x, state, ...c.named }, x.device);
  const output = empty([R, D]);
  const stateOut = write ? empty([R, H, dk, dv]) : null;
  native().linearHstuStep(output.storage, storageOf(stateOut), x.storage, state.storage, ...c.storages, [R, D, H, dk, dv], c.epsIn, c.epsOut, write);
  return { output, state: stateOut ?? state };
}
