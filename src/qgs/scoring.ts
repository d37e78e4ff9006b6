// Scoring one ranking request with a trained model: the history becomes pair tokens, the request's
// query becomes the read-out token, and the candidates go through the ranking head with their
// feature groups (position pinned to rank 1). Used by `qgs rank` and the serving backend's cold path.
import { tensor, scope } from '../tensor';
import { noGrad } from '../autograd';
import * as ops from '../ops';
import { buildTokens, ITEM_OFFSET, NO_QUERY, TERM_OFFSET, type PreparedRequest, type UserTimeline } from './dataset';
import { scaleFeatures, type ScalerState } from './features';
import type { QgsModel } from './model';

export interface RankQuery {
  /** Query term ids (as in the training data). */
  terms?: readonly number[];
}

export interface RankHistoryEvent {
  query?: RankQuery | null;
  item: number;
}

export type FeatureValues = Readonly<Record<string, Readonly<Record<string, number | null>>>>;

export interface RankCandidate {
  item: number;
  /** group → feature → value (missing groups/features count as missing values). */
  features?: FeatureValues;
}

export interface RankRequest {
  history?: readonly RankHistoryEvent[];
  query: RankQuery | null;
  candidates: readonly RankCandidate[];
}

/** Item id → item token id, with a clear error naming `where` for bad or out-of-catalogue ids. */
export function checkItem(v: unknown, where: string, vocab: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`${where}: expected a non-negative integer item id, got ${JSON.stringify(v)}`);
  if (v + ITEM_OFFSET >= vocab) throw new Error(`${where}: item ${v} is outside the model's catalogue (0..${vocab - ITEM_OFFSET - 1})`);
  return v + ITEM_OFFSET;
}

/** Query → term token ids (at most maxTerms; [NO_QUERY] when empty; unseen terms → NO_QUERY). */
export function termIds(q: RankQuery | null | undefined, where: string, model: QgsModel): Int32Array {
  const t = q?.terms ?? [];
  if (!Array.isArray(t)) throw new Error(`${where}.terms: expected an array of term ids, got ${JSON.stringify(t)}`);
  if (t.length === 0) return Int32Array.of(NO_QUERY);
  // A plain loop: Int32Array.from with a mapping function took ~0.4 µs per query, 0.4 ms of a
  // 1,000-event cold encode in the serving worker.
  const n = Math.min(t.length, model.cfg.maxTerms);
  const vocab = model.cfg.termVocab;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const x: unknown = t[i];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) throw new Error(`${where}.terms[${i}]: expected a non-negative integer, got ${JSON.stringify(x)}`);
    out[i] = termToken(x, vocab);
  }
  return out;
}

/**
 * A non-negative term id's token: TERM_OFFSET-shifted; unseen terms map to "no query" rather than
 * failing (the vocabulary is the training data's).
 */
export function termToken(term: number, termVocab: number): number {
  return term + TERM_OFFSET < termVocab ? term + TERM_OFFSET : NO_QUERY;
}

/** Dense feature rows [candidates × F] in the model's layout (NaN = missing). */
export function featureRows(model: QgsModel, candidates: readonly RankCandidate[]): Float32Array {
  const layout = model.cfg.layout;
  const rows = new Float32Array(candidates.length * layout.dim).fill(Number.NaN);
  candidates.forEach((c, i) => {
    if (c.features === undefined) return;
    for (const g of layout.groups) {
      const vals = c.features[g.name];
      if (vals === undefined) continue;
      g.features.forEach((f, j) => {
        const v = vals[f];
        if (v === undefined || v === null) return;
        if (typeof v !== 'number') throw new Error(`candidates[${i}].features.${g.name}.${f}: expected a number or null, got ${JSON.stringify(v)}`);
        rows[i * layout.dim + g.offset + j] = v;
      });
    }
  });
  return rows;
}

/** Scores one request by re-encoding its history (the cold path). */
export function scoreRequest(model: QgsModel, scaler: ScalerState, req: RankRequest): Float32Array {
  if (req === null || typeof req !== 'object') throw new Error(`request: expected an object, got ${JSON.stringify(req)}`);
  if (!Array.isArray(req.candidates)) throw new Error('request.candidates: expected an array');
  const vocab = model.cfg.itemVocab;
  const history = req.history ?? [];
  if (!Array.isArray(history)) throw new Error('request.history: expected an array');
  // Each past click is a one-click request in the timeline; the scored request is the last one.
  const requests: PreparedRequest[] = history.map((e, i) => ({
    split: 0,
    ts: i,
    terms: termIds(e.query, `history[${i}].query`, model),
    items: Int32Array.of(checkItem(e.item, `history[${i}].item`, vocab)),
    clicks: Float32Array.of(1),
    rel: null,
    features: new Float32Array(model.cfg.layout.dim),
  }));
  const items = Int32Array.from(req.candidates, (c, i) => checkItem(c?.item, `candidates[${i}].item`, vocab));
  const target: PreparedRequest = {
    split: 2,
    ts: history.length,
    terms: termIds(req.query, 'query', model),
    items,
    clicks: new Float32Array(items.length),
    rel: null,
    features: featureRows(model, req.candidates),
  };
  if (items.length === 0) return new Float32Array(0);
  const timeline: UserTimeline = { user: 0, requests: [...requests, target] };
  return scope(() =>
    noGrad(() => {
      const tb = buildTokens([timeline], model.cfg.variant, model.cfg.maxTerms);
      const h = model.encode(tb);
      const last = ops.gather(h, tensor(Int32Array.of(requests.length), [1], { dtype: 'i32' }), 0);
      const ctx = ops.broadcastTo(last, [items.length, model.cfg.dim]);
      const feats = scaleFeatures(scaler, target.features, true);
      return model.rankLogits(ctx, items, tensor(feats, [items.length, scaler.mean.length])).toFloat32Array();
    }),
  );
}
