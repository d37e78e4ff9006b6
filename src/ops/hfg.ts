// HFG grouped attention (DESIGN.md §4.2): many small multi-head softmax attentions at once, one
// fused native kernel per direction (score → masked softmax → weighted sum; the backward pass
// recomputes the softmax instead of saving it).
import type { NativeStorage } from '../native';
import { native } from '../native';
import { record } from '../autograd';
import { Tensor, empty, formatShape, tensor } from '../tensor';
import { checkDisjoint, checkNumber, checkTensor, checkTypedArray, sameDevice } from './validate';
import { livePlan, requireCpuInference, storageOf } from './fused-inference';

declare module '../native' {
  interface NativeBinding {
    groupedAttentionForward(
      out: NativeStorage, q: NativeStorage, k: NativeStorage, v: NativeStorage, keyMask: NativeStorage | null,
      N: number, H: number, Tq: number, Tk: number, d: number, scale: number,
    ): void;
    groupedAttentionBackward(
      dq: NativeStorage, dk: NativeStorage, dv: NativeStorage, dout: NativeStorage,
      q: NativeStorage, k: NativeStorage, v: NativeStorage, keyMask: NativeStorage | null,
      N: number, H: number, Tq: number, Tk: number, d: number, scale: number,
    ): void;
  }
}

/** Most keys per attention set (G + 2 tokens in HFG-Attention). */
export const GROUPED_ATTENTION_MAX_KEYS = 64;
/** Largest per-head width. */
export const GROUPED_ATTENTION_MAX_HEAD_DIM = 128;

export interface GroupedAttentionOptions {
  /**
   * f32 `[N, Tk]`: 1 = key present, 0 = missing (e.g. a feature group absent for that candidate).
   * Any nonzero value counts as present. A row with every key missing yields zeros and zero
   * gradients. Not differentiated.
   */
  keyMask?: Tensor | null;
  /** Score scale; defaults to 1/√d. Must be finite. */
  scale?: number;
}

const OP = 'groupedAttention';

/**
 * Softmax attention over small key sets for many independent rows:
 * `out[n,h,i] = Σ_j softmax_j(scale·⟨q[n,h,i], k[n,h,j]⟩ | keyMask[n,j] ≠ 0) · v[n,h,j]`.
 *
 * Shapes: `q [N, H, Tq, d]`, `k, v [N, H, Tk, d]` → `out [N, H, Tq, d]`; `1 ≤ Tk ≤ 64`, `1 ≤ d ≤ 128`.
 * Differentiable in q, k and v.
 */
export function groupedAttention(q: Tensor, k: Tensor, v: Tensor, opts: GroupedAttentionOptions = {}): Tensor {
  checkTensor(OP, 'q', q, { dtype: 'f32', rank: 4 });
  const [N, H, Tq, d] = q.shape;
  checkTensor(OP, 'k', k, { dtype: 'f32', rank: 4 });
  const Tk = k.shape[2];
  checkTensor(OP, 'k', k, { shape: [N, H, -1, d] });
  checkTensor(OP, 'v', v, { dtype: 'f32', shape: [N, H, Tk, d] });
  if (typeof opts !== 'object' || opts === null) throw new TypeError(`${OP}: opts: expected an object, got ${opts === null ? 'null' : typeof opts}`);
  const mask = opts.keyMask ?? null;
  if (mask !== null) checkTensor(OP, 'keyMask', mask, { dtype: 'f32', shape: [N, Tk] });
  sameDevice(OP, { q, k, v, keyMask: mask });
  if (H < 1 || Tq < 1) throw new Error(`${OP}: q: expected H >= 1 and Tq >= 1, got shape ${formatShape(q.shape)}`);
  if (Tk < 1 || Tk > GROUPED_ATTENTION_MAX_KEYS) {
    throw new RangeError(`${OP}: k: expected 1 <= Tk <= ${GROUPED_ATTENTION_MAX_KEYS} keys (dim 2), got ${Tk} (shape ${formatShape(k.shape)})`);
  }
  if (d < 1 || d > GROUPED_ATTENTION_MAX_HEAD_DIM) {
    throw new RangeError(`${OP}: q: expected head dim 1 <= d <= ${GROUPED_ATTENTION_MAX_HEAD_DIM} (dim 3), got ${d} (shape ${formatShape(q.shape)})`);
  }
  const scale = opts.scale === undefined ? 1 / Math.sqrt(d) : checkNumber(OP, 'scale', opts.scale);
  if (!Number.isFinite(scale)) throw new RangeError(`${OP}: scale: expected a finite number, got ${scale}`);

  const out = empty([N, H, Tq, d], { device: q.device });
  const maskStorage = mask === null ? null : mask.storage;
  native().groupedAttentionForward(out.storage, q.storage, k.storage, v.storage, maskStorage, N, H, Tq, Tk, d, scale);

  return record(OP, out, [q, k, v], (g) => {
    const dq = empty(q.shape, { device: q.device });
    const dk = empty(k.shape, { device: k.device });
    const dv = empty(v.shape, { device: v.device });
    // The mask is read again here (not cloned): it must outlive backward(), like the inputs.
    native().groupedAttentionBackward(
      dq.storage, dk.storage, dv.storage, g.storage, q.storage, k.storage, v.storage,
      mask === null ? null : mask.storage, N, H, Tq, Tk, d, scale,
    );
    return [dq, dk, dv];
  });
}

declare module '../native' {
  interface NativeBinding {
    hfgContextLayerForward(
      out: NativeStorage, x: NativeStorage, keyMask: NativeStorage | null,
      ln1W: NativeStorage | null, ln1B: NativeStorage | null, wqkv: NativeStorage, bqkv: NativeStorage | null,
      wo: NativeStorage, bo: NativeStorage | null, ln2W: NativeStorage | null, ln2B: NativeStorage | null,
      w1: NativeStorage, b1: NativeStorage | null, w2: NativeStorage, b2: NativeStorage | null,
      lnOutW: NativeStorage | null, lnOutB: NativeStorage | null,
      N: number, T: number, D: number, H: number, F: number, eps1: number, eps2: number, epsOut: number, activation: number,
    ): void;
  }
}

/** Activations the fused layer supports (the nn.MLP ones). */
export const HFG_CONTEXT_LAYER_ACTIVATIONS = ['relu', 'gelu', 'silu', 'tanh'] as const;
export type HfgContextLayerActivation = (typeof HFG_CONTEXT_LAYER_ACTIVATIONS)[number];

/** Parameters of one pre-LayerNorm HFG layer (PyTorch layout: weights [out, in]). */
export interface HfgContextLayerParams {
  heads: number;
  ln1Weight?: Tensor | null;
  ln1Bias?: Tensor | null;
  /** [3D, D]: query, key and value projections stacked. */
  wqkv: Tensor;
  bqkv?: Tensor | null;
  wo: Tensor;
  bo?: Tensor | null;
  ln2Weight?: Tensor | null;
  ln2Bias?: Tensor | null;
  /** [F, D] and [D, F]: the FFN. */
  w1: Tensor;
  b1?: Tensor | null;
  w2: Tensor;
  b2?: Tensor | null;
  lnOutWeight?: Tensor | null;
  lnOutBias?: Tensor | null;
  eps1?: number;
  eps2?: number;
  epsOut?: number;
  activation?: HfgContextLayerActivation;
}

const OP_LAYER = 'hfgContextLayer';

interface CheckedLayer {
  H: number;
  F: number;
  eps: [number, number, number];
  activation: number;
  named: Record<string, Tensor | null | undefined>;
}

// Validates layer parameters for token width D (op = the calling op's name for messages).
function checkLayerParams(op: string, p: HfgContextLayerParams, D: number): CheckedLayer {
  if (typeof p !== 'object' || p === null) throw new TypeError(`${op}: params: expected an object, got ${p === null ? 'null' : typeof p}`);
  const H = checkNumber(op, 'heads', p.heads, { integer: true, min: 1 });
  if (D % H !== 0 || D / H > GROUPED_ATTENTION_MAX_HEAD_DIM) {
    throw new RangeError(`${op}: heads: expected a divisor of D = ${D} with D / heads <= ${GROUPED_ATTENTION_MAX_HEAD_DIM}, got ${H}`);
  }
  checkTensor(op, 'wqkv', p.wqkv, { dtype: 'f32', shape: [3 * D, D] });
  checkTensor(op, 'wo', p.wo, { dtype: 'f32', shape: [D, D] });
  checkTensor(op, 'w1', p.w1, { dtype: 'f32', rank: 2 });
  const F = p.w1.shape[0];
  checkTensor(op, 'w1', p.w1, { shape: [F, D] });
  checkTensor(op, 'w2', p.w2, { dtype: 'f32', shape: [D, F] });
  const vectors: [string, Tensor | null | undefined, number][] = [
    ['ln1Weight', p.ln1Weight, D], ['ln1Bias', p.ln1Bias, D], ['bqkv', p.bqkv, 3 * D], ['bo', p.bo, D], ['ln2Weight', p.ln2Weight, D],
    ['ln2Bias', p.ln2Bias, D], ['b1', p.b1, F], ['b2', p.b2, D], ['lnOutWeight', p.lnOutWeight, D], ['lnOutBias', p.lnOutBias, D],
  ];
  for (const [name, t, n] of vectors) if (t != null) checkTensor(op, name, t, { dtype: 'f32', shape: [n] });
  const act = p.activation ?? 'gelu';
  const activation = HFG_CONTEXT_LAYER_ACTIVATIONS.indexOf(act);
  if (activation < 0) throw new TypeError(`${op}: activation: expected one of ${HFG_CONTEXT_LAYER_ACTIVATIONS.join(', ')}, got ${JSON.stringify(act)}`);
  const eps = (name: string, v: number | undefined): number => {
    const e = checkNumber(op, name, v ?? 1e-5);
    if (!(e > 0) || !Number.isFinite(e)) throw new RangeError(`${op}: ${name}: expected a positive finite number, got ${e}`);
    return e;
  };
  const named: Record<string, Tensor | null | undefined> = { wqkv: p.wqkv, wo: p.wo, w1: p.w1, w2: p.w2 };
  for (const [name, t] of vectors) named[name] = t;
  return { H, F, eps: [eps('eps1', p.eps1), eps('eps2', p.eps2), eps('epsOut', p.epsOut)], activation, named };
}

type S = NativeStorage;
type OptS = NativeStorage | null;
/** The layer's 14 storages in the bindings' argument order (nullable ones may be null). */
const layerStorages = (p: HfgContextLayerParams): [OptS, OptS, S, OptS, S, OptS, OptS, OptS, S, OptS, S, OptS, OptS, OptS] => {
  const s = storageOf;
  return [s(p.ln1Weight), s(p.ln1Bias), p.wqkv.storage, s(p.bqkv), p.wo.storage, s(p.bo), s(p.ln2Weight), s(p.ln2Bias),
    p.w1.storage, s(p.b1), p.w2.storage, s(p.b2), s(p.lnOutWeight), s(p.lnOutBias)];
};

/**
 * One HFG-Attention layer read out at token 0, fused (inference only, CPU): for tokens `x [N, T, D]`,
 * `y = LN1(x)`; token 0's query attends over all T tokens' keys/values (H heads, masked by
 * `keyMask [N, T]`, scale 1/√(D/H)); `x1 = x₀ + Wo·a + bo`; `x2 = x1 + W2·act(W1·LN2(x1) + b1) + b2`;
 * returns `LNout(x2)` `[N, D]`. The same function as nn.HFGAttention's last layer with context
 * pooling, without the intermediate tensors. Not differentiable: throws if a gradient would be needed.
 */
export function hfgContextLayer(x: Tensor, p: HfgContextLayerParams, opts: { keyMask?: Tensor | null } = {}): Tensor {
  checkTensor(OP_LAYER, 'x', x, { dtype: 'f32', rank: 3 });
  const [N, T, D] = x.shape;
  const c = checkLayerParams(OP_LAYER, p, D);
  if (T < 1 || T > GROUPED_ATTENTION_MAX_KEYS) throw new RangeError(`${OP_LAYER}: x: expected 1 <= T <= ${GROUPED_ATTENTION_MAX_KEYS} tokens (dim 1), got shape ${formatShape(x.shape)}`);
  const mask = opts.keyMask ?? null;
  if (mask !== null) checkTensor(OP_LAYER, 'keyMask', mask, { dtype: 'f32', shape: [N, T] });
  requireCpuInference(OP_LAYER, { x, keyMask: mask, ...c.named }, x.device);
  const out = empty([N, D]);
  native().hfgContextLayerForward(
    out.storage, x.storage, storageOf(mask), ...layerStorages(p), N, T, D, c.H, c.F, c.eps[0], c.eps[1], c.eps[2], c.activation,
  );
  return out;
}

/** Parameters of the fused HFG ranking head (PyTorch layout: weights [out, in]). */
export interface HfgRankHeadParams {
  /** The HFG layer (one layer, context pooling). */
  layer: HfgContextLayerParams;
  /** [G + 2, D]: token-type embeddings (context, item, one per group). */
  typeEmbedding: Tensor;
  /** [G·D, F]: the feature projection of all groups (group g's token is rows g·D .. (g+1)·D). */
  groupWeight: Tensor | null;
  groupBias?: Tensor | null;
  /** [M, 3D] and [D, M]: the ReLU match MLP over [ctx; item; ctx ⊙ item]. */
  matchW1: Tensor;
  matchB1?: Tensor | null;
  matchW2: Tensor;
  matchB2?: Tensor | null;
  /** [1, 2D + F]: the logit over [pooled; match; features], and its bias. */
  logitWeight: Tensor;
  logitBias?: number;
  /**
   * Candidate n's item row is `item[itemIds[n]]`: `item` is then a `[V, D]` table (serving's
   * precomputed catalogue), read in place instead of gathered into an `[N, D]` copy first.
   */
  itemIds?: Int32Array | null;
}

const OP_HEAD = 'hfgRankHead';

/**
 * The HFG ranking head, fused (inference only, CPU): for candidate n of request req[n],
 * tokens `[ctx[req[n]]; item[n]; (groupWeight·f_n + groupBias) split into G tokens] + typeEmbedding`
 * → `pooled` = hfgContextLayer(tokens); `match = relu(W2 relu(W1 [ctx; item; ctx ⊙ item] + b1) + b2)`;
 * returns logits `[N] = logitWeight · [pooled; match; f_n] + logitBias`. Shapes: ctx `[R, D]`, req
 * `[N]` (values < R), item `[N, D]` (or `[V, D]` with `p.itemIds`), features `[N, F]`. One native call for the whole batch; the same
 * function as the composed modules (qgs RankingHead with HFG fusion), without their ~40 ops.
 */
export function hfgRankHead(ctx: Tensor, req: Int32Array, item: Tensor, features: Tensor, p: HfgRankHeadParams): Tensor {
  checkTensor(OP_HEAD, 'ctx', ctx, { dtype: 'f32', rank: 2 });
  const D = ctx.shape[1];
  if (typeof p !== 'object' || p === null) throw new TypeError(`${OP_HEAD}: params: expected an object, got ${p === null ? 'null' : typeof p}`);
  const call = checkHeadCall(OP_HEAD, ctx, req, item, features, p.itemIds, D);
  // A plan made and released within the call (HfgRankHeadPlan keeps one across calls).
  const handle = createPlan(OP_HEAD, p, D, call.F, { ctx, item, features }, ctx.device);
  try {
    return runHead(call, (out, reqS, idsS) => {
      native().rankHeadPlanForward(handle, out, ctx.storage, reqS, item.storage, storageOf(features), [call.N, call.R, call.V], idsS);
    });
  } finally {
    native().rankHeadPlanRelease(handle);
  }
}

/** The per-call arguments of the head, checked: candidate count N, requests R, table rows V (0 without ids), features F. */
interface HeadCall {
  N: number;
  R: number;
  V: number;
  F: number;
  req: Int32Array;
  ids: Int32Array | null;
}

function checkHeadCall(op: string, ctx: Tensor, req: Int32Array, item: Tensor, features: Tensor, itemIds: Int32Array | null | undefined, D: number): HeadCall {
  checkTensor(op, 'ctx', ctx, { dtype: 'f32', shape: [-1, D] });
  checkTensor(op, 'item', item, { dtype: 'f32', shape: [-1, D] });
  const ids = itemIds ?? null;
  if (ids !== null && !(ids instanceof Int32Array)) throw new TypeError(`${op}: itemIds: expected an Int32Array of item table rows, got ${typeof ids}`);
  const N = ids === null ? item.shape[0] : ids.length;
  const V = ids === null ? 0 : item.shape[0];
  if (!(req instanceof Int32Array) || req.length !== N) throw new TypeError(`${op}: req: expected an Int32Array of ${N} request indices, got ${req instanceof Int32Array ? `length ${req.length}` : typeof req}`);
  checkTensor(op, 'features', features, { dtype: 'f32', shape: [N, -1] });
  return { N, R: ctx.shape[0], V, F: features.shape[1], req, ids };
}

/** The head's weights, checked for width D and F feature columns, in the bindings' argument order. */
interface CheckedHeadParams {
  G: number;
  H: number;
  FF: number;
  M: number;
  named: Record<string, Tensor | null | undefined>;
  storages: [S, OptS, OptS, S, OptS, S, OptS, S, ...ReturnType<typeof layerStorages>];
  scalars: [number, number, number, number, number];
}

function checkHeadParams(op: string, p: Omit<HfgRankHeadParams, 'itemIds'>, D: number, F: number): CheckedHeadParams {
  const c = checkLayerParams(op, p.layer, D);
  checkTensor(op, 'typeEmbedding', p.typeEmbedding, { dtype: 'f32', shape: [-1, D] });
  const G = p.typeEmbedding.shape[0] - 2;
  if (G < 0 || G + 2 > GROUPED_ATTENTION_MAX_KEYS) throw new RangeError(`${op}: typeEmbedding: expected 2 .. ${GROUPED_ATTENTION_MAX_KEYS} rows (G + 2 tokens), got ${G + 2}`);
  if (p.groupWeight != null) checkTensor(op, 'groupWeight', p.groupWeight, { dtype: 'f32', shape: [G * D, F] });
  else if (G > 0 && F > 0) throw new TypeError(`${op}: groupWeight: expected a [${G * D}, ${F}] tensor for ${G} groups, got null`);
  if (p.groupBias != null) checkTensor(op, 'groupBias', p.groupBias, { dtype: 'f32', shape: [G * D] });
  checkTensor(op, 'matchW1', p.matchW1, { dtype: 'f32', shape: [-1, 3 * D] });
  const M = p.matchW1.shape[0];
  if (p.matchB1 != null) checkTensor(op, 'matchB1', p.matchB1, { dtype: 'f32', shape: [M] });
  checkTensor(op, 'matchW2', p.matchW2, { dtype: 'f32', shape: [D, M] });
  if (p.matchB2 != null) checkTensor(op, 'matchB2', p.matchB2, { dtype: 'f32', shape: [D] });
  checkTensor(op, 'logitWeight', p.logitWeight, { dtype: 'f32', shape: [1, 2 * D + F] });
  const logitBias = checkNumber(op, 'logitBias', p.logitBias ?? 0);
  if (!Number.isFinite(logitBias)) throw new RangeError(`${op}: logitBias: expected a finite number, got ${logitBias}`);
  const s = storageOf;
  return {
    G, H: c.H, FF: c.F, M,
    named: {
      typeEmbedding: p.typeEmbedding, groupWeight: p.groupWeight, groupBias: p.groupBias, matchW1: p.matchW1,
      matchB1: p.matchB1, matchW2: p.matchW2, matchB2: p.matchB2, logitWeight: p.logitWeight, ...c.named,
    },
    storages: [
      p.typeEmbedding.storage, s(p.groupWeight), s(p.groupBias), p.matchW1.storage, s(p.matchB1), p.matchW2.storage, s(p.matchB2),
      p.logitWeight.storage, ...layerStorages(p.layer),
    ],
    scalars: [c.eps[0], c.eps[1], c.eps[2], logitBias, c.activation],
  };
}

/** Runs one head call with its index arrays as native storages; returns the logits [N]. */
function runHead(call: HeadCall, fn: (out: NativeStorage, req: NativeStorage, ids: NativeStorage | null) => void): Tensor {
  const out = empty([call.N]);
  const reqT = tensor(call.req, [call.N], { dtype: 'i32' });
  const idsT = call.ids === null ? null : tensor(call.ids, [call.N], { dtype: 'i32' });
  try {
    fn(out.storage, reqT.storage, storageOf(idsT));
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    reqT.dispose();
    idsT?.dispose();
  }
  return out;
}

declare module '../native' {
  interface NativeBinding {
    rankHeadPlanCreate(
      typeEmb: NativeStorage, groupW: NativeStorage | null, groupB: NativeStorage | null, matchW1: NativeStorage,
      matchB1: NativeStorage | null, matchW2: NativeStorage, matchB2: NativeStorage | null, logitW: NativeStorage,
      ln1W: NativeStorage | null, ln1B: NativeStorage | null, wqkv: NativeStorage, bqkv: NativeStorage | null,
      wo: NativeStorage, bo: NativeStorage | null, ln2W: NativeStorage | null, ln2B: NativeStorage | null,
      w1: NativeStorage, b1: NativeStorage | null, w2: NativeStorage, b2: NativeStorage | null,
      lnOutW: NativeStorage | null, lnOutB: NativeStorage | null,
      sizes: number[], eps1: number, eps2: number, epsOut: number, logitB: number, activation: number,
    ): RankHeadPlanHandle;
    rankHeadPlanForward(
      plan: RankHeadPlanHandle, logits: NativeStorage, ctx: NativeStorage, req: NativeStorage, item: NativeStorage,
      feats: NativeStorage | null, sizes: number[], itemIds: NativeStorage | null,
    ): void;
    rankHeadPlanScore(
      plan: RankHeadPlanHandle, logits: Float32Array, ctx: Float32Array, req: Int32Array, itemTable: NativeStorage, itemIds: Int32Array,
      feats: Float32Array | null, sizes: number[],
    ): void;
    rankHeadPlanRelease(plan: RankHeadPlanHandle): void;
  }
}

/** Checks the head's weights (and the call's tensors in `inputs`) and prepares them natively. */
function createPlan(op: string, p: Omit<HfgRankHeadParams, 'itemIds'>, D: number, F: number, inputs: Record<string, Tensor>, device: string): RankHeadPlanHandle {
  const h = checkHeadParams(op, p, D, F);
  requireCpuInference(op, { ...inputs, ...h.named }, device);
  return native().rankHeadPlanCreate(...h.storages, [D, h.G, h.H, h.FF, F, h.M], ...h.scalars);
}

/** The native plan: an opaque handle (a tagged External). */
declare const rankHeadPlanBrand: unique symbol;
type RankHeadPlanHandle = { readonly [rankHeadPlanBrand]: true };

const OP_PLAN = 'HfgRankHeadPlan';

/**
 * hfgRankHead with its model side prepared once: the weights are copied, transposed, padded and (for
 * block-diagonal group projections) folded into feature space when the plan is made, so each call
 * does only the per-request and per-candidate work — serving's case, where the weights are frozen
 * (~0.1 ms of a 1,000-candidate call was this preparation). Later changes to the weight tensors do
 * not reach the plan: make a new one. CPU, inference only, like hfgRankHead; `run` computes exactly
 * what hfgRankHead computes with the same parameters. Call dispose() to free the copies early
 * (otherwise the garbage collector does).
 */
export class HfgRankHeadPlan {
  /** Token width D and feature columns F the plan was made for. */
  readonly dim: number;
  readonly features: number;
  private handle: RankHeadPlanHandle | null;

  constructor(p: Omit<HfgRankHeadParams, 'itemIds'>) {
    if (typeof p !== 'object' || p === null) throw new TypeError(`${OP_PLAN}: params: expected an object, got ${p === null ? 'null' : typeof p}`);
    checkTensor(OP_PLAN, 'typeEmbedding', p.typeEmbedding, { dtype: 'f32', rank: 2 });
    const D = (this.dim = p.typeEmbedding.shape[1]);
    checkTensor(OP_PLAN, 'logitWeight', p.logitWeight, { dtype: 'f32', rank: 2 });
    const F = (this.features = p.logitWeight.shape[1] - 2 * D);
    if (F < 0) throw new RangeError(`${OP_PLAN}: logitWeight: expected [1, 2·${D} + F] (F >= 0 feature columns), got shape ${formatShape(p.logitWeight.shape)}`);
    this.handle = createPlan(OP_PLAN, p, D, F, {}, p.typeEmbedding.device);
  }

  /** Logits [N] for ctx [R, D], req [N], item [N, D] (or a [V, D] table with itemIds) and features [N, F]. */
  run(ctx: Tensor, req: Int32Array, item: Tensor, features: Tensor, itemIds?: Int32Array | null): Tensor {
    const handle = livePlan(`${OP_PLAN}.run`, this.handle);
    const call = checkHeadCall(`${OP_PLAN}.run`, ctx, req, item, features, itemIds, this.dim);
    if (call.F !== this.features) throw new RangeError(`${OP_PLAN}.run: features: expected ${this.features} columns (the plan's), got shape ${formatShape(features.shape)}`);
    requireCpuInference(`${OP_PLAN}.run`, { ctx, item, features }, ctx.device);
    return runHead(call, (out, reqS, idsS) => {
      native().rankHeadPlanForward(handle, out, ctx.storage, reqS, item.storage, storageOf(features), [call.N, call.R, call.V], idsS);
    });
  }

  /**
   * The serving form of run() with the items read from a catalogue table: plain host arrays in and
   * out (no tensors made and freed per request). ctx [R × D] context rows, req [N] each candidate's
   * request, itemTable [V, D], itemIds [N] its table rows, features [N × F]; writes the logits [N].
   */
  score(logits: Float32Array, ctx: Float32Array, req: Int32Array, itemTable: Tensor, itemIds: Int32Array, features: Float32Array): void {
    const op = `${OP_PLAN}.score`;
    const handle = livePlan(op, this.handle);
    const D = this.dim;
    if (!(req instanceof Int32Array)) throw new TypeError(`${op}: req: expected an Int32Array of request indices, got ${typeof req}`);
    const N = req.length;
    if (!(ctx instanceof Float32Array) || ctx.length === 0 || ctx.length % D !== 0) {
      throw new TypeError(`${op}: ctx: expected a Float32Array of R × ${D} context values (R >= 1), got ${ctx instanceof Float32Array ? `length ${ctx.length}` : typeof ctx}`);
    }
    checkTypedArray(op, 'logits', logits, N, 'Float32Array', `${N} candidates`);
    checkTypedArray(op, 'itemIds', itemIds, N, 'Int32Array', `${N} candidates`);
    checkTypedArray(op, 'features', features, N * this.features, 'Float32Array', `${N} candidates × ${this.features} features`);
    checkTensor(op, 'itemTable', itemTable, { dtype: 'f32', shape: [-1, D] });
    requireCpuInference(op, { itemTable }, itemTable.device);
    checkDisjoint(op, { ctx, req, itemIds, features }, { logits });
    native().rankHeadPlanScore(handle, logits, ctx, req, itemTable.storage, itemIds, this.features > 0 ? features : null, [N, ctx.length / D, itemTable.shape[0]]);
  }

  /** Frees the prepared weights now; run() and score() then throw. Idempotent. */
  dispose(): void {
    if (this.handle !== null) native().rankHeadPlanRelease(this.handle);
    this.handle = null;
  }
}
