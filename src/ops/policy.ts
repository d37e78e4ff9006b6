// Clipped policy-gradient losses (DESIGN.md §4.3; formulas in research/papers.md §7.3): one fused
// native pass computes the loss, its gradient with respect to logp and the statistics. The
// gradient is saved for backward, which only scales it by the upstream gradient (in place), so
// forward + backward touch each token once. Variants (GRPO, DAPO, Dr.GRPO, ETR, CLPO,
// mode-balanced AFRL) are expressed through the options; `rl.presets` expands named ones.
import { native, type NativeStorage } from '../native';
import { record, needsGrad } from '../autograd';
import { Tensor, empty, formatShape } from '../tensor';
import { checkTensor, checkNumber, sameDevice } from './validate';

declare module '../native' {
  interface NativeBinding {
    /** Fused clipped loss; returns the statistics (see PgStat in native/include/qgs/pgloss.h). */
    pgLoss(
      loss: NativeStorage,
      dlogp: NativeStorage | null,
      logp: NativeStorage,
      oldLogp: NativeStorage,
      refLogp: NativeStorage | null,
      mask: NativeStorage | null,
      maskIsI32: boolean,
      advantages: NativeStorage,
      advPerToken: boolean,
      epsLowSeq: NativeStorage | null,
      epsHighSeq: NativeStorage | null,
      epsLow: number,
      epsHigh: number,
      dualClip: number,
      klBeta: number,
      klScale: NativeStorage | null,
      agg: number,
      normalizer: number,
      n: number,
      t: number,
    ): Float64Array;
    /** dst *= scale[0] on the tensors' device. */
    pgScaleInPlace(dst: NativeStorage, scale: NativeStorage, n: number): void;
    /** Fused output projection + clipped loss; returns the statistics followed by the workspace bytes. */
    fusedLinearPg(
      loss: NativeStorage,
      logpOut: NativeStorage | null,
      dhidden: NativeStorage | null,
      dweight: NativeStorage | null,
      hidden: NativeStorage,
      weight: NativeStorage,
      targets: NativeStorage,
      oldLogp: NativeStorage,
      refLogp: NativeStorage | null,
      mask: NativeStorage | null,
      maskIsI32: boolean,
      advantages: NativeStorage,
      advPerToken: boolean,
      epsLowSeq: NativeStorage | null,
      epsHighSeq: NativeStorage | null,
      epsLow: number,
      epsHigh: number,
      dualClip: number,
      klBeta: number,
      klScale: NativeStorage | null,
      agg: number,
      normalizer: number,
      n: number,
      t: number,
      temperature: number,
      sftMask: NativeStorage | null,
      sftWeight: number,
      sftNormalizer: number,
      entropyCoef: number,
      m: number,
      d: number,
      v: number,
      rowChunk: number,
      vocabChunk: number,
    ): Float64Array;
  }
}

/**
 * How per-token losses are reduced (loss = Σ_i w_i Σ_t m_it ℓ_it):
 * - `token-mean`: w = 1/normalizer; default normalizer = Σ mask (DAPO token-level loss, verl default).
 * - `seq-mean-token-mean`: w_i = 1/(L_i · normalizer), L_i = Σ_t m_it; default normalizer = number of
 *   rows with at least one token (original GRPO 1/G · 1/|o_i|).
 * - `seq-mean-token-sum`: w = 1/normalizer; default normalizer = N · T, i.e. Dr.GRPO's constant
 *   N · L_max with L_max = the padded length T.
 * For micro-batches, gradient accumulation or data-parallel shards, pass the *global* normalizer
 * (global token count, global number of sequences, or N_global · L_max): the parts' gradients then
 * sum to the full-batch gradient exactly.
 */
export type PolicyLossAgg = 'token-mean' | 'seq-mean-token-mean' | 'seq-mean-token-sum';

const AGG_CODES: Record<PolicyLossAgg, number> = { 'token-mean': 0, 'seq-mean-token-mean': 1, 'seq-mean-token-sum': 2 };

export interface ClippedPolicyLossOptions {
  /** Log-probs of the sampled tokens under the behaviour (old) policy, [N, T]. */
  oldLogp: Tensor;
  /** Log-probs under the reference policy, [N, T]; needed when klBeta > 0. */
  refLogp?: Tensor;
  /** [N, T], f32 or i32; nonzero marks response tokens. Default: every token. */
  mask?: Tensor;
  /** Per-sequence [N] or per-token [N, T] advantages (constants: no gradient). */
  advantages: Tensor;
  /** Lower clip ε_low: a number or per-sequence [N] tensor (ETR). Default 0.2. Range [0, 1]. */
  epsLow?: number | Tensor;
  /** Upper clip ε_high: a number or per-sequence [N] tensor. Default 0.2 (DAPO clip-higher: 0.28). */
  epsHigh?: number | Tensor;
  /** Dual clip c > 1 (verl default 3): for A < 0 the loss is capped at −c·A. Default off. */
  dualClip?: number;
  /** β of the k3 KL penalty to refLogp. Default 0 (no KL term). */
  klBeta?: number;
  /** Per-sequence KL scale s_i, [N] (CLPO: 0.5 for hard prompts). Default 1. */
  klScale?: Tensor;
  /** Aggregation, default 'token-mean'. */
  agg?: PolicyLossAgg;
  /** Explicit normalizer (> 0); see PolicyLossAgg. Default: the local value of the aggregation. */
  normalizer?: number;
}

/** Statistics of one call, over masked-in tokens (plain numbers, read back with the loss). */
export interface PolicyLossStats {
  /** Σ mask: number of tokens that entered the loss. */
  tokenCount: number;
  /** Fraction of tokens with r < 1 − ε_low and A < 0 (clipped from below). */
  clipFracLow: number;
  /** Fraction of tokens with r > 1 + ε_high and A > 0 (clipped from above). */
  clipFracHigh: number;
  /** Fraction of tokens where the dual clip −c·A was the active branch. */
  dualClipFrac: number;
  /** Mean k3 estimate of KL between the old and current policy: mean(1/r + log r − 1). */
  approxKl: number;
  /** Mean k3 KL to the reference policy (without β and s); 0 without a KL term. */
  refKl: number;
  /** Mean, min and max of the ratio r = exp(clamp(logp − oldLogp, −20, 20)); 1 when no tokens. */
  ratioMean: number;
  ratioMin: number;
  ratioMax: number;
  /** The clipped surrogate part of the loss and the β·KL part (loss = pgLoss + klLoss [+ SFT, entropy]). */
  pgLoss: number;
  klLoss: number;
  /** The normalizer that was used (explicit or the aggregation's default). */
  normalizer: number;
}

export interface PolicyLossResult {
  /** Scalar loss, differentiable in logp. */
  loss: Tensor;
  stats: PolicyLossStats;
}

const PG_OPTION_KEYS = ['oldLogp', 'refLogp', 'mask', 'advantages', 'epsLow', 'epsHigh', 'dualClip', 'klBeta', 'klScale', 'agg', 'normalizer'];

function checkKeys(op: string, opts: object, allowed: readonly string[]): void {
  for (const k of Object.keys(opts)) {
    if (!allowed.includes(k)) throw new Error(`${op}: unknown option '${k}' (expected one of ${allowed.join(', ')})`);
  }
}

interface PreparedPg {
  args: [
    NativeStorage,
    NativeStorage | null,
    NativeStorage | null,
    boolean,
    NativeStorage,
    boolean,
    NativeStorage | null,
    NativeStorage | null,
    number,
    number,
    number,
    number,
    NativeStorage | null,
    number,
    number,
    number,
    number,
  ];
  tensors: Record<string, Tensor | undefined>;
}

/** Host values of a small tensor, checked finite and within [lo, hi]. */
function checkValues(op: string, name: string, t: Tensor, lo: number, hi: number): void {
  const d = t.toFloat32Array();
  for (let i = 0; i < d.length; i++) {
    if (!Number.isFinite(d[i]) || d[i] < lo || d[i] > hi) {
      throw new RangeError(`${op}: ${name}: expected finite values in [${lo}, ${hi}], got ${d[i]} at index ${i}`);
    }
  }
}

/**
 * Validates the clipped-loss options against per-token shape `tok` ([N, T] or [M]) and sequence
 * count n, and returns the 17 binding arguments shared by both ops.
 */
function preparePg(op: string, opts: ClippedPolicyLossOptions, tok: readonly number[], n: number, t: number): PreparedPg {
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: opts: expected an options object, got ${opts === null ? 'null' : typeof opts}`);
  const oldLogp = checkTensor(op, 'oldLogp', opts.oldLogp, { dtype: 'f32', shape: tok });
  const refLogp = opts.refLogp === undefined ? undefined : checkTensor(op, 'refLogp', opts.refLogp, { dtype: 'f32', shape: tok });
  let mask: Tensor | undefined;
  if (opts.mask !== undefined) {
    mask = checkTensor(op, 'mask', opts.mask, { shape: tok });
  }
  const adv = checkTensor(op, 'advantages', opts.advantages, { dtype: 'f32' });
  const seqShape = [n];
  const advPerToken = adv.rank === tok.length && adv.shape.every((d, i) => d === tok[i]);
  const advPerSeq = adv.rank === 1 && adv.shape[0] === n;
  if (!advPerToken && !advPerSeq) {
    throw new Error(`${op}: advantages: expected shape ${formatShape(seqShape)} (per sequence) or ${formatShape(tok)} (per token), got ${formatShape(adv.shape)}`);
  }
  let epsLowT: Tensor | null = null;
  let epsHighT: Tensor | null = null;
  let epsLow = 0.2;
  let epsHigh = 0.2;
  if (opts.epsLow instanceof Tensor) {
    epsLowT = checkTensor(op, 'epsLow', opts.epsLow, { dtype: 'f32', shape: seqShape });
    checkValues(op, 'epsLow', epsLowT, 0, 1);
  } else if (opts.epsLow !== undefined) {
    epsLow = checkNumber(op, 'epsLow', opts.epsLow, { min: 0, max: 1 });
  }
  if (opts.epsHigh instanceof Tensor) {
    epsHighT = checkTensor(op, 'epsHigh', opts.epsHigh, { dtype: 'f32', shape: seqShape });
    checkValues(op, 'epsHigh', epsHighT, 0, 1e30);
  } else if (opts.epsHigh !== undefined) {
    epsHigh = checkNumber(op, 'epsHigh', opts.epsHigh, { min: 0 });
    if (!Number.isFinite(epsHigh)) throw new RangeError(`${op}: epsHigh: expected a finite number, got ${epsHigh}`);
  }
  let dualClip = 0;
  if (opts.dualClip !== undefined) {
    dualClip = checkNumber(op, 'dualClip', opts.dualClip);
    if (!(dualClip > 1) || !Number.isFinite(dualClip)) throw new RangeError(`${op}: dualClip: expected a finite number > 1, got ${dualClip}`);
  }
  const klBeta = opts.klBeta === undefined ? 0 : checkNumber(op, 'klBeta', opts.klBeta, { min: 0 });
  if (!Number.isFinite(klBeta)) throw new RangeError(`${op}: klBeta: expected a finite number, got ${klBeta}`);
  if (klBeta > 0 && refLogp === undefined) throw new Error(`${op}: refLogp: expected a ${formatShape(tok)} tensor when klBeta > 0, got none`);
  let klScale: Tensor | undefined;
  if (opts.klScale !== undefined) {
    klScale = checkTensor(op, 'klScale', opts.klScale, { dtype: 'f32', shape: seqShape });
    checkValues(op, 'klScale', klScale, 0, 1e30);
  }
  const agg = opts.agg ?? 'token-mean';
  if (!(agg in AGG_CODES)) {
    throw new Error(`${op}: agg: expected 'token-mean', 'seq-mean-token-mean' or 'seq-mean-token-sum', got ${JSON.stringify(agg)}`);
  }
  let normalizer = 0;
  if (opts.normalizer !== undefined) {
    normalizer = checkNumber(op, 'normalizer', opts.normalizer);
    if (!(normalizer > 0) || !Number.isFinite(normalizer)) throw new RangeError(`${op}: normalizer: expected a finite number > 0, got ${normalizer}`);
  }
  return {
    args: [
      oldLogp.storage,
      refLogp?.storage ?? null,
      mask?.storage ?? null,
      mask !== undefined && mask.dtype === 'i32',
      adv.storage,
      advPerToken,
      epsLowT?.storage ?? null,
      epsHighT?.storage ?? null,
      epsLow,
      epsHigh,
      dualClip,
      klBeta,
      klScale?.storage ?? null,
      AGG_CODES[agg],
      normalizer,
      n,
      t,
    ],
    tensors: { oldLogp, refLogp, mask, advantages: adv, epsLow: epsLowT ?? undefined, epsHigh: epsHighT ?? undefined, klScale },
  };
}

function toStats(s: Float64Array): PolicyLossStats {
  const tokens = s[0];
  const frac = (x: number): number => (tokens > 0 ? x / tokens : 0);
  return {
    tokenCount: tokens,
    clipFracLow: frac(s[1]),
    clipFracHigh: frac(s[2]),
    dualClipFrac: frac(s[3]),
    ratioMean: tokens > 0 ? s[4] / tokens : 1,
    ratioMin: tokens > 0 ? s[5] : 1,
    ratioMax: tokens > 0 ? s[6] : 1,
    approxKl: frac(s[7]),
    refKl: frac(s[8]),
    pgLoss: s[9],
    klLoss: s[10],
    normalizer: s[11],
  };
}

/**
 * Hands a gradient saved in the forward pass to the backward rule: scales it in place by the
 * upstream gradient and takes it out of the tape's owned list (the tape would otherwise dispose it
 * after backward while it is in use as a .grad). Valid because a tape runs backward once.
 */
function handOver(saved: Tensor, g: Tensor, owned: Tensor[]): Tensor {
  native().pgScaleInPlace(saved.storage, g.storage, saved.size);
  const k = owned.indexOf(saved);
  if (k >= 0) owned.splice(k, 1);
  return saved;
}

/**
 * Clipped policy-gradient loss (PPO/GRPO family) over token log-probs `logp [N, T]`:
 * `r = exp(clamp(logp − oldLogp, −20, 20))`, `ℓ = max(−A r, −A clip(r, 1−ε_low, 1+ε_high))`,
 * dual clip `min(ℓ, −c A)` for A < 0, plus `β s_i (exp(x) − x − 1)` with
 * `x = clamp(refLogp − logp, −20, 20)` (k3 KL), aggregated by `agg` with an explicit `normalizer`.
 * Differentiable in `logp` only. Forward and gradient are one fused native pass.
 */
export function clippedPolicyLoss(logp: Tensor, opts: ClippedPolicyLossOptions): PolicyLossResult {
  const op = 'clippedPolicyLoss';
  checkTensor(op, 'logp', logp, { dtype: 'f32', rank: 2 });
  if (opts !== null && typeof opts === 'object') checkKeys(op, opts, PG_OPTION_KEYS);
  const [n, t] = logp.shape;
  const p = preparePg(op, opts, logp.shape, n, t);
  const device = sameDevice(op, { logp, ...p.tensors });
  const loss = empty([], { device });
  const grad = needsGrad([logp]);
  const dlogp = grad ? empty(logp.shape, { device }) : null;
  let s: Float64Array;
  try {
    s = native().pgLoss(loss.storage, dlogp?.storage ?? null, logp.storage, ...p.args);
  } catch (e) {
    loss.dispose();
    dlogp?.dispose();
    throw e;
  }
  if (dlogp !== null) {
    const owned = [dlogp];
    record(op, loss, [logp], (g) => [handOver(dlogp, g, owned)], owned);
  }
  return { loss, stats: toStats(s) };
}

export interface FusedLinearPolicyLossOptions extends ClippedPolicyLossOptions {
  /** Sampling temperature τ: logp = log_softmax(hidden · weightᵀ / τ)[target]. Default 1. */
  temperature?: number;
  /**
   * Rows whose targets are expert (SFT) targets, same shape as targets (f32 or i32, nonzero = in).
   * They add `λ · (−Σ logp / Σ sftMask)` (AFRL mode-balanced term); set `mask` to 0 on them.
   */
  sftMask?: Tensor;
  /** λ of the SFT term. Default 0 (requires sftMask when > 0). */
  sftWeight?: number;
  /** Explicit SFT normalizer (global expert-token count for micro-batches). Default Σ sftMask. */
  sftNormalizer?: number;
  /** κ of the entropy bonus: loss −= κ · Agg(H) with the RL aggregation weights. Default 0. */
  entropyCoef?: number;
  /** Rows per chunk (default 512) and vocabulary entries per chunk (default 2048); tuning / tests. */
  chunkRows?: number;
  chunkVocab?: number;
}

export interface FusedLinearPolicyLossStats extends PolicyLossStats {
  /** Mean entropy of the (temperature-scaled) next-token distribution over RL tokens. */
  entropy: number;
  /** λ · SFT cross-entropy (0 without the SFT term), and the number of SFT rows. */
  sftLoss: number;
  sftTokens: number;
  /** Bytes of temporary native workspace the call allocated (the [M, V] logits never are). */
  workspaceBytes: number;
}

export interface FusedLinearPolicyLossResult {
  /** Scalar loss, differentiable in hidden and weight. */
  loss: Tensor;
  /** Per-token target log-probs (no gradient), shaped like targets. */
  logp: Tensor;
  stats: FusedLinearPolicyLossStats;
}

const FUSED_KEYS = [...PG_OPTION_KEYS, 'temperature', 'sftMask', 'sftWeight', 'sftNormalizer', 'entropyCoef', 'chunkRows', 'chunkVocab'];

/**
 * Fused output projection + clipped policy loss: per-token `logp = log_softmax(h Wᵀ / τ)[y]`, then
 * the clipped loss of clippedPolicyLoss, plus an optional SFT cross-entropy on expert rows (λ) and
 * an optional entropy bonus (κ), computed in row × vocabulary chunks with an online log-sum-exp:
 * the [M, V] logits are never materialised. `hidden` is [M, D] (one token per row: per-token
 * options are [M]) or [N, T, D] (per-token options [N, T], advantages [N] or [N, T]); `weight` is
 * [V, D]; `targets` i32 [M] or [N, T]. Differentiable in hidden and weight.
 */
export function fusedLinearPolicyLoss(hidden: Tensor, weight: Tensor, targets: Tensor, opts: FusedLinearPolicyLossOptions): FusedLinearPolicyLossResult {
  const op = 'fusedLinearPolicyLoss';
  checkTensor(op, 'hidden', hidden, { dtype: 'f32' });
  if (hidden.rank !== 2 && hidden.rank !== 3) throw new Error(`${op}: hidden: expected rank 2 [M, D] or 3 [N, T, D], got rank ${hidden.rank} (shape ${formatShape(hidden.shape)})`);
  const D = hidden.shape[hidden.rank - 1];
  checkTensor(op, 'weight', weight, { dtype: 'f32', rank: 2 });
  if (weight.shape[1] !== D) throw new Error(`${op}: weight: expected shape [V, ${D}] (D of hidden), got ${formatShape(weight.shape)}`);
  const V = weight.shape[0];
  if (V < 1) throw new Error(`${op}: weight: expected at least 1 row (vocabulary), got ${formatShape(weight.shape)}`);
  if (D < 1) throw new Error(`${op}: hidden: expected D >= 1, got ${formatShape(hidden.shape)}`);
  const tok = hidden.shape.slice(0, -1);
  checkTensor(op, 'targets', targets, { dtype: 'i32', shape: tok });
  if (opts !== null && typeof opts === 'object') checkKeys(op, opts, FUSED_KEYS);
  const n = tok[0];
  const t = tok.length === 2 ? tok[1] : 1;
  const M = n * t;
  const p = preparePg(op, opts, tok, n, t);
  const temperature = opts.temperature === undefined ? 1 : checkNumber(op, 'temperature', opts.temperature);
  if (!(temperature > 0) || !Number.isFinite(temperature)) throw new RangeError(`${op}: temperature: expected a finite number > 0, got ${temperature}`);
  const sftWeight = opts.sftWeight === undefined ? 0 : checkNumber(op, 'sftWeight', opts.sftWeight, { min: 0 });
  if (!Number.isFinite(sftWeight)) throw new RangeError(`${op}: sftWeight: expected a finite number, got ${sftWeight}`);
  let sftMask: Tensor | undefined;
  let sftOwned = false;
  if (opts.sftMask !== undefined) {
    const sm = checkTensor(op, 'sftMask', opts.sftMask, { shape: tok });
    if (sm.dtype === 'i32') {
      // The kernel reads an f32 mask; an i32 mask is converted once ([M] values, small).
      sftMask = empty(tok, { device: sm.device });
      sftMask.storage.copyFromHost(Float32Array.from(sm.toInt32Array(), (x) => (x !== 0 ? 1 : 0)));
      sftOwned = true;
    } else {
      sftMask = sm;
    }
  }
  if (sftWeight > 0 && sftMask === undefined) throw new Error(`${op}: sftMask: expected a ${formatShape(tok)} mask when sftWeight > 0, got none`);
  let sftNormalizer = 0;
  if (opts.sftNormalizer !== undefined) {
    sftNormalizer = checkNumber(op, 'sftNormalizer', opts.sftNormalizer);
    if (!(sftNormalizer > 0) || !Number.isFinite(sftNormalizer)) throw new RangeError(`${op}: sftNormalizer: expected a finite number > 0, got ${sftNormalizer}`);
  }
  const entropyCoef = opts.entropyCoef === undefined ? 0 : checkNumber(op, 'entropyCoef', opts.entropyCoef);
  if (!Number.isFinite(entropyCoef)) throw new RangeError(`${op}: entropyCoef: expected a finite number, got ${entropyCoef}`);
  const chunkRows = opts.chunkRows === undefined ? 0 : checkNumber(op, 'chunkRows', opts.chunkRows, { integer: true, min: 1 });
  const chunkVocab = opts.chunkVocab === undefined ? 0 : checkNumber(op, 'chunkVocab', opts.chunkVocab, { integer: true, min: 1 });
  const device = sameDevice(op, { hidden, weight, targets, sftMask, ...p.tensors });

  const loss = empty([], { device });
  const logp = empty(tok, { device });
  const gh = needsGrad([hidden]);
  const gw = needsGrad([weight]);
  const dh = gh ? empty(hidden.shape, { device }) : null;
  const dw = gw ? empty(weight.shape, { device }) : null;
  let s: Float64Array;
  try {
    s = native().fusedLinearPg(
      loss.storage,
      logp.storage,
      dh?.storage ?? null,
      dw?.storage ?? null,
      hidden.storage,
      weight.storage,
      targets.storage,
      ...p.args,
      temperature,
      sftMask?.storage ?? null,
      sftWeight,
      sftNormalizer,
      entropyCoef,
      M,
      D,
      V,
      chunkRows,
      chunkVocab,
    );
  } catch (e) {
    for (const x of [loss, logp, dh, dw]) x?.dispose();
    throw e;
  } finally {
    if (sftOwned) sftMask?.dispose();
  }
  if (dh !== null || dw !== null) {
    const owned = [dh, dw].filter((x): x is Tensor => x !== null);
    record(op, loss, [hidden, weight], (g) => [dh === null ? null : handOver(dh, g, owned), dw === null ? null : handOver(dw, g, owned)], owned);
  }
  const tokens = s[0];
  return {
    loss,
    logp,
    stats: {
      ...toStats(s),
      entropy: tokens > 0 ? s[12] / tokens : 0,
      sftLoss: s[13],
      sftTokens: s[14],
      workspaceBytes: s[15],
    },
  };
}
