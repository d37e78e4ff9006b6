// nn.LinearHSTU: one Linear HSTU block (research/papers.md §7.1, DESIGN.md §5):
//   X̃ = LN_in(X);  [U, V, Q, K] = split(SiLU(X̃ W1 + b1));  O = linearRecurrence(Q, K, V; γ = σ(a_h))
//   Y = X + Dropout(W2 (U ⊙ LN_out(O)) + b2)
// on padded [B, L, D] (optional lengths) or packed [ΣL, D] (offsets) batches, with an O(H·dk·dv)
// incremental step() for serving that equals the full forward.
import { Tensor, tensor, zeros, type Device } from '../tensor';
import { linearRecurrence, linearRecurrenceStep } from '../ops/linrec';
import { sigmoid, mul } from '../ops/elementwise';
import { hstuProject, hstuFinish } from './hstu-parts';
import { checkNumber, checkTensor } from '../ops/validate';
import { Module } from './module';
import { Linear } from './linear';
import { LayerNorm } from './layernorm';
import { Dropout } from './dropout';

export interface LinearHSTUOptions {
  /** Heads H (default 2). */
  heads?: number;
  /** Query/key dim per head (default dim / heads). */
  dqk?: number;
  /** Value dim per head (default dim / heads). */
  dv?: number;
  /** Dropout on the block output (default 0). */
  dropout?: number;
  /**
   * 'learned' (default): per-head decay γ_h = sigmoid(a_h), a_h initialised so γ spans 0.9..0.99;
   * 'none': γ = 1 (plain causal linear attention).
   */
  decay?: 'learned' | 'none';
  /**
   * c_t of the recurrence: a constant (default 1/256, HSTU's 1/n for n = 256) or '1/t'. LN_out
   * normalises each row, so this mainly sets the numeric range before the norm.
   */
  scale?: number | '1/t';
  seed?: number;
  device?: Device;
}

export interface SequenceBatchOptions {
  /** Padded [B, L, D] input: true lengths (default all L). */
  lengths?: Int32Array | readonly number[];
  /** Packed [ΣL, D] input: B+1 row offsets. */
  offsets?: Int32Array | readonly number[];
}

/** Per-sequence serving state of a LinearHSTU block. */
export interface LinearHSTUState {
  /** Recurrence state [B, H, dqk, dv]. */
  state: Tensor;
  /** Tokens consumed so far per sequence (for the '1/t' scale). */
  position: Int32Array;
}

export class LinearHSTU extends Module {
  readonly dim: number;
  readonly heads: number;
  readonly dqk: number;
  readonly dv: number;
  readonly scale: number | '1/t';
  readonly useDecay: boolean;
  readonly lnIn: LayerNorm;
  readonly proj: Linear;
  readonly lnOut: LayerNorm;
  readonly out: Linear;
  readonly drop: Dropout;
  /** Per-head decay logits a_h (γ_h = sigmoid(a_h)); null when decay is 'none'. */
  readonly decayLogit: Tensor | null;

  constructor(dim: number, opts: LinearHSTUOptions = {}) {
    super();
    const op = 'LinearHSTU';
    this.dim = checkNumber(op, 'dim', dim, { integer: true, min: 1 });
    this.heads = checkNumber(op, 'heads', opts.heads ?? 2, { integer: true, min: 1 });
    this.dqk = checkNumber(op, 'dqk', opts.dqk ?? Math.max(1, Math.floor(dim / this.heads)), { integer: true, min: 1 });
    this.dv = checkNumber(op, 'dv', opts.dv ?? Math.max(1, Math.floor(dim / this.heads)), { integer: true, min: 1 });
    const sc = opts.scale ?? 1 / 256;
    if (sc !== '1/t' && (typeof sc !== 'number' || !Number.isFinite(sc))) throw new TypeError(`${op}: scale: expected a finite number or '1/t', got ${String(sc)}`);
    this.scale = sc;
    const decay = opts.decay ?? 'learned';
    if (decay !== 'learned' && decay !== 'none') throw new TypeError(`${op}: decay: expected 'learned' or 'none', got ${String(decay)}`);
    this.useDecay = decay === 'learned';
    const seed = opts.seed;
    const H = this.heads;
    this.lnIn = this.registerModule('lnIn', new LayerNorm(dim, { device: opts.device }));
    this.proj = this.registerModule('proj', new Linear(dim, 2 * H * this.dv + 2 * H * this.dqk, { seed, device: opts.device }));
    this.lnOut = this.registerModule('lnOut', new LayerNorm(H * this.dv, { device: opts.device }));
    this.out = this.registerModule('out', new Linear(H * this.dv, dim, { seed: seed === undefined ? undefined : seed + 1, device: opts.device }));
    this.drop = this.registerModule('drop', new Dropout(opts.dropout ?? 0, { seed: seed === undefined ? undefined : seed + 2 }));
    if (this.useDecay) {
      // γ_h from 0.9 to 0.99 across heads: short- and long-memory heads (RetNet-like spread).
      const a = new Float32Array(H);
      for (let h = 0; h < H; h++) {
        const g = H === 1 ? 0.95 : 0.9 + (0.09 * h) / (H - 1);
        a[h] = Math.log(g / (1 - g));
      }
      this.decayLogit = this.registerParameter('decayLogit', tensor(a, [H], { device: opts.device }));
    } else {
      this.decayLogit = null;
    }
  }

  /** γ_h = sigmoid(a_h) [H], or null (γ = 1). */
  decay(): Tensor | null {
    return this.decayLogit === null ? null : sigmoid(this.decayLogit);
  }

  private project(x: Tensor, lead: readonly number[]): { u: Tensor; q: Tensor; k: Tensor; v: Tensor } {
    return hstuProject(this.lnIn, this.proj, x, lead, this);
  }

  private finish(x: Tensor, o: Tensor, u: Tensor, lead: readonly number[]): Tensor {
    return hstuFinish(this.lnOut, this.out, this.drop, x, o, u, lead, this);
  }

  /** x: [B, L, D] (padded, optional lengths) or [ΣL, D] (packed, with offsets) → same shape. */
  forward(x: Tensor, opts: SequenceBatchOptions = {}): Tensor {
    const op = 'LinearHSTU.forward';
    const packed = opts.offsets !== undefined;
    checkTensor(op, 'x', x, { dtype: 'f32', rank: packed ? 2 : 3 });
    if (x.shape[x.rank - 1] !== this.dim) throw new Error(`${op}: x: expected last dimension ${this.dim}, got shape [${x.shape.join(', ')}]`);
    const lead = x.shape.slice(0, x.rank - 1);
    const { u, q, k, v } = this.project(x, lead);
    const o = linearRecurrence(q, k, v, { decay: this.decay(), scale: this.scale, lengths: opts.lengths, offsets: opts.offsets });
    return this.finish(x, o, u, lead);
  }

  /** A fresh (zero) serving state for `batch` sequences. */
  initialState(batch: number): LinearHSTUState {
    checkNumber('LinearHSTU.initialState', 'batch', batch, { integer: true, min: 1 });
    return { state: zeros([batch, this.heads, this.dqk, this.dv], { device: this.device }), position: new Int32Array(batch) };
  }

  /**
   * One new token per sequence: x [B, D] → { y [B, D], state } with the updated state (the input state
   * is not modified). Equals the full forward at that position (use eval() so dropout is off).
   */
  step(state: LinearHSTUState, x: Tensor): { y: Tensor; state: LinearHSTUState } {
    const op = 'LinearHSTU.step';
    checkTensor(op, 'x', x, { dtype: 'f32', rank: 2 });
    const B = x.shape[0];
    if (x.shape[1] !== this.dim) throw new Error(`${op}: x: expected shape [B, ${this.dim}], got [${x.shape.join(', ')}]`);
    if (state === null || typeof state !== 'object' || !(state.position instanceof Int32Array)) {
      throw new TypeError(`${op}: state: expected a LinearHSTUState (from initialState or step)`);
    }
    checkTensor(op, 'state.state', state.state, { dtype: 'f32', shape: [B, this.heads, this.dqk, this.dv] });
    if (state.position.length !== B) throw new Error(`${op}: state.position: expected ${B} entries, got ${state.position.length}`);
    const { u, q, k, v } = this.project(x, [B]);
    const position = state.position.map((t) => t + 1);
    let r: { output: Tensor; state: Tensor };
    if (this.scale === '1/t') {
      // Per-sequence c = 1/t: run with c = 1, then scale each sequence's row.
      r = linearRecurrenceStep(state.state, q, k, v, this.decay(), { scale: 1 });
      const c = new Float32Array(B);
      for (let b = 0; b < B; b++) c[b] = 1 / position[b];
      r = { output: mul(r.output, tensor(c, [B, 1, 1], { device: x.device })), state: r.state };
    } else {
      r = linearRecurrenceStep(state.state, q, k, v, this.decay(), { scale: this.scale });
    }
    return { y: this.finish(x, r.output, u, [B]), state: { state: r.state, position } };
  }
}
