// The QGS serving backend (what Ranker loads by default from dist/qgs/backend.js). A user state is
// the concatenation of every encoder layer's recurrent state [H, dk, dv]: a new interaction costs one
// O(layers · H · dk · dv) step; scoring reads the state with a read-out token (no write, no decay),
// exactly as in training, then runs the ranking head over the candidates.
import { tensor, scope, type Tensor } from '../tensor';
import { noGrad } from '../autograd';
import { loadCheckpoint } from './checkpoint';
import { ITEM_OFFSET, NO_ITEM, NO_QUERY } from './dataset';
import { inputMap, termToken, type InputMap } from './scoring';
import { checkCategory, setIndicator, type CategoricalSlot, type LogVocab } from './log-data';
import { scaleFeatures, type ScalerState } from './features';
import type { QgsModel } from './model';
import { RankingPlan, type RankingPlanOptions } from './ranking-plan';
import type { BackendScoreRequest, Interaction, ItemId, Query, ScoringBackend } from './serving/backend';
import { CandidateBatch, unpackHistory, type FeatureColumn, type PackedHistory } from './serving/packed';
import { tagHash } from './serving/state-codec';

/**
 * A cold encode leaves out the history whose weight in the final states is below 2^-40 (see
 * EncoderPlanEncodeOptions.minWeight): at the trained decays (largest 0.9516) the last 560 events of a long
 * history, whose states matched the full encode's to within 2e-8 of their largest entry, for ~45% less
 * work on a 1,000-event history.
 */
export const SERVING_MIN_WEIGHT = 2 ** -40;

export class QgsBackend implements ScoringBackend {
  readonly stateSize: number;
  readonly stateTag: string;
  private readonly perLayer: number;
  private readonly columns: { group: string; feature: string }[];
  /** The ranking side in serving form (precomputed item table, folded group projections). */
  private readonly plan: RankingPlan;
  /** Item ids and queries → tokens: the model's integer ids, or a log-trained model's vocabulary. */
  private readonly map: InputMap;
  /** The map's categorical features by group and feature (raw string values arrive as extras). */
  private readonly slotByKey: Map<string, CategoricalSlot>;
  /** The categorical features: a category sent as a number must arrive exact (2^24 + 1 is not 2^24). */
  readonly exactFeatures: readonly FeatureColumn[];

  /** `planOptions`: the serving plan's limits (a catalogue over maxItemTableBytes serves composed, without plans). */
  constructor(readonly model: QgsModel, readonly scaler: ScalerState, vocab?: LogVocab, planOptions?: RankingPlanOptions) {
    const c = model.cfg;
    if (c.encoder !== 'linear') throw new Error(`QgsBackend: the ${c.encoder} encoder keeps no recurrent state; serve a linear (Linear HSTU) model`);
    this.perLayer = c.heads * c.dk * c.dv;
    this.stateSize = c.layers * this.perLayer;
    this.map = inputMap(model, vocab);
    // A state encoded through one vocabulary means nothing under another: the tag tells them apart.
    const mapping = vocab === undefined ? '' : `:${tagHash(JSON.stringify(vocab))}`;
    this.stateTag = `qgs:${c.variant}:${c.layers}x${c.heads}x${c.dk}x${c.dv}:${tagHash(JSON.stringify(scaler))}${mapping}`;
    this.columns = c.layout.groups.flatMap((g) => g.features.map((f) => ({ group: g.name, feature: f })));
    this.slotByKey = new Map(this.map.categorical.map((sl) => [`${sl.group}\u0000${sl.feature}`, sl]));
    this.exactFeatures = this.map.categorical.map((sl) => ({ group: sl.group, feature: sl.feature }));
    this.plan = new RankingPlan(model, planOptions);
  }

  emptyState(): Float32Array {
    return new Float32Array(this.stateSize);
  }

  /**
   * A token's query term ids into out at `at` (the rest of its maxTerms slots stay as they are:
   * 0 = padding), as buildTokens writes them: item-only models never see queries, and a read-out
   * carries the next query only for QGS models — the flattened baseline predicts the next item
   * before seeing it (reading out with the query scored flattened models off their training).
   */
  private writeTerms(q: Query | null | undefined, out: Int32Array, at: number, readout: boolean): void {
    const v = this.model.cfg.variant;
    const seen = readout ? v === 'qgs' : v !== 'item-only';
    out.set(this.map.terms(seen ? q : null, 'query'), at);
  }

  private itemToken(item: ItemId, where = 'item'): number {
    return this.map.item(item, where);
  }

  /** Tokens per interaction: flattened models write a query token then the item token. */
  private get tokensPerEvent(): number {
    return this.model.cfg.variant === 'flattened' ? 2 : 1;
  }

  /** Writes an interaction's tokens at token position o of terms [·, maxTerms] / items; returns the next position. */
  private writeEvent(ev: Interaction, terms: Int32Array, items: Int32Array, o: number): number {
    const m = this.model.cfg.maxTerms;
    this.writeTerms(ev.query, terms, o * m, false);
    if (this.tokensPerEvent === 2) {
      items[o++] = NO_ITEM;
      terms[o * m] = NO_QUERY;
    }
    items[o++] = this.itemToken(ev.item);
    return o;
  }

  /** Interaction → the write tokens it adds. */
  private tokens(ev: Interaction): { terms: Int32Array; items: Int32Array } {
    const n = this.tokensPerEvent;
    const terms = new Int32Array(n * this.model.cfg.maxTerms);
    const items = new Int32Array(n);
    this.writeEvent(ev, terms, items, 0);
    return { terms, items };
  }

  encode(history: readonly Interaction[]): Float32Array {
    if (history.length === 0) return this.emptyState();
    const m = this.model.cfg.maxTerms;
    // Tokens written straight into the packed arrays (per-event arrays were ~3,000 short-lived
    // objects per 1,000-event encode: young-generation GCs in the serving worker).
    const T = history.length * this.tokensPerEvent;
    const terms = new Int32Array(T * m);
    const items = new Int32Array(T);
    let o = 0;
    for (const e of history) o = this.writeEvent(e, terms, items, o);
    return this.encodeTokens(terms, items);
  }

  /**
   * encode() of a packed history (the serving worker's cold path), read from its typed arrays
   * without building event objects. Its term ids arrive validated (non-negative int32s); they map to
   * tokens as termIds maps them: the first maxTerms through termToken, none → NO_QUERY.
   */
  encodePacked(h: PackedHistory): Float32Array {
    const n = h.items.length;
    if (n === 0) return this.emptyState();
    // A vocabulary reads ids and query text through maps, and string or large ids need one: the
    // generic path (no integer fast path).
    if (this.map.vocabulary || h.rawItems !== undefined) return this.encode(unpackHistory(h));
    const { maxTerms: m, termVocab: vocab, variant } = this.model.cfg;
    const per = this.tokensPerEvent;
    const terms = new Int32Array(n * per * m);
    const items = new Int32Array(n * per);
    const seen = variant !== 'item-only';
    let o = 0;
    for (let t = 0; t < n; t++) {
      const at = o * m;
      const a = h.termOffsets[t];
      const b = Math.min(h.termOffsets[t + 1], a + m);
      if (!seen || b === a) terms[at] = NO_QUERY;
      for (let j = a; seen && j < b; j++) terms[at + j - a] = termToken(h.terms[j], vocab);
      if (per === 2) {
        items[o++] = NO_ITEM;
        terms[o * m] = NO_QUERY;
      }
      items[o++] = this.itemToken(h.items[t]);
    }
    return this.encodeTokens(terms, items);
  }

  /** The final states of packed write tokens (terms [T × maxTerms], items [T]), as one state array. */
  private encodeTokens(terms: Int32Array, items: Int32Array): Float32Array {
    const T = items.length;
    if (this.plan.encoderPlan !== null) {
      const out = new Float32Array(this.stateSize);
      this.plan.encodeTokens(terms, items, { offsets: Int32Array.of(0, T), statesOut: out, minWeight: SERVING_MIN_WEIGHT });
      return out;
    }
    return scope(() =>
      noGrad(() => {
        const x = this.plan.embedTokens(terms, items);
        const write = new Float32Array(T).fill(1);
        const states = this.model.encoder.finalStates(x, {
          offsets: Int32Array.of(0, T),
          write: tensor(write, [T, 1]),
          readOnly: tensor(new Float32Array(T), [T, 1]),
        });
        return this.pack(states.map((s) => s.toFloat32Array()));
      }),
    );
  }

  private pack(layers: Float32Array[]): Float32Array {
    const out = new Float32Array(this.stateSize);
    layers.forEach((l, i) => out.set(l, i * this.perLayer));
    return out;
  }

  private unpack(states: readonly Float32Array[]): ReturnType<typeof tensor>[] {
    const c = this.model.cfg;
    const B = states.length;
    const out = [];
    for (let l = 0; l < c.layers; l++) {
      const buf = new Float32Array(B * this.perLayer);
      states.forEach((s, b) => buf.set(s.subarray(l * this.perLayer, (l + 1) * this.perLayer), b * this.perLayer));
      out.push(tensor(buf, [B, c.heads, c.dk, c.dv]));
    }
    return out;
  }

  step(state: Float32Array, event: Interaction): Float32Array {
    const { terms, items } = this.tokens(event);
    if (this.plan.encoderPlan !== null) {
      // One native call per token through every layer (the flattened variant has two per event).
      const out = new Float32Array(this.stateSize);
      const m = this.model.cfg.maxTerms;
      for (let i = 0; i < items.length; i++) {
        this.plan.stepTokens(i === 0 ? state : out, terms.subarray(i * m, (i + 1) * m), items.subarray(i, i + 1), { write: true, statesOut: out });
      }
      return out;
    }
    return scope(() =>
      noGrad(() => {
        let states = this.unpack([state]);
        const m = this.model.cfg.maxTerms;
        for (let i = 0; i < items.length; i++) {
          const x = this.plan.embedTokens(terms.subarray(i * m, (i + 1) * m), Int32Array.of(items[i]));
          states = this.model.encoder.step(x, states, true).states;
        }
        return this.pack(states.map((s) => s.toFloat32Array()));
      }),
    );
  }

  scoreBatch(reqs: readonly BackendScoreRequest[]): Float32Array[] {
    if (reqs.length === 0) return [];
    const m = this.model.cfg.maxTerms;
    const R = reqs.length;
    const terms = new Int32Array(R * m);
    reqs.forEach((r, i) => this.writeTerms(r.query, terms, i * m, true));
    const counts = reqs.map((r) => r.candidates.length);
    const N = counts.reduce((a, b) => a + b, 0);
    if (N === 0) return reqs.map(() => new Float32Array(0));
    const { rowReq, items, feats } = this.candidateInputs(reqs, N);
    const readOutItems = new Int32Array(R).fill(NO_ITEM);
    let logits: Float32Array;
    if (this.plan.encoderPlan !== null && this.plan.canScoreInto) {
      // Both plans on plain arrays: no tensor is made or freed for a request.
      logits = new Float32Array(N);
      this.plan.scoreInto(logits, this.readOutRows(terms, readOutItems, reqs), rowReq, items, feats);
    } else {
      logits = scope(() =>
        noGrad(() => {
          const h = this.readOut(terms, readOutItems, reqs);
          return this.plan.scoreCandidates(h, rowReq, items, tensor(feats, [N, this.columns.length])).toFloat32Array();
        }),
      );
    }
    if (R === 1) return [logits];
    const out: Float32Array[] = [];
    let p = 0;
    for (const n of counts) {
      out.push(logits.slice(p, p + n));
      p += n;
    }
    return out;
  }

  /** The encoder's read-out [R, D] of each request's query token against its state (as a tensor). */
  private readOut(terms: Int32Array, items: Int32Array, reqs: readonly BackendScoreRequest[]): Tensor {
    if (this.plan.encoderPlan === null) return this.model.encoder.step(this.plan.embedTokens(terms, items), this.unpack(reqs.map((r) => r.state)), false).h;
    return tensor(this.readOutRows(terms, items, reqs), [reqs.length, this.model.cfg.dim]);
  }

  /** The read-out through the encoder plan, as rows [R × D] (only when there is a plan). */
  private readOutRows(terms: Int32Array, items: Int32Array, reqs: readonly BackendScoreRequest[]): Float32Array {
    const h = new Float32Array(reqs.length * this.model.cfg.dim);
    this.plan.stepTokens(this.statesOf(reqs), terms, items, { write: false, hOut: h });
    return h;
  }

  /** The requests' states as one [R × stateSize] array (the state itself for one request). */
  private statesOf(reqs: readonly BackendScoreRequest[]): Float32Array {
    if (reqs.length === 1) return reqs[0].state;
    const states = new Float32Array(reqs.length * this.stateSize);
    reqs.forEach((r, i) => states.set(r.state, i * this.stateSize));
    return states;
  }

  /** Every candidate's request index, item token and scaled feature row (N candidates in all). */
  private candidateInputs(reqs: readonly BackendScoreRequest[], N: number): { rowReq: Int32Array; items: Int32Array; feats: Float32Array } {
    const rowReq = new Int32Array(N);
    const items = new Int32Array(N);
    const F = this.columns.length;
    const feats = new Float32Array(N * F);
    let o = 0;
    reqs.forEach((r, i) => {
      const n = r.candidates.length;
      rowReq.fill(i, o, o + n);
      // Int32 ids arrive validated as non-negative (serving/validate.ts); only the catalogue bound
      // is the model's. A vocabulary, or string / large ids (rawItems), go through the map.
      const c = r.candidates;
      if (this.map.vocabulary || c.rawItems !== undefined) {
        for (let j = 0; j < n; j++) items[o + j] = this.itemToken(c.item(j), `candidates[${j}].item`);
      } else {
        const vocab = this.model.cfg.itemVocab;
        for (let j = 0; j < n; j++) {
          const t = c.items[j] + ITEM_OFFSET;
          items[o + j] = t < vocab ? t : this.itemToken(c.items[j], `candidates[${j}].item`); // throws the catalogue error
        }
      }
      const raw = r.candidates.featureMatrix(this.columns, Number.NaN).values;
      if (this.map.categorical.length > 0) this.setCategorical(r.candidates, raw, F);
      scaleFeatures(this.scaler, raw, true, feats, o * F);
      o += n;
    });
    return { rowReq, items, feats };
  }

  /**
   * Raw categorical values of the candidates (numbers packed as columns, strings as extras) set
   * their features' indicator columns in `rows` [candidates × F], as featureRows does for `qgs rank`.
   * Extras come second: a number float32 rounds arrives there too, exact, and its indicator replaces
   * the one its column value set (setIndicator rewrites the feature's whole slot).
   */
  private setCategorical(c: CandidateBatch, rows: Float32Array, F: number): void {
    const C = c.columns.length;
    for (const slot of this.map.categorical) {
      const col = c.column(slot.group, slot.feature);
      if (col < 0) continue;
      for (let i = 0; i < c.length; i++) {
        const v = c.values[i * C + col];
        if (!Number.isNaN(v)) setIndicator(rows, i * F, slot, v);
      }
    }
    for (const e of c.extras) {
      const slot = this.slotByKey.get(`${e.group}\u0000${e.feature}`);
      if (slot === undefined) continue;
      const v = checkCategory(e.value, `candidates[${e.row}].features.${e.group}.${e.feature}`);
      if (v !== null) setIndicator(rows, e.row * F, slot, v);
    }
  }

  /**
   * A few cold encodes, steps and 1,000-candidate scores of a synthetic user (catalogue items in
   * order, every feature at its mean), so JIT compilation and the allocator's first-touch page
   * faults happen at load time, not in the first requests.
   */
  warmup(rounds = 12): void {
    const V = this.model.cfg.itemVocab - ITEM_OFFSET;
    if (V <= 0) return; // no catalogue: nothing representative to run
    const event = (i: number): Interaction => ({ query: { terms: [i % 7] }, item: i % V });
    const history = Array.from({ length: 64 }, (_, i) => event(i));
    const n = 1000;
    const candidates = new CandidateBatch({
      items: Int32Array.from({ length: n }, (_, i) => i % V),
      columns: this.columns,
      values: new Float32Array(n * this.columns.length).fill(Number.NaN),
      extras: [],
    });
    for (let r = 0; r < rounds; r++) {
      const state = this.step(this.encode(history), event(r));
      this.scoreBatch([{ state, query: { terms: [r % 5] }, candidates }]);
    }
  }

  dispose(): void {
    this.plan.dispose();
    this.model.dispose();
  }
}

/** Ranker's backend factory: loads a QGS checkpoint directory. */
export function createBackend(checkpointDir: string): QgsBackend {
  const { model, scaler, config } = loadCheckpoint(checkpointDir);
  return new QgsBackend(model, scaler, config.vocab);
}
