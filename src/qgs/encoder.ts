// The QGS sequence encoder: N HSTU-style blocks over a packed (jagged) token batch, with either the
// causal linear recurrence (Linear HSTU, O(L)) or quadratic pointwise HSTU attention (baseline).
// Block (research/papers.md §7.1): LN → SiLU(W1 x) split into U, V, Q, K → mixing → LN → ⊙ U →
// W2 → dropout → + x. Read-out tokens carry write = 0: their V is zeroed (they add nothing to the
// state / to later tokens' attention) and, for the recurrence, their decay is 1, so a read-out is a
// pure read of the state — which is what lets serving score from a cached state without a step.
import { Tensor, tensor, zeros } from '../tensor';
import { needsGrad } from '../autograd';
import * as ops from '../ops';
import { Module } from '../nn/module';
import { Linear } from '../nn/linear';
import { LayerNorm } from '../nn/layernorm';
import { Dropout } from '../nn/dropout';
import { hstuProject, hstuFinish, type HstuHeads } from '../nn/hstu-parts';

export type EncoderKind = 'linear' | 'quadratic';

export interface EncoderConfig {
  kind: EncoderKind;
  dim: number;
  layers: number;
  heads: number;
  /** Per-head key/query width. */
  dk: number;
  /** Per-head value width. */
  dv: number;
  dropout: number;
  /** Initial per-head decay γ of the recurrence (learned through a sigmoid). */
  decayInit: number;
  seed: number;
}

/** Everything the block needs about the packed batch. */
export interface PackedBatch {
  /** [users + 1] token offsets. */
  offsets: Int32Array;
  /** [tokens, 1] 1 for tokens that write, 0 for read-out tokens. */
  write: Tensor;
  /** [tokens, 1] 1 − write. */
  readOnly: Tensor;
}

export function packBatch(offsets: Int32Array, write: Float32Array): PackedBatch {
  const ro = Float32Array.from(write, (w) => 1 - w);
  return { offsets, write: tensor(write, [write.length, 1]), readOnly: tensor(ro, [ro.length, 1]) };
}

function logit(p: number): number {
  return Math.log(p / (1 - p));
}

export class EncoderBlock extends Module {
  readonly inNorm: LayerNorm;
  readonly outNorm: LayerNorm;
  readonly proj: Linear;
  readonly out: Linear;
  readonly drop: Dropout;
  /** Per-head decay logits (linear kind only). */
  readonly decayLogit: Tensor | null;
  /** Head sizes in the shared block parts' terms. */
  private readonly headShape: HstuHeads;

  constructor(readonly cfg: EncoderConfig, index: number) {
    super();
    const { dim, heads, dk, dv } = cfg;
    const seed = cfg.seed + 101 * index;
    this.headShape = { heads, dqk: dk, dv };
    this.inNorm = this.registerModule('inNorm', new LayerNorm(dim));
    this.proj = this.registerModule('proj', new Linear(dim, heads * (2 * dv + 2 * dk), { seed }));
    this.outNorm = this.registerModule('outNorm', new LayerNorm(heads * dv));
    this.out = this.registerModule('out', new Linear(heads * dv, dim, { seed: seed + 1 }));
    this.drop = this.registerModule('drop', new Dropout(cfg.dropout, { seed: seed + 2 }));
    this.decayLogit =
      cfg.kind === 'linear' ? this.registerParameter('decayLogit', tensor(new Float32Array(heads).fill(logit(cfg.decayInit)), [heads])) : null;
  }

  /** Splits the SiLU projection into U [T, H·dv], V [T, H, dv], Q [T, H, dk], K [T, H, dk]. */
  private project(x: Tensor): { u: Tensor; v: Tensor; q: Tensor; k: Tensor } {
    return hstuProject(this.inNorm, this.proj, x, [x.shape[0]], this.headShape);
  }

  /** Per-step decays [T, H]: γ_h where the token writes, 1 at read-out tokens. */
  decaySteps(write: Tensor, readOnly: Tensor): Tensor {
    const gamma = ops.reshape(ops.sigmoid(this.decayLogit as Tensor), [1, this.cfg.heads]);
    return ops.add(ops.mul(write, gamma), readOnly);
  }

  private finish(x: Tensor, u: Tensor, o: Tensor): Tensor {
    return hstuFinish(this.outNorm, this.out, this.drop, x, o, u, [x.shape[0]], this.headShape);
  }

  forward(x: Tensor, batch: PackedBatch): Tensor {
    return this.forwardWithState(x, batch, false).y as Tensor;
  }

  /**
   * The block over a packed batch; with `wantState` also each sequence's final recurrent state
   * [B, H, dk, dv]. `wantOutput = false` (the last layer of finalStates) skips the block's output.
   */
  forwardWithState(x: Tensor, batch: PackedBatch, wantState: boolean, wantOutput = true): { y: Tensor | null; state: Tensor | null } {
    if (this.cfg.kind === 'linear' && this.canFuse(x, null)) {
      // Inference on the CPU: the fused native block (same function, no [T, ·] intermediates).
      const r = ops.linearHstuBlock(x, this.blockParams(true), {
        offsets: batch.offsets,
        write: batch.write,
        output: wantOutput,
        returnState: wantState,
      });
      return { y: r.output, state: r.state };
    }
    if (wantState && !wantOutput && this.cfg.kind === 'linear' && !needsGrad([x, ...this.parameters()])) {
      return { y: null, state: this.finalStateOnly(x, batch) };
    }
    const T = x.shape[0];
    const { u, v, q, k } = this.project(x);
    const vw = ops.mul(v, ops.reshape(batch.write, [T, 1, 1]));
    if (this.cfg.kind === 'linear') {
      const decay = this.decaySteps(batch.write, batch.readOnly);
      if (wantState) {
        const r = ops.linearRecurrence(q, k, vw, { offsets: batch.offsets, decay, scale: 1, returnState: true });
        return { y: wantOutput ? this.finish(x, u, r.output) : null, state: r.state };
      }
      return { y: this.finish(x, u, ops.linearRecurrence(q, k, vw, { offsets: batch.offsets, decay, scale: 1 })), state: null };
    }
    if (wantState) throw new Error('EncoderBlock: the quadratic (HSTU attention) encoder has no recurrent state to cache');
    return { y: this.finish(x, u, ops.hstuAttention(q, k, vw, { offsets: batch.offsets })), state: null };
  }

  /**
   * Only each packed sequence's final recurrent state [B, H, dk, dv], for inference (serving's cold
   * encode reads nothing else from the last layer): S_b = Σ_{t∈b} w_t k_tᵀ v_t with
   * w_t = Π_{s>t, s∈b} γ_s (γ = 1 at read-out tokens, whose v is zeroed anyway). That needs only the
   * K and V columns of the projection and one GEMM per sequence and head, instead of the U and Q
   * columns, the recurrence's outputs and its chunked Q Kᵀ (at dk = 64 ~0.5 ms of a 1,000-event
   * encode). The weights are computed on the host in float64, so no gradient reaches the decay: the
   * caller uses this only when nothing needs a gradient.
   */
  private finalStateOnly(x: Tensor, batch: PackedBatch): Tensor {
    const { heads: H, dk, dv } = this.cfg;
    const T = x.shape[0];
    const B = batch.offsets.length - 1;
    // Rows of the projection: [U (H·dv) | V (H·dv) | Q (H·dk) | K (H·dk)].
    const W = this.proj.weight;
    const b = this.proj.bias;
    const vStart = H * dv;
    const kStart = 2 * H * dv + H * dk;
    const wkv = ops.concat([ops.narrow(W, 0, vStart, H * dv), ops.narrow(W, 0, kStart, H * dk)], 0);
    const bkv = b === null ? null : ops.concat([ops.narrow(b, 0, vStart, H * dv), ops.narrow(b, 0, kStart, H * dk)], 0);
    const p = ops.silu(ops.linear(this.inNorm.forward(x), wkv, bkv));
    const [v, k] = ops.split(p, [H * dv, H * dk], 1);
    const gamma = ops.sigmoid(this.decayLogit as Tensor).toFloat32Array();
    const write = batch.write.toFloat32Array();
    const w = new Float32Array(T * H); // read-out tokens keep weight 0 and decay nothing
    for (let s = 0; s < B; s++) {
      for (let h = 0; h < H; h++) {
        let acc = 1; // Π of the decays after step t, in float64
        for (let t = batch.offsets[s + 1] - 1; t >= batch.offsets[s]; t--) {
          if (write[t] === 0) continue;
          w[t * H + h] = acc;
          acc *= gamma[h];
        }
      }
    }
    const kw = ops.mul(ops.reshape(k, [T, H, dk]), tensor(w, [T, H, 1], { device: x.device }));
    const vv = ops.reshape(v, [T, H, dv]);
    const states: Tensor[] = [];
    for (let s = 0; s < B; s++) {
      const start = batch.offsets[s];
      const len = batch.offsets[s + 1] - start;
      if (len === 0) {
        states.push(zeros([1, H, dk, dv], { device: x.device }));
        continue;
      }
      const ks = ops.transpose(ops.narrow(kw, 0, start, len), [1, 0, 2]); // [H, len, dk]
      const vs = ops.transpose(ops.narrow(vv, 0, start, len), [1, 0, 2]); // [H, len, dv]
      states.push(ops.reshape(ops.matmul(ks, vs, { transA: true }), [1, H, dk, dv]));
    }
    return B === 1 ? states[0] : ops.concat(states, 0);
  }

  /**
   * One token per user against cached recurrent states (linear kind): x [B, D], states
   * [B, H, dk, dv] (updated in place semantics: returns the new states). write=false reads only (the
   * fused path then returns the input state tensor itself).
   */
  step(x: Tensor, state: Tensor, write: boolean): { y: Tensor; state: Tensor } {
    if (this.cfg.kind !== 'linear') throw new Error('EncoderBlock.step: only the linear (recurrent) encoder has an O(1) step');
    if (this.canFuse(x, state)) return this.fusedStep(x, state, write);
    const B = x.shape[0];
    const { u, v, q, k } = this.project(x);
    const H = this.cfg.heads;
    let decay: Tensor;
    let vv = v;
    if (write) {
      decay = ops.broadcastTo(ops.reshape(ops.sigmoid(this.decayLogit as Tensor), [1, H]), [B, H]);
    } else {
      decay = tensor(new Float32Array(B * H).fill(1), [B, H]);
      vv = ops.mulScalar(v, 0);
    }
    const r = ops.linearRecurrenceStep(state, q, k, vv, decay, { scale: 1 });
    return { y: this.finish(x, u, r.output), state: r.state };
  }

  /**
   * The fused native step (ops.linearHstuStep) computes the same function in one call; it applies
   * when nothing needs a gradient, dropout is off and everything is on the CPU (serving, eval).
   */
  private canFuse(x: Tensor, state: Tensor | null): boolean {
    if (this.training && this.cfg.dropout > 0) return false;
    const params = this.parameters();
    return x.device === 'cpu' && (state === null || state.device === 'cpu') && params.every((t) => t.device === 'cpu') && !needsGrad([x, state, ...params]);
  }

  /** The block's weights for the fused ops (decays only when the op writes; linear kind). */
  blockParams(withDecay: boolean): ops.LinearHstuStepParams {
    return {
      projWeight: this.proj.weight,
      projBias: this.proj.bias,
      outWeight: this.out.weight,
      outBias: this.out.bias,
      lnInWeight: this.inNorm.weight,
      lnInBias: this.inNorm.bias,
      lnInEps: this.inNorm.eps,
      lnOutWeight: this.outNorm.weight,
      lnOutBias: this.outNorm.bias,
      lnOutEps: this.outNorm.eps,
      decay: withDecay ? ops.sigmoid(this.decayLogit as Tensor) : null,
      dk: this.cfg.dk,
    };
  }

  private fusedStep(x: Tensor, state: Tensor, write: boolean): { y: Tensor; state: Tensor } {
    const r = ops.linearHstuStep(x, state, this.blockParams(write), { write });
    return { y: r.output, state: r.state };
  }
}

export class SequenceEncoder extends Module {
  readonly blocks: EncoderBlock[] = [];
  readonly finalNorm: LayerNorm;

  constructor(readonly cfg: EncoderConfig) {
    super();
    for (let i = 0; i < cfg.layers; i++) this.blocks.push(this.registerModule(`block${i}`, new EncoderBlock(cfg, i)));
    this.finalNorm = this.registerModule('finalNorm', new LayerNorm(cfg.dim));
  }

  forward(x: Tensor, batch: PackedBatch): Tensor {
    let h = x;
    for (const b of this.blocks) h = b.forward(h, batch);
    return this.finalNorm.forward(h);
  }

  /** Final recurrent state of every layer for each packed sequence: layers × [B, H, dk, dv]. */
  finalStates(x: Tensor, batch: PackedBatch): Tensor[] {
    let h: Tensor | null = x;
    const states: Tensor[] = [];
    this.blocks.forEach((b, i) => {
      // The last block's output feeds nothing (the states are the result): not computed.
      const r = b.forwardWithState(h as Tensor, batch, true, i + 1 < this.blocks.length);
      h = r.y;
      states.push(r.state as Tensor);
    });
    return states;
  }

  /** One token per sequence through every layer against cached states; returns the encoder output and new states. */
  step(x: Tensor, states: readonly Tensor[], write: boolean): { h: Tensor; states: Tensor[] } {
    let h = x;
    const next: Tensor[] = [];
    this.blocks.forEach((b, i) => {
      const r = b.step(h, states[i], write);
      h = r.y;
      next.push(r.state);
    });
    return { h: this.finalNorm.forward(h), states: next };
  }

  /** Floats of one user's cached state (all layers). */
  get stateSize(): number {
    return this.cfg.layers * this.cfg.heads * this.cfg.dk * this.cfg.dv;
  }
}
