// nn.HFGAttention (DESIGN.md §4.2, §5; research/papers.md §7.2 — our design, the paper's block could
// not be read): fuses the sequence state at the target query, the candidate item and the feature-group
// tokens, per candidate, with a small multi-head softmax attention.
//
//   X₀ = [context; item; group₁ … group_G] + typeEmbedding          [N, T = G + 2, D]
//   for each layer (pre-LayerNorm):
//     X ← X + W_o · groupedAttention(split_heads(LN₁(X) W_qkv), keyMask)
//     X ← X + FFN(LN₂(X))                                             FFN = Linear → act → Linear
//   Y = LN_out(X);  pooled = Y[:, 0] | masked mean over tokens | attention pooling (learned query)
//
// Missing groups (groupMask 0) are never attended to as keys and are left out of mean / attention
// pooling; the context and item tokens are always present, so no row is ever fully masked.
import { Tensor, randn, tensor, type Device } from '../tensor';
import { add, div, mul, mulScalar } from '../ops/elementwise';
import { broadcastTo, concat, reshape, split, transpose, narrow } from '../ops/movement';
import { sum } from '../ops/reduce';
import { groupedAttention, hfgContextLayer, GROUPED_ATTENTION_MAX_HEAD_DIM, GROUPED_ATTENTION_MAX_KEYS, type HfgContextLayerParams } from '../ops/hfg';
import { needsGrad } from '../autograd';
import { checkNumber, checkTensor, sameDevice } from '../ops/validate';
import { Module } from './module';
import { Linear } from './linear';
import { LayerNorm } from './layernorm';
import { MLP, type Activation } from './mlp';

export type HFGPooling = 'context' | 'mean' | 'attention';

export interface HFGAttentionOptions {
  /** Token width D (context, item and group tokens all have it). */
  dim: number;
  /** Number of feature groups G (tokens = G + 2 ≤ 64). */
  numGroups: number;
  /** Attention heads; D must be divisible by it and D / heads ≤ 128 (default 4, or 1 when D < 4). */
  heads?: number;
  /** Attention + FFN layers (default 1). */
  layers?: number;
  /** FFN hidden width (default 2·D). */
  ffnHidden?: number;
  /** FFN activation (default 'gelu'). */
  activation?: Activation;
  /** How the output is pooled (default 'context': the context token after the layers). */
  pooling?: HFGPooling;
  seed?: number;
  device?: Device;
}

const OP = 'HFGAttention';

class HFGLayer extends Module {
  readonly norm1: LayerNorm;
  readonly qkv: Linear;
  readonly out: Linear;
  readonly norm2: LayerNorm;
  readonly ffn: MLP;

  constructor(D: number, hidden: number, activation: Activation, seed: number | undefined, device: Device | undefined) {
    super();
    const s = (k: number): number | undefined => (seed === undefined ? undefined : seed + k);
    this.norm1 = this.registerModule('norm1', new LayerNorm(D, { device }));
    this.qkv = this.registerModule('qkv', new Linear(D, 3 * D, { seed: s(1), device }));
    this.out = this.registerModule('out', new Linear(D, D, { seed: s(2), device }));
    this.norm2 = this.registerModule('norm2', new LayerNorm(D, { device }));
    this.ffn = this.registerModule('ffn', new MLP(D, [hidden], D, { activation, seed: s(3), device }));
  }

  /** This layer (+ the output norm) as hfgContextLayer parameters; null if the FFN is not the plain two-layer kind. */
  contextParams(heads: number, outNorm: LayerNorm): HfgContextLayerParams | null {
    const [fc1, fc2] = this.ffn.layers;
    if (this.ffn.layers.length !== 2) return null;
    return {
      heads,
      ln1Weight: this.norm1.weight, ln1Bias: this.norm1.bias, eps1: this.norm1.eps,
      wqkv: this.qkv.weight, bqkv: this.qkv.bias, wo: this.out.weight, bo: this.out.bias,
      ln2Weight: this.norm2.weight, ln2Bias: this.norm2.bias, eps2: this.norm2.eps,
      w1: fc1.weight, b1: fc1.bias, w2: fc2.weight, b2: fc2.bias, activation: this.ffn.activation,
      lnOutWeight: outNorm.weight, lnOutBias: outNorm.bias, epsOut: outNorm.eps,
    };
  }
}

export class HFGAttention extends Module {
  readonly dim: number;
  readonly numGroups: number;
  readonly heads: number;
  readonly headDim: number;
  readonly pooling: HFGPooling;
  /** [G + 2, D]: token-type embeddings (context, item, one per group). */
  readonly typeEmbedding: Tensor;
  /** [heads, D / heads]: the learned pooling query (pooling 'attention' only). */
  readonly poolQuery: Tensor | null;
  private readonly blocks: HFGLayer[] = [];
  private readonly outNorm: LayerNorm;

  constructor(opts: HFGAttentionOptions) {
    super();
    if (typeof opts !== 'object' || opts === null) throw new TypeError(`${OP}: opts: expected an object with dim and numGroups, got ${opts === null ? 'null' : typeof opts}`);
    const D = (this.dim = checkNumber(OP, 'dim', opts.dim, { integer: true, min: 1 }));
    this.numGroups = checkNumber(OP, 'numGroups', opts.numGroups, { integer: true, min: 0, max: GROUPED_ATTENTION_MAX_KEYS - 2 });
    const H = (this.heads = checkNumber(OP, 'heads', opts.heads ?? (D >= 4 && D % 4 === 0 ? 4 : 1), { integer: true, min: 1 }));
    if (D % H !== 0) throw new RangeError(`${OP}: heads: expected a divisor of dim ${D}, got ${H}`);
    this.headDim = D / H;
    if (this.headDim > GROUPED_ATTENTION_MAX_HEAD_DIM) {
      throw new RangeError(`${OP}: heads: dim / heads must be <= ${GROUPED_ATTENTION_MAX_HEAD_DIM}, got ${D} / ${H} = ${this.headDim}`);
    }
    const L = checkNumber(OP, 'layers', opts.layers ?? 1, { integer: true, min: 1 });
    const hidden = checkNumber(OP, 'ffnHidden', opts.ffnHidden ?? 2 * D, { integer: true, min: 1 });
    const pooling = opts.pooling ?? 'context';
    if (pooling !== 'context' && pooling !== 'mean' && pooling !== 'attention') {
      throw new TypeError(`${OP}: pooling: expected 'context', 'mean' or 'attention', got ${JSON.stringify(pooling)}`);
    }
    this.pooling = pooling;
    const seed = opts.seed;
    const s = (k: number): number | undefined => (seed === undefined ? undefined : seed + k);
    this.typeEmbedding = this.registerParameter('typeEmbedding', randn([this.numGroups + 2, D], { std: 0.02, seed: s(7), device: opts.device }));
    for (let l = 0; l < L; l++) {
      this.blocks.push(this.registerModule(`layer${l}`, new HFGLayer(D, hidden, opts.activation ?? 'gelu', s(100 * (l + 1)), opts.device)));
    }
    this.outNorm = this.registerModule('outNorm', new LayerNorm(D, { device: opts.device }));
    this.poolQuery = pooling === 'attention'
      ? this.registerParameter('poolQuery', randn([H, this.headDim], { std: 1 / Math.sqrt(this.headDim), seed: s(11), device: opts.device }))
      : null;
  }

  /**
   * The module as hfgContextLayer parameters when it is one layer with context pooling (what fused
   * inference kernels built on that layer can run), else null.
   */
  singleLayerContextParams(): HfgContextLayerParams | null {
    if (this.blocks.length !== 1 || this.pooling !== 'context') return null;
    return this.blocks[0].contextParams(this.heads, this.outNorm);
  }

  /**
   * context [N, D] (sequence state at the target query), item [N, D] (candidate embedding),
   * groupTokens [N, G, D] and groupMask [N, G] (f32, 1 present / 0 missing; default all present)
   * → pooled [N, D] for the ranking head.
   */
  forward(context: Tensor, item: Tensor, groupTokens: Tensor, groupMask?: Tensor | null): Tensor {
    const D = this.dim;
    const G = this.numGroups;
    checkTensor(OP, 'context', context, { dtype: 'f32', rank: 2 });
    const N = context.shape[0];
    checkTensor(OP, 'context', context, { shape: [N, D] });
    checkTensor(OP, 'item', item, { dtype: 'f32', shape: [N, D] });
    checkTensor(OP, 'groupTokens', groupTokens, { dtype: 'f32', shape: [N, G, D] });
    if (groupMask != null) checkTensor(OP, 'groupMask', groupMask, { dtype: 'f32', shape: [N, G] });
    const device = sameDevice(OP, { context, item, groupTokens, groupMask });
    const T = G + 2;
    const H = this.heads;
    const dh = this.headDim;

    // Key mask [N, T] (context and item always present, then the groups), or null when every key is
    // present (no group mask given).
    const keyMask = groupMask != null && G > 0 ? concat([tensor(new Float32Array(N * 2).fill(1), [N, 2], { device }), groupMask], 1) : null;

    const parts = [reshape(context, [N, 1, D]), reshape(item, [N, 1, D])];
    if (G > 0) parts.push(groupTokens);
    let x = add(concat(parts, 1), this.typeEmbedding); // [N, T, D] + [T, D]

    // With context pooling only the context token's output of the last layer is read, so that layer
    // runs its query, output projection, FFN and norms for token 0 alone (keys and values still
    // cover every token). Exactly the same result and gradients, ~T times less work after the
    // attention — the bulk of the head's cost when ranking many candidates.
    const contextOnly = this.pooling === 'context';
    for (let l = 0; l < this.blocks.length; l++) {
      const b = this.blocks[l];
      const last = contextOnly && l === this.blocks.length - 1;
      if (last && device === 'cpu') {
        // Inference on the CPU (ranking many candidates): the whole layer as one fused kernel.
        const fused = b.contextParams(H, this.outNorm);
        if (fused !== null && !needsGrad([x, ...this.parameters()])) return hfgContextLayer(x, fused, { keyMask });
      }
      const qkv = b.qkv.forward(b.norm1.forward(x)); // [N, T, 3D]
      const heads = transpose(reshape(qkv, [N, T, 3, H, dh]), [2, 0, 3, 1, 4]); // [3, N, H, T, dh]
      const [q, k, v] = split(heads, 3, 0).map((t) => reshape(t, [N, H, T, dh]));
      if (last) {
        const a = groupedAttention(narrow(q, 2, 0, 1), k, v, { keyMask }); // [N, H, 1, dh]
        let x0 = reshape(narrow(x, 1, 0, 1), [N, D]);
        x0 = add(x0, b.out.forward(reshape(a, [N, D])));
        x0 = add(x0, b.ffn.forward(b.norm2.forward(x0)));
        return this.outNorm.forward(x0);
      }
      const a = groupedAttention(q, k, v, { keyMask });
      const merged = reshape(transpose(a, [0, 2, 1, 3]), [N, T, D]);
      x = add(x, b.out.forward(merged));
      x = add(x, b.ffn.forward(b.norm2.forward(x)));
    }
    const y = this.outNorm.forward(x);

    if (this.pooling === 'mean') {
      if (keyMask === null) return mulScalar(sum(y, 1), 1 / T);
      const m = reshape(keyMask, [N, T, 1]);
      return div(sum(mul(y, m), 1), sum(m, 1)); // count >= 2 (context + item)
    }
    // Attention pooling: one learned query per head over the present tokens.
    const pq = broadcastTo(reshape(this.poolQuery as Tensor, [1, H, 1, dh]), [N, H, 1, dh]);
    const yh = transpose(reshape(y, [N, T, H, dh]), [0, 2, 1, 3]); // [N, H, T, dh]
    return reshape(groupedAttention(pq, yh, yh, { keyMask }), [N, D]);
  }
}
